// pin: write a release manifest for a Kubernetes patch release with every pin filled, so that a
// maintainer moves to the next patch release with `pin` then `build-kubelet`.
import path from 'node:path';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { exists, writeFileAtomic } from './lib/fsutil.js';
import { run } from './lib/exec.js';
import { git } from './lib/git.js';
import { goEnv, goModDownload, type DownloadedModule } from './lib/gomod.js';
import { isVersionTag, parseVersion } from './lib/version.js';
import { RELEASES_DIR, minorOf, parseManifest, PLATFORMS, type ModulePin, type ReleaseManifest } from './manifest.js';
import { StageError } from './stages/types.js';
import type { Logger } from './lib/progress.js';
import { KINE_MODULE, kineVersionFor } from './rke2/kine.js';

export const KUBERNETES_GIT_URL = 'https://github.com/kubernetes/kubernetes.git';

export interface PinOptions {
  version: string;
  rke2?: string;
  /** the kine version (default: the one the RKE2 release runs, from src/rke2/kine.ts) */
  kine?: string;
  stamp?: string;
  goproxy?: string;
  gitUrl?: string;
  releasesDir?: string;
  force?: boolean;
  log: Logger;
}

export interface PinResult {
  file: string;
  manifest: ReleaseManifest;
  notes: string[];
}

async function download(cwd: string, mods: string[], env: Record<string, string | undefined>, log: Logger): Promise<{ got: DownloadedModule[]; sumdb: boolean }> {
  // progress: go's own "go: downloading ..." lines, not the JSON answer
  const progress = (l: string): void => {
    if (l.startsWith('go: ')) log.detail(l);
  };
  let got = await goModDownload(cwd, mods, env, progress);
  if (got.some((g) => g.Error && /sumdb|checksum database|verifying/i.test(g.Error) && !/mismatch/i.test(g.Error))) {
    // The checksum database does not know (or cannot be asked about) this version: pin on first use, and say so.
    got = await goModDownload(cwd, mods, { ...env, GONOSUMDB: mods.map((m) => m.split('@')[0]).join(',') }, progress);
    return { got, sumdb: false };
  }
  return { got, sumdb: true };
}

/**
 * The proxy's own .info of k8s.io/kubernetes@version (its Time is the tag's commit time),
 * through a private module cache: the shared cache's .info can have been rewritten by a
 * go command run inside a git checkout (VCS origin, that day's time).
 */
async function proxyInfo(cwd: string, version: string, env: Record<string, string | undefined>): Promise<{ Time: string }> {
  const res = await run('go', ['list', '-m', '-json', `k8s.io/kubernetes@${version}`], {
    cwd,
    env: { ...env, GOMODCACHE: path.join(cwd, 'modcache'), GOFLAGS: '-mod=mod -modcacherw' },
    reject: false,
  });
  const info = res.exitCode === 0 ? (JSON.parse(res.stdout) as { Time?: string }) : {};
  if (!info.Time) throw new StageError(`the Go module proxy gave no commit time for k8s.io/kubernetes@${version}: ${res.stderr.trim() || 'empty answer'}`, 'cli');
  return { Time: info.Time };
}

export async function pinRelease(opts: PinOptions): Promise<PinResult> {
  const { version, log } = opts;
  if (!isVersionTag(version)) throw new StageError(`"${version}" is not a Kubernetes version such as v1.36.4`, 'cli');
  const v = parseVersion(version)!;
  const notes: string[] = [];
  const releasesDir = opts.releasesDir ?? RELEASES_DIR;
  const file = path.join(releasesDir, `${version}.json`);
  if ((await exists(file)) && !opts.force) throw new StageError(`${file} exists; pass --force to re-pin it`, 'cli');
  // The flags first, before minutes of module downloads.
  const rke2 = opts.rke2 ?? `${version}+rke2r1`;
  if (!/^v\d+\.\d+\.\d+\+rke2r\d+$/.test(rke2) || !rke2.startsWith(`${version}+rke2r`)) {
    throw new StageError(`--rke2 ${rke2} does not ship Kubernetes ${version} (expected ${version}+rke2rN)`, 'cli', { hint: `--rke2 ${version}+rke2r1` });
  }
  const kineVersion = kineVersionFor(rke2, opts.kine);
  const stamp = opts.stamp ?? rke2;
  const stampParts = parseVersion(stamp);
  if (!stampParts || !isVersionTag(stamp)) {
    throw new StageError(`--stamp ${stamp} is not a semver version with a leading v (e.g. ${version}+lxc.1)`, 'cli', { hint: `--stamp ${version}+lxc.1` });
  }
  if (`${stampParts.major}.${stampParts.minor}.${stampParts.patch}` !== `${v.major}.${v.minor}.${v.patch}`) {
    throw new StageError(`--stamp ${stamp} must have ${version} as its core (RKE2 expects a kubelet of its Kubernetes version), e.g. ${version}+lxc.1`, 'cli', { hint: `--stamp ${version}+lxc.1` });
  }

  const work = await mkdtemp(path.join(os.tmpdir(), 'kubelet-lxc-pin-'));
  try {
    await writeFile(path.join(work, 'go.mod'), 'module kubelet-lxc.invalid/pin\n\ngo 1.21\n');
    const env = goEnv({ GOPROXY: opts.goproxy ?? process.env.GOPROXY, GOTOOLCHAIN: 'local' });
    const step = log.step(`resolving k8s.io/kubernetes@${version} through the Go module proxy`);
    const root = await download(work, [`k8s.io/kubernetes@${version}`], env, log);
    const r = root.got[0];
    if (!r || r.Error || !r.Dir || !r.Sum) {
      step.fail();
      throw new StageError(`the Go module proxy does not serve k8s.io/kubernetes@${version}: ${r?.Error ?? 'no answer'}`, 'cli');
    }
    const info = await proxyInfo(work, version, env);
    const goVersion = (await readFile(path.join(r.Dir, '.go-version'), 'utf8').catch(() => '')).trim();
    if (!/^\d+\.\d+(\.\d+)?$/.test(goVersion)) throw new StageError(`k8s.io/kubernetes@${version} has no usable .go-version (got "${goVersion}")`, 'cli');
    const work_ = await readFile(path.join(r.Dir, 'go.work'), 'utf8');
    const stagingPaths = [...work_.matchAll(/\.\/staging\/src\/(k8s\.io\/[\w.-]+)/g)].map((m) => m[1]!);
    const stagingVersion = `v0.${v.minor}.${v.patch}${v.prerelease.length ? `-${v.prerelease.join('.')}` : ''}`;
    step.update(`${stagingPaths.length} staging modules at ${stagingVersion}`);
    const staging = await download(work, stagingPaths.map((p) => `${p}@${stagingVersion}`), env, log);
    const failed = staging.got.filter((g) => g.Error || !g.Sum);
    if (failed.length) {
      step.fail();
      throw new StageError(`staging modules not served at ${stagingVersion}: ${failed.map((f) => `${f.Path} (${f.Error?.split('\n')[0]})`).join(', ')}`, 'cli');
    }
    step.succeed(`k8s.io/kubernetes@${version} and ${staging.got.length} staging modules resolved`);
    notes.push(
      root.sumdb && staging.sumdb
        ? 'module hashes confirmed by the checksum database'
        : 'the checksum database could not confirm these module hashes (not known to it, or not reachable): pinned on first use from the module proxy',
    );
    const pin = (g: DownloadedModule): ModulePin => ({ path: g.Path, version: g.Version, h1: g.Sum!, ...(g.GoModSum ? { goModH1: g.GoModSum } : {}) });

    // The tag's peeled commit, from git when GitHub (or the given mirror) answers.
    const gitUrl = opts.gitUrl ?? KUBERNETES_GIT_URL;
    let commit: string | null = null;
    const ls = await git(work, ['ls-remote', '--', gitUrl, `refs/tags/${version}`, `refs/tags/${version}^{}`], { reject: false }).catch(() => undefined);
    if (ls?.exitCode === 0 && ls.stdout.trim()) {
      const lines = ls.stdout.trim().split('\n').map((l) => l.split('\t'));
      commit = (lines.find((l) => l[1]?.endsWith('^{}')) ?? lines[0])![0]!;
      notes.push(`commit ${commit} read from ${gitUrl}`);
    } else {
      notes.push(`${gitUrl} not reachable: commit SHA recorded as unverified (null); the git source will refuse this manifest until re-pinned`);
    }

    // kine as the RKE2 release runs it: the L2 lab's datastore shim
    const kineStep = log.step(`resolving ${KINE_MODULE}@${kineVersion} (the kine RKE2 ${rke2} runs)`);
    const kineGot = (await download(work, [`${KINE_MODULE}@${kineVersion}`], env, log)).got[0];
    if (!kineGot || kineGot.Error || !kineGot.Sum) {
      kineStep.fail();
      throw new StageError(`the Go module proxy does not serve ${KINE_MODULE}@${kineVersion}: ${kineGot?.Error ?? 'no answer'}`, 'cli');
    }
    kineStep.succeed(`${KINE_MODULE}@${kineVersion} ${kineGot.Sum}`);
    const manifest: ReleaseManifest = {
      schema: 1,
      kubernetes: { version, commit, commitTime: new Date(info.Time).toISOString().replace(/\.\d{3}Z$/, 'Z') },
      source: { default: 'git', git: { url: gitUrl }, goproxy: { root: pin(r), staging: staging.got.map(pin) } },
      go: { version: goVersion },
      patches: `../patches/${minorOf(version)}`,
      stamp: { version: stamp },
      rke2: { version: rke2, runtimeImage: `rancher/rke2-runtime:${rke2.replace('+', '-')}` },
      platforms: [...PLATFORMS],
      target: './cmd/kubelet',
      kine: { version: kineVersion, h1: kineGot.Sum, ...(kineGot.GoModSum ? { goModH1: kineGot.GoModSum } : {}) },
    };
    parseManifest(file, manifest); // validates before anything is written
    if (!(await exists(path.resolve(releasesDir, manifest.patches)))) notes.push(`no patch series at patches/${minorOf(version)} yet: write one before building`);
    await writeFileAtomic(file, `${JSON.stringify(manifest, null, 2)}\n`);
    return { file, manifest, notes };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
