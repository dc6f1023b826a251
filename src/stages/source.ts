// source: the pinned Kubernetes tree, verified, cached per commit (git) or per module hash (goproxy).
import path from 'node:path';
import { cp, chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { buildDirAtomic, exists, hashJson, readJson, writeFileAtomic } from '../lib/fsutil.js';
import { git, headCommit } from '../lib/git.js';
import { goEnv, goModDownload, hashGoMod, hashModuleDir, type DownloadedModule } from '../lib/gomod.js';
import { redactUrls, run } from '../lib/exec.js';
import { minorAtLeast } from '../lib/version.js';
import { PROJECT_ROOT, type LoadedManifest, type ModulePin } from '../manifest.js';
import { StageError, type SourceKind, type SourceOutput, type Stage, type StageContext } from './types.js';
import type { Logger } from '../lib/progress.js';

function epochOf(iso: string): number {
  return Math.floor(new Date(iso).getTime() / 1000);
}

export const sourceStage: Stage<'source'> = {
  name: 'source',
  description: 'fetch and verify the pinned Kubernetes tree',
  sources: () => ['src/stages/source.ts', 'src/lib/gomod.ts', 'src/lib/git.ts'].map((f) => path.join(PROJECT_ROOT, f)),
  async verify(ctx) {
    await requireGit();
    if (ctx.opts.sourceKind === 'git') requireVerifiedCommit(ctx);
    else {
      pinnedModules(ctx);
      await requireHostGo(ctx.manifest.data.go.version);
    }
  },
  async inputs(ctx) {
    const m = ctx.manifest.data;
    return ctx.opts.sourceKind === 'git'
      ? { kind: 'git', tag: m.kubernetes.version, commit: m.kubernetes.commit, url: ctx.opts.sourceUrl ?? m.source.git.url }
      : { kind: 'goproxy', pins: m.source.goproxy, commitTime: m.kubernetes.commitTime };
  },
  async run(ctx) {
    return ctx.opts.sourceKind === 'git' ? fetchGit(ctx) : fetchGoproxy(ctx);
  },
  async intact(_ctx, out) {
    return (await exists(path.join(out.tree, '.git'))) && (await headCommit(out.tree).catch(() => '')) === out.treeCommit;
  },
};

/** git runs in every stage up to build (clone, am, the goproxy tree's commit): say how to get it. */
export async function requireGit(): Promise<void> {
  const r = await run('git', ['--version'], { reject: false }).catch(() => undefined);
  if (!r || r.exitCode !== 0) {
    throw new StageError('git is not installed (the source, patch and build stages run it): apt-get install -y git', 'source', { hint: 'apt-get install -y git' });
  }
}

function requireVerifiedCommit(ctx: StageContext): string {
  const tag = ctx.manifest.data.kubernetes.version;
  const want = ctx.manifest.data.kubernetes.commit;
  if (!want) {
    throw new StageError(
      `${ctx.manifest.file} has no verified commit SHA for ${tag} (it was pinned without access to GitHub), so the git source refuses it. ` +
        `Use --source goproxy, or re-pin where GitHub is reachable: kubelet-lxc pin ${tag}`,
      'source',
    );
  }
  return want;
}

async function fetchGit(ctx: StageContext): Promise<SourceOutput> {
  const m = ctx.manifest.data;
  const tag = m.kubernetes.version;
  const url = ctx.opts.sourceUrl ?? m.source.git.url;
  const shownUrl = redactUrls(url);
  const want = requireVerifiedCommit(ctx);
  const tree = path.join(ctx.paths.cache, 'source', 'git', want);
  const base = { kind: 'git' as const, origin: shownUrl, tree, treeCommit: want, upstreamCommit: want, sourceDateEpoch: epochOf(m.kubernetes.commitTime) };
  if ((await exists(path.join(tree, '.git'))) && (await headCommit(tree).catch(() => '')) === want) {
    ctx.log.info(`source: verified tree for ${tag} (${want}) already cached at ${tree}`);
    return { ...base, verification: [`tag ${tag} peeled to ${want}, as pinned (cached)`] };
  }
  await buildDirAtomic(tree, async (dir) => {
    await git(dir, ['init', '-q']);
    ctx.log.info(`source: fetching tag ${tag} (shallow) from ${shownUrl}`);
    const fetched = await git(dir, ['fetch', '--depth', '1', '--no-tags', '--progress', '--', url, `+refs/tags/${tag}:refs/tags/${tag}`], {
      reject: false,
      signal: ctx.signal,
      onLine: (l) => ctx.log.detail(l),
    });
    if (fetched.exitCode !== 0) {
      const text = `${fetched.stderr}\n${fetched.stdout}`;
      if (/couldn't find remote ref|not our ref|no such ref/i.test(text)) {
        throw new StageError(`tag ${tag} does not exist in ${shownUrl}. Check kubernetes.version in ${ctx.manifest.file}, or point --source-url at a mirror that has the tag.`, 'source');
      }
      throw new StageError(`could not fetch ${tag} from ${shownUrl}:\n${text.trim().split('\n').slice(-5).join('\n')}\nCheck the URL/network, or use --source goproxy.`, 'source');
    }
    const got = (await git(dir, ['rev-parse', `refs/tags/${tag}^{commit}`])).stdout.trim();
    if (got !== want) {
      throw new StageError(
        `refusing to build: tag ${tag} at ${shownUrl} points to commit ${got}, but ${ctx.manifest.file} pins ${want}. ` +
          `The mirror may be wrong or the tag moved; check both SHAs before re-pinning.`,
        'source',
        { expected: want, actual: got },
      );
    }
    await git(dir, ['checkout', '-q', '--detach', got]);
  });
  return { ...base, verification: [`tag ${tag} peeled to ${want}, as pinned`] };
}

/** Every module the tree needs: k8s.io/kubernetes and its staging modules, as pinned. */
function pinnedModules(ctx: StageContext): { root: ModulePin; staging: ModulePin[] } {
  const p = ctx.manifest.data.source.goproxy;
  if (!p) throw new StageError(`${ctx.manifest.file} has no source.goproxy pins; re-pin with "kubelet-lxc pin ${ctx.manifest.data.kubernetes.version}"`, 'source');
  return p;
}

/** The goproxy source runs go mod download and go work vendor on the host: say which Go it needs when there is none. */
async function requireHostGo(manifestGo: string): Promise<void> {
  const minor = manifestGo.split('.').slice(0, 2).join('.');
  const r = await run('go', ['env', 'GOVERSION'], { reject: false, env: { ...process.env, GOTOOLCHAIN: 'local' } }).catch(() => undefined);
  const have = r?.exitCode === 0 ? r.stdout.trim().replace(/^go/, '') : undefined;
  if (!have || !minorAtLeast(have, manifestGo)) {
    throw new StageError(
      `the Go module proxy source needs Go ${minor} or newer on the host (it runs go mod download and go work vendor there; the compile uses Go ${manifestGo} in the builder container), ` +
        `but ${have ? `the host has go${have}` : 'there is no go on the PATH'}: install Go ${minor}.x (e.g. Debian's golang-${minor}-go package, or a Go release archive) and put its bin/ on the PATH`,
      'source',
    );
  }
}

async function fetchGoproxy(ctx: StageContext): Promise<SourceOutput> {
  const m = ctx.manifest.data;
  const pins = pinnedModules(ctx);
  const all = [pins.root, ...pins.staging];
  const key = hashJson(all).slice(0, 16);
  const tree = path.join(ctx.paths.cache, 'source', 'goproxy', `${m.kubernetes.version}-${key}`);
  const proxy = ctx.opts.goproxy ?? process.env.GOPROXY;
  const origin = `Go module proxy (${proxy ? redactUrls(proxy) : 'go env default'})`;
  const base = { kind: 'goproxy' as const, origin, tree, upstreamCommit: m.kubernetes.commit, sourceDateEpoch: epochOf(m.kubernetes.commitTime) };
  const marker = path.join(ctx.paths.cache, 'source', 'goproxy', `${m.kubernetes.version}-${key}.verified.json`);
  const rec = (await exists(path.join(tree, '.git'))) ? await readJson<{ treeCommit: string; verification: string[] }>(marker) : undefined;
  if (rec?.treeCommit) {
    if ((await headCommit(tree).catch(() => '')) === rec.treeCommit) {
      ctx.log.info(`source: tree assembled from the module proxy already cached at ${tree}`);
      return { ...base, treeCommit: rec.treeCommit, verification: rec.verification };
    }
  }

  await requireHostGo(m.go.version);
  const verification = await downloadVerified(ctx, all, proxy);
  let treeCommit = '';
  await buildDirAtomic(tree, async (dir) => {
    ctx.log.info(`source: assembling ${m.kubernetes.version} from ${all.length} modules`);
    const dirs = verification.dirs;
    await cp(dirs.get(pins.root.path)!, dir, { recursive: true });
    for (const mod of pins.staging) {
      const name = mod.path.replace(/^k8s\.io\//, '');
      const dest = path.join(dir, 'staging', 'src', 'k8s.io', name);
      await rm(dest, { recursive: true, force: true });
      await mkdir(path.dirname(dest), { recursive: true });
      await cp(dirs.get(mod.path)!, dest, { recursive: true });
    }
    await makeWritable(dir);
    await checkStagingComplete(dir, pins.staging);
    ctx.log.info('source: generating vendor/ with go work vendor');
    await run('go', ['work', 'vendor'], {
      cwd: dir,
      env: goEnv({ GOPROXY: proxy, GOTOOLCHAIN: 'local', GOWORK: undefined }),
      signal: ctx.signal,
      onLine: (l) => ctx.log.detail(l),
    });
    await checkVendorMatchesGoMod(dir);
    // One commit dated at the tag's time, bytes stored as they are (no eol/filter attributes).
    await git(dir, ['init', '-q']);
    await writeFile(path.join(dir, '.git', 'info', 'attributes'), '* -text -eol -filter -diff -merge\n');
    await git(dir, ['add', '-A', '-f']);
    const date = m.kubernetes.commitTime;
    await git(dir, ['commit', '-q', '--no-verify', '-m', `Kubernetes ${m.kubernetes.version} assembled from Go modules\n\n${verification.lines.join('\n')}\n`], {
      env: { GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date },
    });
    await git(dir, ['tag', m.kubernetes.version]);
    treeCommit = await headCommit(dir);
  });
  const out = { ...base, treeCommit, verification: verification.lines };
  await writeFileAtomic(marker, JSON.stringify({ treeCommit, verification: verification.lines }, null, 2));
  return out;
}

export async function makeWritable(dir: string): Promise<void> {
  // Module cache files are read-only; the tree must be ours to patch.
  await run('chmod', ['-R', 'u+w', dir]);
  await chmod(dir, 0o755);
}

async function checkStagingComplete(dir: string, staging: ModulePin[]): Promise<void> {
  const work = await readFile(path.join(dir, 'go.work'), 'utf8').catch(() => '');
  const used = [...work.matchAll(/\.\/staging\/src\/(k8s\.io\/[\w.-]+)/g)].map((x) => x[1]!);
  const have = new Set(staging.map((s) => s.path));
  const missing = used.filter((u) => !have.has(u));
  if (missing.length) {
    throw new StageError(`the manifest pins no staging module for ${missing.join(', ')} (listed in go.work); re-pin the release`, 'source');
  }
}

/** vendor/modules.txt must list every module the root go.mod requires, at the same version. */
export async function checkVendorMatchesGoMod(dir: string): Promise<void> {
  const mod = JSON.parse((await run('go', ['mod', 'edit', '-json'], { cwd: dir, env: goEnv({ GOTOOLCHAIN: 'local' }) })).stdout) as {
    Require?: { Path: string; Version: string }[];
  };
  const txt = await readFile(path.join(dir, 'vendor', 'modules.txt'), 'utf8');
  const listed = new Map<string, Set<string>>();
  for (const m of txt.matchAll(/^# (\S+) (\S+)/gm)) {
    const set = listed.get(m[1]!) ?? new Set<string>();
    set.add(m[2]!);
    listed.set(m[1]!, set);
  }
  const wrong = (mod.Require ?? []).filter((r) => !listed.get(r.Path)?.has(r.Version)).map((r) => `${r.Path} ${r.Version}`);
  if (wrong.length) {
    throw new StageError(`generated vendor/modules.txt does not match go.mod: missing ${wrong.slice(0, 10).join(', ')}${wrong.length > 10 ? ' …' : ''}`, 'source');
  }
}

export interface Verified {
  lines: string[];
  dirs: Map<string, string>;
}

export async function downloadVerified(ctx: StageContext, mods: ModulePin[], proxy: string | undefined): Promise<Verified> {
  // A throwaway module whose go.sum holds the pins: `go` itself then refuses any download
  // whose hash differs ("SECURITY ERROR"), before we hash the extracted files again below.
  const work = path.join(ctx.paths.cache, 'goproxy-work');
  await mkdir(work, { recursive: true });
  await writeFile(path.join(work, 'go.mod'), 'module kubelet-lxc.invalid/fetch\n\ngo 1.21\n');
  const sum = mods.flatMap((m) => [`${m.path} ${m.version} ${m.h1}`, ...(m.goModH1 ? [`${m.path} ${m.version}/go.mod ${m.goModH1}`] : [])]);
  await writeFile(path.join(work, 'go.sum'), `${sum.join('\n')}\n`);
  const step = ctx.log.step(`downloading ${mods.length} modules through ${proxy ? redactUrls(proxy) : 'the Go module proxy'}`);
  let got: DownloadedModule[];
  try {
    got = await goModDownload(work, mods.map((m) => `${m.path}@${m.version}`), goEnv({ GOPROXY: proxy, GOTOOLCHAIN: 'local', GONOSUMDB: mods.map((m) => m.path).join(',') }), (l) => ctx.log.detail(l));
  } catch (err) {
    step.fail();
    const text = (err as Error).message;
    const bad = /verifying (\S+)@(\S+?):.*checksum mismatch/.exec(text);
    if (bad) {
      const pin = mods.find((m) => m.path === bad[1]);
      throw new StageError(`module ${bad[1]}@${bad[2]} does not match its pinned hash ${pin?.h1 ?? ''}: refusing it.\n${text}`, 'source', { module: bad[1] });
    }
    throw new StageError(`cannot download the pinned modules through ${proxy ? redactUrls(proxy) : 'the Go module proxy'}: ${text}`, 'source');
  }
  const byPath = new Map(got.map((g) => [g.Path, g] as const));
  const dirs = new Map<string, string>();
  for (const m of mods) {
    const d = byPath.get(m.path);
    if (!d || d.Error || !d.Dir) {
      step.fail();
      const err = d?.Error ?? 'not returned by go mod download';
      if (/checksum mismatch|SECURITY ERROR/i.test(err)) {
        throw new StageError(`module ${m.path}@${m.version} does not match its pinned hash ${m.h1}: refusing it.\n${err}`, 'source', { module: m.path });
      }
      throw new StageError(`cannot download ${m.path}@${m.version} through ${proxy ? redactUrls(proxy) : 'the Go module proxy'}: ${err}`, 'source', { module: m.path });
    }
    // Hash the extracted files ourselves: what we copy is exactly what was pinned.
    const h1 = await hashModuleDir(d.Dir, m.path, m.version);
    if (h1 !== m.h1) {
      step.fail();
      throw new StageError(`module ${m.path}@${m.version} in ${d.Dir} hashes to ${h1}, pinned ${m.h1}: refusing it (a tampered module cache? remove that folder with "go clean -modcache")`, 'source', { module: m.path });
    }
    if (m.goModH1 && d.GoMod && (await hashGoMod(d.GoMod)) !== m.goModH1) {
      step.fail();
      throw new StageError(`go.mod of ${m.path}@${m.version} does not match its pinned hash ${m.goModH1}: refusing it`, 'source');
    }
    dirs.set(m.path, d.Dir);
  }
  step.succeed(`downloaded and verified ${mods.length} modules against the manifest's h1 hashes`);
  const lines = [`${mods.length} modules verified against the h1: hashes pinned in the manifest (go.sum check, then a Hash1 of the extracted files)`];
  lines.push(await checkSumDb(ctx, mods, proxy));
  return { lines, dirs };
}

/** Ask the checksum database too, where it is reachable; say which it was. */
async function checkSumDb(ctx: StageContext, mods: ModulePin[], proxy: string | undefined): Promise<string> {
  if (process.env.GOSUMDB === 'off' || process.env.GONOSUMDB === '*' || process.env.GOFLAGS?.includes('-insecure')) {
    return 'checksum database: disabled by GOSUMDB/GONOSUMDB in the environment, not consulted';
  }
  const work = path.join(ctx.paths.cache, 'sumdb-work');
  await mkdir(work, { recursive: true });
  await writeFile(path.join(work, 'go.mod'), 'module kubelet-lxc.invalid/sumdb\n\ngo 1.21\n');
  await writeFile(path.join(work, 'go.sum'), '');
  let got: DownloadedModule[];
  try {
    got = await goModDownload(work, mods.map((m) => `${m.path}@${m.version}`), goEnv({ GOPROXY: proxy, GOTOOLCHAIN: 'local' }));
  } catch (err) {
    return `checksum database: not reachable (${(err as Error).message.split('\n')[0]}); verified against the manifest pins only`;
  }
  const bad = got.filter((g) => g.Error);
  const mismatched = bad.filter((g) => /checksum mismatch|SECURITY ERROR/i.test(g.Error ?? ''));
  if (mismatched.length) {
    throw new StageError(`the checksum database disagrees with the module proxy for ${mismatched.map((g) => g.Path).join(', ')}: refusing the tree`, 'source');
  }
  if (bad.length) {
    return `checksum database: could not confirm ${bad.length} of ${mods.length} modules (${bad[0]!.Error!.split('\n')[0]}); those are verified against the manifest pins only`;
  }
  return `checksum database: confirmed all ${mods.length} module hashes`;
}

/**
 * --source auto decided here, where the source lives: the git tag when the manifest has a verified
 * commit and the remote answers, else the Go module proxy (saying why). git's own error is shown,
 * and a local git problem (a mirror owned by another user) stops the run instead of falling back.
 */
export async function chooseSource(wanted: SourceKind | 'auto', manifest: LoadedManifest, sourceUrl: string | undefined, log: Logger): Promise<SourceKind> {
  if (wanted !== 'auto') return wanted;
  const m = manifest.data;
  if (!m.kubernetes.commit) {
    log.info(`source: ${manifest.id} has no verified commit SHA, using the Go module proxy`);
    return 'goproxy';
  }
  if (m.source.default === 'goproxy' && !sourceUrl) {
    log.info('source: the manifest prefers the Go module proxy');
    return 'goproxy';
  }
  const url = sourceUrl ?? m.source.git.url;
  await requireGit();
  const probe = await git(process.cwd(), ['ls-remote', '--tags', '--', url, `refs/tags/${m.kubernetes.version}`], { reject: false, env: { GIT_HTTP_LOW_SPEED_LIMIT: '1000', GIT_HTTP_LOW_SPEED_TIME: '15' } });
  if (probe.exitCode === 0) {
    log.info(`source: git (${redactUrls(url)})`);
    return 'git';
  }
  // git's own words: its fatal lines, not only the last (which is mostly "Could not read from remote repository")
  const said = redactUrls(probe.stderr.trim().split('\n').filter((l) => /^(fatal|error):/.test(l)).join(' ') || probe.stderr.trim().split('\n').pop() || 'no answer');
  const dubious = /detected dubious ownership in repository at '([^']+)'/.exec(probe.stderr);
  if (dubious) {
    // a problem of this machine, not of the network: falling back would hide it
    const hint = `git config --global --add safe.directory ${dubious[1]}`;
    throw new StageError(`git refuses ${redactUrls(url)}: ${said}. The mirror belongs to another user; if you trust it: ${hint} (or use --source goproxy)`, 'source', { hint });
  }
  if (!m.source.goproxy) throw new StageError(`cannot reach ${redactUrls(url)} (git said: ${said}) and ${manifest.file} has no goproxy pins`, 'source');
  log.info(`source: ${redactUrls(url)} is not reachable (git said: ${said}); using the Go module proxy instead`);
  return 'goproxy';
}
