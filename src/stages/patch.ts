// patch: apply the release's series with `git am` (no fuzz), so the tree stays clean and the
// version is not stamped -dirty. A patch that does not apply stops the run with a reject report.
import path from 'node:path';
import { readFile, rm } from 'node:fs/promises';
import { buildDirAtomic, exists, fileHash, writeFileAtomic } from '../lib/fsutil.js';
import { git, headCommit, isClean } from '../lib/git.js';
import { PROJECT_ROOT } from '../manifest.js';
import { StageError, type PatchOutput, type Stage, type StageContext } from './types.js';

export interface SeriesEntry {
  file: string;
  path: string;
}

/** The `series` file: one patch file name per line, in order; `#` starts a comment. */
export async function readSeries(dir: string): Promise<SeriesEntry[]> {
  const seriesFile = path.join(dir, 'series');
  let text: string;
  try {
    text = await readFile(seriesFile, 'utf8');
  } catch {
    throw new StageError(`no patch series at ${seriesFile}: the manifest's "patches" folder must hold a series file`, 'patch');
  }
  const entries: SeriesEntry[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const name = line.split(/\s+/)[0]!;
    if (name.includes('/') || name.includes('..')) throw new StageError(`${seriesFile}:${i + 1}: "${name}" must be a file name in the series folder`, 'patch');
    const p = path.join(dir, name);
    if (!(await exists(p))) throw new StageError(`${seriesFile}:${i + 1}: patch ${name} is listed but missing`, 'patch');
    entries.push({ file: name, path: p });
  }
  return entries;
}

export const patchStage: Stage<'patch'> = {
  name: 'patch',
  description: 'apply the LXC patch series with git am',
  sources: () => ['src/stages/patch.ts', 'src/lib/git.ts'].map((f) => path.join(PROJECT_ROOT, f)),
  async verify(ctx) {
    await readSeries(ctx.manifest.patchesDir);
  },
  async inputs(ctx, prev) {
    const series = await readSeries(ctx.manifest.patchesDir);
    return {
      tree: prev.source?.treeCommit,
      dateEpoch: prev.source?.sourceDateEpoch,
      patches: await Promise.all(series.map(async (s) => ({ file: s.file, sha256: await fileHash(s.path) }))),
    };
  },
  async run(ctx, prev) {
    const src = prev.source!;
    const series = await readSeries(ctx.manifest.patchesDir);
    const target = path.join(ctx.paths.trees, 'patched');
    const applied: PatchOutput['applied'] = [];
    // A failed run must not leave a tree (or a record) that later stages could build from.
    await rm(target, { recursive: true, force: true });
    await rm(path.join(ctx.paths.state, 'patch.json'), { force: true });
    let commit = '';
    await buildDirAtomic(target, async (dir) => {
      await checkoutWithPatches(ctx, { from: src.tree, commit: src.treeCommit, dir, patches: series, dateEpoch: src.sourceDateEpoch, stage: 'patch' }, async (p, i) => {
        ctx.log.info(`patch: [${i + 1}/${series.length}] ${p.file}`);
        applied.push({ file: p.file, sha256: await fileHash(p.path) });
      });
      if (!(await isClean(dir))) throw new StageError('the patched tree is not clean after git am; a patch left untracked or modified files', 'patch');
      commit = await headCommit(dir);
    });
    ctx.log.info(`patch: ${applied.length} patches applied, tree at ${commit}`);
    return { tree: target, commit, applied };
  },
  async intact(_ctx, out) {
    return (await exists(path.join(out.tree, '.git'))) && (await headCommit(out.tree).catch(() => '')) === out.commit;
  },
};

/**
 * The one way a tree gets patches: a clone of `from` at `commit` in `dir`, then each patch with
 * `git am` (no fuzz), committed at the source's date so the tree's commits are reproducible. A
 * patch that does not apply stops with the reject report (which patch, which file, which hunk).
 * Used for the patched tree and for the stock tree with the test seams.
 */
export async function checkoutWithPatches(
  ctx: StageContext,
  o: { from: string; commit: string; dir: string; patches: SeriesEntry[]; dateEpoch: number; stage: 'patch' | 'smoke' },
  onApplied?: (p: SeriesEntry, index: number) => Promise<void> | void,
): Promise<void> {
  const date = new Date(o.dateEpoch * 1000).toISOString();
  await git(path.dirname(o.dir), ['clone', '-q', '--no-checkout', o.from, o.dir]);
  await git(o.dir, ['checkout', '-q', '--detach', o.commit]);
  for (const [i, p] of o.patches.entries()) {
    const res = await git(o.dir, ['am', '-q', '--keep-cr', '--committer-date-is-author-date', p.path], { reject: false, env: { GIT_COMMITTER_DATE: date }, signal: ctx.signal });
    if (res.exitCode !== 0) {
      const report = await rejectReport(ctx, o.dir, p, `${res.stdout}\n${res.stderr}`);
      throw new StageError(report.message, o.stage, { patch: p.file, report: report.file });
    }
    await onApplied?.(p, i);
  }
}

interface Reject {
  message: string;
  file: string;
}

/** Which files and hunks did not apply: `git apply --reject` on the tree as it was before the patch. */
async function rejectReport(ctx: StageContext, dir: string, p: { file: string; path: string }, amOutput: string): Promise<Reject> {
  await git(dir, ['am', '--abort'], { reject: false });
  const res = await git(dir, ['apply', '--reject', '--verbose', p.path], { reject: false });
  const text = `${res.stdout}\n${res.stderr}`;
  const failures: string[] = [];
  const rejects: string[] = [];
  for (const m of text.matchAll(/^error: patch failed: (.+):(\d+)$/gm)) failures.push(`${m[1]} (at line ${m[2]})`);
  for (const m of text.matchAll(/^error: (.+): (No such file or directory|does not exist in index|already exists in working directory)$/gm)) failures.push(`${m[1]}: ${m[2]}`);
  for (const m of text.matchAll(/^Applying patch (.+) with (\d+) rejects?\.\.\.$/gm)) {
    const file = m[1]!;
    const rej = await readFile(path.join(dir, `${file}.rej`), 'utf8').catch(() => '');
    const hunks = [...rej.matchAll(/^(@@ .* @@.*)$/gm)].map((h) => h[1]!);
    const numbers = [...text.slice(m.index).matchAll(/^Rejected hunk #(\d+)\.$/gm)].map((h) => `#${h[1]}`);
    rejects.push(`  ${file}: ${m[2]} hunk(s) rejected ${numbers.slice(0, Number(m[2])).join(', ')}\n${hunks.map((h) => `      ${h}`).join('\n')}\n${rej}`);
  }
  const reportFile = path.join(ctx.paths.reports, `patch-reject-${p.file.replace(/\.patch$/, '')}.txt`);
  const body = [
    `patch ${p.file} does not apply to ${ctx.manifest.data.kubernetes.version}`,
    '',
    'git am said:',
    amOutput.trim(),
    '',
    'git apply --reject said:',
    text.trim(),
    '',
    ...rejects,
  ].join('\n');
  await writeFileAtomic(reportFile, `${body}\n`);
  const where = failures.length ? failures.join('; ') : 'see report';
  const hunkLines = rejects.map((r) => r.split('\n').slice(0, 3).join('\n')).join('\n');
  return {
    file: reportFile,
    message:
      `patch ${p.file} does not apply: ${where}\n${hunkLines}\n` +
      `Nothing was built. Reject report: ${reportFile}\n` +
      `Refresh the patch against ${ctx.manifest.data.kubernetes.version} (git am --3way in a checkout, then git format-patch) and update ${path.join(ctx.manifest.patchesDir, 'series')}.`,
  };
}
