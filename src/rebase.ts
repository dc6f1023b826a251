// kubelet-lxc rebase <release> <new-version>: carries a release's patch series to another
// Kubernetes release. It pins the new release (as `pin` does), assembles both trees (source
// stage), replays the series onto the new tree with `git am -3` (the old tree's objects fetched
// in, so a moved context can merge), and says of each patch: applied, applied with a 3-way merge,
// already upstream (dropped) or conflict (file and hunk). Only a series without conflicts is
// written (the series folder of the new minor, then releases/<new-version>.json), after which the
// stock-vs-patched matrix runs on it. A conflict writes nothing there: the report says where.
import path from 'node:path';
import { cp, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { buildDirAtomic, exists, writeFileAtomic } from './lib/fsutil.js';
import { git } from './lib/git.js';
import type { Logger } from './lib/progress.js';
import { isVersionTag } from './lib/version.js';
import { RELEASES_DIR, loadManifestFile, minorOf, type LoadedManifest } from './manifest.js';
import { pinRelease } from './pin.js';
import { RKE2_KINE_VERSIONS } from './rke2/kine.js';
import { runPipeline } from './runner.js';
import { readSeries } from './stages/patch.js';
import type { SiteTests } from './stages/smoke/patchtests.js';
import { runSeriesMatrix, type SeriesMatrixResult } from './stages/smoke/matrix.js';
import { StageError, type StageContext } from './stages/types.js';

export type PatchOutcome = 'applied' | '3-way' | 'upstream' | 'conflict';

export interface PatchResult {
  patch: string;
  outcome: PatchOutcome;
  /** conflict: each file that did not merge, with the patch's hunks there that do not apply */
  conflicts?: { file: string; hunks: string[] }[];
  /** things to look at even though the patch went in (e.g. new files in a folder the new tree lacks) */
  warnings?: string[];
}

export interface RebaseOptions {
  /** the release whose series is replayed (a manifest id, version or file) */
  from: LoadedManifest;
  version: string;
  releasesDir?: string;
  kine?: string;
  rke2?: string;
  goproxy?: string;
  gitUrl?: string;
  /** replace an existing manifest of the new version, or a series folder of another minor */
  replace?: boolean;
  matrix: boolean;
  /** a StageContext for a manifest (the CLI's options: workdir, engine, source kind, ...) */
  contextFor: (m: LoadedManifest) => Promise<StageContext>;
  log: Logger;
}

export interface RebaseReport {
  from: { release: string; kubernetes: string; series: string };
  to: { kubernetes: string; series: string; manifest: string | null };
  patches: PatchResult[];
  /** the series and manifest were written (no conflicts) */
  written: boolean;
  /** site-tests.json entries dropped with a patch found upstream */
  droppedSiteTests: string[];
  matrix: { ok: boolean; problems: string[]; reports: string[] } | null;
  notes: string[];
  ok: boolean;
  reportFile: string;
}

const EXPORT_ARGS = ['-c', 'core.abbrev=12', '-c', 'diff.algorithm=myers', '-c', 'diff.renames=false', 'format-patch', '-q', '--no-signature', '--zero-commit', '-N', '--full-index', '--stat=80'];

export async function rebaseSeries(o: RebaseOptions): Promise<RebaseReport> {
  const { from, version, log } = o;
  const oldVersion = from.data.kubernetes.version;
  if (!isVersionTag(version)) throw new StageError(`"${version}" is not a Kubernetes version such as v1.37.1`, 'cli');
  if (version === oldVersion) throw new StageError(`${from.id} is already Kubernetes ${version}: give another version to rebase onto`, 'cli');
  const releasesDir = path.resolve(o.releasesDir ?? RELEASES_DIR);
  const manifestFile = path.join(releasesDir, `${version}.json`);
  if ((await exists(manifestFile)) && !o.replace) throw new StageError(`${manifestFile} exists; pass --replace to replace it and its series`, 'cli');
  const oldSeriesDir = from.patchesDir;
  const newSeriesDir = path.join(path.dirname(oldSeriesDir), minorOf(version));
  const sameFolder = newSeriesDir === oldSeriesDir;
  if (!sameFolder && (await exists(newSeriesDir)) && !o.replace) {
    throw new StageError(`${newSeriesDir} already holds a series for ${minorOf(version)}; pass --replace to replace it with the replayed ${from.id} series`, 'cli');
  }
  const series = await readSeries(oldSeriesDir);
  const notes: string[] = [];

  // 1. pin the new release where nothing reads it yet
  const pinDir = await mkdtemp(path.join(os.tmpdir(), 'kubelet-lxc-rebase-'));
  try {
    const rke2 = o.rke2 ?? `${version}+rke2r1`;
    let kine = o.kine;
    if (!kine && !RKE2_KINE_VERSIONS[rke2] && from.data.kine) {
      kine = from.data.kine.version;
      notes.push(`kine ${kine} carried over from ${from.id}: which kine RKE2 ${rke2} runs is not known here (check rancher/rke2's go.mod at that tag, then re-pin with --kine)`);
    }
    const pinned = await pinRelease({ version, rke2: o.rke2, kine, goproxy: o.goproxy, gitUrl: o.gitUrl, releasesDir: pinDir, log });
    notes.push(...pinned.notes.filter((n) => !n.startsWith('no patch series')));
    pinned.manifest.patches = path.relative(releasesDir, newSeriesDir);
    await writeFile(pinned.file, `${JSON.stringify(pinned.manifest, null, 2)}\n`);
    const target = loadManifestFile(pinned.file);
    // the manifest lives in a temporary folder until the series is written: patches resolve beside the final one
    target.patchesDir = newSeriesDir;

    // 2. both trees, verified (cached by the source stage)
    const oldCtx = await o.contextFor(from);
    const newCtx = await o.contextFor(target);
    const oldTree = (await runPipeline(oldCtx, 'source', 'source')).outputs.source!;
    const newTree = (await runPipeline(newCtx, 'source', 'source')).outputs.source!;

    // 3. replay
    const work = path.join(newCtx.opts.workdir, 'rebase', `${from.id}-to-${version}`);
    await rm(work, { recursive: true, force: true });
    await mkdir(path.dirname(work), { recursive: true });
    await git(path.dirname(work), ['clone', '-q', '--no-checkout', newTree.tree, work]);
    await git(work, ['checkout', '-q', '-B', 'lxc', newTree.treeCommit]);
    // the series' preimage blobs: what a 3-way merge starts from
    await git(work, ['fetch', '-q', oldTree.tree, oldTree.treeCommit]);
    const date = new Date(newTree.sourceDateEpoch * 1000).toISOString();
    const results: PatchResult[] = [];
    const step = log.step(`replaying ${series.length} patches of ${from.id} onto ${version}`);
    for (const [i, p] of series.entries()) {
      step.update(`[${i + 1}/${series.length}] ${p.file}`);
      const before = (await git(work, ['rev-parse', 'HEAD'])).stdout.trim();
      // the whole change is already in the tree when the patch reverse-applies: upstream has it
      if ((await git(work, ['apply', '--reverse', '--check', p.path], { reject: false })).exitCode === 0) {
        results.push({ patch: p.file, outcome: 'upstream' });
        continue;
      }
      const res = await git(work, ['am', '-3', '--keep-cr', '--committer-date-is-author-date', p.path], { reject: false, env: { GIT_COMMITTER_DATE: date } });
      const said = `${res.stdout}\n${res.stderr}`;
      if (res.exitCode !== 0) {
        results.push({ patch: p.file, outcome: 'conflict', conflicts: await conflictsOf(work, p.path) });
        await git(work, ['am', '--skip'], { reject: false });
        await git(work, ['reset', '-q', '--hard', 'HEAD'], { reject: false });
        await git(work, ['clean', '-qfd'], { reject: false });
        continue;
      }
      const after = (await git(work, ['rev-parse', 'HEAD'])).stdout.trim();
      if (after === before) {
        results.push({ patch: p.file, outcome: 'upstream' });
        continue;
      }
      const threeWay = /Falling back to patching base and 3-way merge|Using index info to reconstruct a base tree/.test(said);
      const warnings = await newFoldersOf(work, newTree.treeCommit, before, after);
      results.push({ patch: p.file, outcome: threeWay ? '3-way' : 'applied', ...(warnings.length ? { warnings } : {}) });
    }
    const conflicts = results.filter((r) => r.outcome === 'conflict');
    if (conflicts.length) step.fail(`${conflicts.length} of ${series.length} patches conflict`);
    else step.succeed(`${series.length} patches replayed: ${summaryOf(results)}`);

    const report: RebaseReport = {
      from: { release: from.id, kubernetes: oldVersion, series: oldSeriesDir },
      to: { kubernetes: version, series: newSeriesDir, manifest: null },
      patches: results,
      written: false,
      droppedSiteTests: [],
      matrix: null,
      notes,
      ok: false,
      reportFile: path.join(newCtx.paths.reports, `rebase-${from.id}-to-${version}.json`),
    };

    // 4. write the series and the manifest (only without conflicts)
    if (!conflicts.length) {
      const dropped = results.filter((r) => r.outcome === 'upstream').map((r) => r.patch);
      report.droppedSiteTests = await writeSeries({ work, base: newTree.treeCommit, from: oldSeriesDir, to: newSeriesDir, oldVersion, version, dropped, sameFolder });
      await mkdir(releasesDir, { recursive: true });
      await rename(pinned.file, manifestFile).catch(async () => {
        await writeFileAtomic(manifestFile, await readFile(pinned.file, 'utf8'));
      });
      report.written = true;
      report.to.manifest = manifestFile;
      if (sameFolder) notes.push(`${path.basename(from.file)} still names ${path.relative(path.dirname(from.file), oldSeriesDir)}, which now holds the series for ${version}: remove it, or check it still applies (kubelet-lxc patch --release ${from.id})`);
      for (const d of dropped) notes.push(`${d} is already upstream in ${version}: dropped from the series (write where upstream fixed it into the series README)`);
      // 5. the proof of the written series
      if (o.matrix) {
        const m: SeriesMatrixResult = await runSeriesMatrix(await o.contextFor(loadManifestFile(manifestFile)));
        report.matrix = { ok: m.matrix.ok, problems: m.matrix.problems, reports: m.reports };
      } else notes.push('the matrix was not run (--no-matrix): run kubelet-lxc matrix --release ' + version);
    }
    report.ok = report.written && (report.matrix?.ok ?? true);
    await writeFileAtomic(report.reportFile, `${JSON.stringify(report, null, 2)}\n`);
    await writeFileAtomic(report.reportFile.replace(/\.json$/, '.md'), `${formatRebase(report)}\n`);
    return report;
  } finally {
    await rm(pinDir, { recursive: true, force: true });
  }
}

function summaryOf(results: PatchResult[]): string {
  const n = (o: PatchOutcome) => results.filter((r) => r.outcome === o).length;
  return `${n('applied')} applied, ${n('3-way')} 3-way, ${n('upstream')} already upstream, ${n('conflict')} conflict`;
}

/** A conflict's files and hunks: `git apply --reject` of the patch on the tree it failed on. */
async function conflictsOf(work: string, patch: string): Promise<{ file: string; hunks: string[] }[]> {
  const unmerged = (await git(work, ['diff', '--name-only', '--diff-filter=U'], { reject: false })).stdout.split('\n').filter(Boolean);
  await git(work, ['reset', '-q', '--hard', 'HEAD'], { reject: false });
  const res = await git(work, ['apply', '--reject', '--verbose', patch], { reject: false });
  const text = `${res.stdout}\n${res.stderr}`;
  const out = new Map<string, string[]>();
  for (const f of unmerged) out.set(f, []);
  // where the 3-way merge left conflicts, the patch's hunks there; a file that merged is not
  // named even when its hunks do not apply as they are (unless nothing was left unmerged)
  const named = (f: string) => unmerged.length === 0 || unmerged.includes(f);
  for (const m of text.matchAll(/^Applying patch (.+) with (\d+) rejects?\.\.\.$/gm)) {
    const rej = await readFile(path.join(work, `${m[1]}.rej`), 'utf8').catch(() => '');
    if (named(m[1]!)) out.set(m[1]!, [...rej.matchAll(/^(@@ .* @@.*)$/gm)].map((h) => h[1]!));
  }
  for (const m of text.matchAll(/^error: (.+): (No such file or directory|does not exist in index|already exists in working directory)$/gm)) {
    if (!out.has(m[1]!) && named(m[1]!)) out.set(m[1]!, [m[2]!]);
  }
  await git(work, ['reset', '-q', '--hard', 'HEAD'], { reject: false });
  await git(work, ['clean', '-qfd'], { reject: false });
  return [...out].map(([file, hunks]) => ({ file, hunks }));
}

/** Files a patch added in a folder the new release does not have: a package that moved upstream (its site must be re-found). */
async function newFoldersOf(work: string, base: string, before: string, after: string): Promise<string[]> {
  const added = (await git(work, ['diff', '--name-only', '--diff-filter=A', before, after])).stdout.split('\n').filter(Boolean);
  const warnings: string[] = [];
  for (const dir of new Set(added.map((f) => path.posix.dirname(f)))) {
    const there = (await git(work, ['ls-tree', '--name-only', base, `${dir}/`], { reject: false })).stdout.trim();
    if (!there) warnings.push(`adds files in ${dir}/, which the new tree does not have: did the package move? (re-find the site by its function name)`);
  }
  return warnings;
}

/** Export the replayed commits as the new series folder (atomic), with the old folder's other files. */
async function writeSeries(o: { work: string; base: string; from: string; to: string; oldVersion: string; version: string; dropped: string[]; sameFolder: boolean }): Promise<string[]> {
  let droppedTests: string[] = [];
  const fill = async (dir: string): Promise<void> => {
    // everything but the patches and series: README, site-tests.json, doctor/, tools/
    for (const name of await readdir(o.from)) {
      if (/^\d{4}-.*\.patch$/.test(name) || name === 'series') continue;
      await cp(path.join(o.from, name), path.join(dir, name), { recursive: true });
    }
    await git(o.work, [...EXPORT_ARGS, '-o', dir, `${o.base}..lxc`]);
    const patches = (await readdir(dir)).filter((n) => /^\d{4}-.*\.patch$/.test(n)).sort();
    // the old series' comment lines (the first names the release), then the patches
    const comments = (await readFile(path.join(o.from, 'series'), 'utf8')).split('\n').filter((l) => l.startsWith('#')).slice(1);
    await writeFile(path.join(dir, 'series'), [`# kubelet-lxc patch series for Kubernetes ${o.version} (apply in order with git am)`, ...comments, ...patches, ''].join('\n'));
    // the doctor's release_test.go names the minor; what it expects of the release stays for the matrix to judge
    for (const name of ['README.md', path.join('tools', 'regen.sh'), path.join('doctor', 'cmd', 'kubelet-lxc-doctor', 'release_test.go')]) {
      const f = path.join(dir, name);
      if (await exists(f)) await writeFile(f, (await readFile(f, 'utf8')).replaceAll(o.oldVersion, o.version).replaceAll(minorOf(o.oldVersion), minorOf(o.version)));
    }
    const specFile = path.join(dir, 'site-tests.json');
    if (await exists(specFile)) {
      const spec = JSON.parse(await readFile(specFile, 'utf8')) as SiteTests;
      // a patch found upstream takes its site tests with it; a renumbered patch keeps them
      const renamed = (p: string): string | undefined => patches.find((n) => n.slice(5) === p.slice(5));
      droppedTests = spec.siteTests.filter((s) => !renamed(s.patch)).map((s) => `site ${s.site} (${s.patch})`);
      spec.siteTests = spec.siteTests.filter((s) => renamed(s.patch)).map((s) => ({ ...s, patch: renamed(s.patch)! }));
      spec.seams = spec.seams.map(renamed).filter((p): p is string => !!p);
      await writeFile(specFile, `${JSON.stringify(spec, null, 2)}\n`);
    }
  };
  await buildDirAtomic(o.to, fill);
  return droppedTests;
}

export function formatRebase(r: RebaseReport): string {
  const lines = [`# rebase ${r.from.release} (Kubernetes ${r.from.kubernetes}) onto ${r.to.kubernetes}`, '', '| patch | outcome | where |', '|---|---|---|'];
  for (const p of r.patches) {
    const where = p.outcome === 'conflict' ? (p.conflicts ?? []).map((c) => `${c.file}${c.hunks.length ? `: ${c.hunks.join('; ')}` : ''}`).join('<br>') : (p.warnings ?? []).join('<br>');
    lines.push(`| ${p.patch} | ${p.outcome === 'upstream' ? 'already upstream (dropped)' : p.outcome === '3-way' ? 'applied with a 3-way merge' : p.outcome} | ${where.replaceAll('|', '\\|')} |`);
  }
  lines.push('');
  if (r.written) lines.push(`Wrote ${r.to.series} and ${r.to.manifest}.`);
  else lines.push(`Nothing written: ${r.patches.filter((p) => p.outcome === 'conflict').length} patch(es) conflict. Refresh them by hand (git am -3 in a checkout of ${r.to.kubernetes}, resolve, git format-patch), then run rebase again.`);
  if (r.droppedSiteTests.length) lines.push(`Site tests dropped with their patch: ${r.droppedSiteTests.join(', ')}.`);
  if (r.matrix) lines.push(`Matrix: ${r.matrix.ok ? 'ok' : 'FAILED'}${r.matrix.problems.length ? `\n${r.matrix.problems.map((p) => `- ${p}`).join('\n')}` : ''}`, ...r.matrix.reports.map((f) => `Report: ${f}`));
  for (const n of r.notes) lines.push(`Note: ${n}`);
  return lines.join('\n');
}
