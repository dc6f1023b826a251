// build: cross-compile kubelet in the builder container, one static binary per platform and
// variant, stamped like an upstream build, written atomically at a stable path.
import path from 'node:path';
import os from 'node:os';
import { chown, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { exists, fileHash, hashFiles, readJson } from '../lib/fsutil.js';
import { run } from '../lib/exec.js';
import { parseVersion } from '../lib/version.js';
import { isClean } from '../lib/git.js';
import { BUILDER_UID, builderContextFiles, builderRunArgs, ensureBuilderImage, hostGoEnv, hostGoroot, resolveEngine, verifyGoRelease } from '../lib/engine.js';
import { PROJECT_ROOT, archOf, type Platform } from '../manifest.js';
import { StageError, type BuiltBinary, type EngineName, type Stage, type StageContext, type StageOutputs, type Variant } from './types.js';

export interface VersionStamp {
  gitVersion: string;
  gitMajor: string;
  gitMinor: string;
  gitCommit: string;
  gitTreeState: 'clean' | 'dirty' | 'archive';
  buildDate: string;
}

export function makeStamp(version: string, commit: string, sourceDateEpoch: number): VersionStamp {
  const v = parseVersion(version);
  if (!v) throw new StageError(`version stamp "${version}" is not valid semver`, 'build');
  return {
    gitVersion: version,
    gitMajor: String(v.major),
    gitMinor: `${v.minor}${v.prerelease.length ? '+' : ''}`,
    gitCommit: commit,
    gitTreeState: 'clean',
    buildDate: new Date(sourceDateEpoch * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
}

/** The -ldflags of hack/lib/version.sh, for both version packages, plus a stripped, id-less binary. */
export function ldflags(stamp: VersionStamp): string {
  const x = Object.entries(stamp).flatMap(([k, v]) => [`-X 'k8s.io/client-go/pkg/version.${k}=${v}'`, `-X 'k8s.io/component-base/version.${k}=${v}'`]);
  return ['-s', '-w', '-buildid=', ...x].join(' ');
}

export const GO_BUILD_TAGS = 'selinux,notest';

interface Job {
  variant: Variant;
  platform: Platform;
  tree: string;
  stamp: VersionStamp;
  out: string;
}

function jobs(ctx: StageContext, prev: StageOutputs): Job[] {
  const src = prev.source!;
  const m = ctx.manifest.data;
  const list: Job[] = [];
  const variants: [Variant, Platform[]][] = [
    ['patched', ctx.opts.platforms],
    ['stock', ctx.opts.stockPlatforms],
  ];
  for (const [variant, platforms] of variants) {
    const tree = variant === 'patched' ? prev.patch!.tree : src.tree;
    const stamp =
      variant === 'patched'
        ? makeStamp(m.stamp.version, prev.patch!.commit, src.sourceDateEpoch)
        : makeStamp(m.kubernetes.version, src.upstreamCommit ?? src.treeCommit, src.sourceDateEpoch);
    for (const platform of platforms) {
      list.push({ variant, platform, tree, stamp, out: path.join(ctx.paths.bin, variant, `linux-${archOf(platform)}`, 'kubelet') });
    }
  }
  return list;
}

export const buildStage: Stage<'build'> = {
  name: 'build',
  description: 'compile kubelet in the builder container',
  // the builder image's own files too: a changed Dockerfile.build makes a new image, new binaries
  sources: () => ['src/stages/build.ts', 'src/lib/engine.ts'].map((f) => path.join(PROJECT_ROOT, f)),
  async verify(ctx) {
    const engine = ctx.opts.engine === 'host' ? 'host' : await resolveEngine(ctx.opts.engine, ctx.log);
    await verifyGoRelease(engine, ctx.manifest.data.go.version, ctx.manifest.file, ctx.log);
  },
  async inputs(ctx, prev) {
    return {
      builder: await hashFiles((await builderContextFiles()).map((f) => path.join(PROJECT_ROOT, f)), PROJECT_ROOT),
      go: ctx.manifest.data.go.version,
      engine: ctx.opts.engine,
      target: ctx.manifest.data.target,
      tags: GO_BUILD_TAGS,
      jobs: jobs(ctx, prev).map((j) => ({ v: j.variant, p: j.platform, tree: treeCommitOf(j, prev), stamp: j.stamp })),
    };
  },
  async run(ctx, prev) {
    const engine = await resolveEngine(ctx.opts.engine, ctx.log);
    const goVersion = ctx.manifest.data.go.version;
    let image = { ref: 'host', id: 'host' };
    if (engine !== 'host') image = await ensureBuilderImage(engine, goVersion, ctx.opts.builderBase, ctx.log);
    else await hostGoroot(goVersion, ctx.log);
    const binaries: BuiltBinary[] = [];
    for (const job of jobs(ctx, prev)) {
      if (!(await isClean(job.tree))) throw new StageError(`the ${job.variant} tree ${job.tree} has local changes; refusing to stamp a clean build from it`, 'build');
      const key = { image: image.id, go: goVersion, tree: treeCommitOf(job, prev), stamp: job.stamp, tags: GO_BUILD_TAGS, target: ctx.manifest.data.target };
      const keyFile = `${job.out}.inputs.json`;
      const recorded = await readJson<typeof key>(keyFile);
      if (!ctx.opts.force && (await exists(job.out)) && JSON.stringify(recorded) === JSON.stringify(key)) {
        ctx.log.info(`build: ${job.variant} ${job.platform} unchanged, reusing ${job.out}`);
      } else {
        await compile(ctx, engine, image.ref, goVersion, job);
        await writeFile(keyFile, JSON.stringify(key));
      }
      const st = await stat(job.out);
      binaries.push({ variant: job.variant, platform: job.platform, path: job.out, sha256: await fileHash(job.out), size: st.size, version: job.stamp.gitVersion });
    }
    return { engine, builderImage: image.ref, goVersion, binaries };
  },
  async intact(_ctx, out) {
    for (const b of out.binaries) if (!(await exists(b.path)) || (await fileHash(b.path)) !== b.sha256) return false;
    return true;
  },
};

function treeCommitOf(job: Job, prev: StageOutputs): string {
  return job.variant === 'patched' ? prev.patch!.commit : prev.source!.treeCommit;
}

async function compile(ctx: StageContext, engine: EngineName, image: string, goVersion: string, job: Job): Promise<void> {
  const arch = archOf(job.platform);
  const goArgs = ['build', '-v', '-trimpath', '-buildvcs=false', '-tags', GO_BUILD_TAGS, '-ldflags', ldflags(job.stamp), '-o', `${OUT}/kubelet`, ctx.manifest.data.target];
  await goInBuilder(ctx, {
    engine,
    image,
    goVersion,
    tree: job.tree,
    goArgs,
    env: { GOOS: 'linux', GOARCH: arch, CGO_ENABLED: '0' },
    label: `compiling ${job.variant} kubelet for ${job.platform} (${job.stamp.gitVersion}, go${goVersion}, ${engine})`,
    name: `${job.variant}-${arch}`,
    outputs: { kubelet: job.out },
  });
}

/** Where a build in the builder writes its outputs (a private folder renamed into place afterwards). */
export const OUT = '/out';

export interface GoInBuilderJob {
  engine: EngineName;
  image: string;
  goVersion: string;
  /** the source tree (mounted read-only at /src) */
  tree: string;
  /** go's arguments; outputs go to OUT/<name> */
  goArgs: string[];
  env: Record<string, string>;
  /** the progress line */
  label: string;
  /** part of the container's name */
  name: string;
  /** file name under OUT -> final path (written by rename: never half a binary) */
  outputs: Record<string, string>;
}

/**
 * Run `go` in the builder container (or on the host with --engine host) on a read-only tree,
 * writing into a private folder beside the first output, then rename every output into place.
 * Progress: a line every 200 packages (go build -v), and the step's heartbeat.
 */
export async function goInBuilder(ctx: StageContext, job: GoInBuilderJob): Promise<void> {
  const targets = Object.values(job.outputs);
  const outDir = path.dirname(targets[0]!);
  for (const t of targets) await mkdir(path.dirname(t), { recursive: true });
  const tmpDir = path.join(outDir, `.build-${process.pid}-${Date.now()}`);
  await mkdir(tmpDir, { recursive: true });
  const step = ctx.log.step(job.label);
  let packages = 0;
  const onLine = (l: string) => {
    packages++;
    if (packages % 200 === 0) step.update(`${packages} packages`);
    ctx.log.detail(l);
  };
  const name = `kubelet-lxc-build-${process.pid}-${job.name}`;
  // cleanup after Ctrl-C: must not itself be cancelled
  const abort = () => void run(job.engine, ['rm', '-f', name], { reject: false, signal: null });
  ctx.signal.addEventListener('abort', abort, { once: true });
  try {
    if (job.engine === 'host') {
      const args = job.goArgs.map((a) => (a === OUT || a.startsWith(`${OUT}/`) ? tmpDir + a.slice(OUT.length) : a));
      await run('go', args, { cwd: job.tree, env: hostGoEnv(job.goVersion, job.env), signal: ctx.signal, onLine });
    } else {
      if ((process.getuid?.() ?? 0) === 0) await chown(tmpDir, BUILDER_UID, BUILDER_UID);
      const args = builderRunArgs({ engine: job.engine, image: job.image, tree: job.tree, name, mounts: [`type=bind,src=${tmpDir},dst=${OUT}`], env: job.env, goArgs: job.goArgs });
      await run(job.engine, args, { signal: ctx.signal, onLine });
    }
    for (const [file, target] of Object.entries(job.outputs)) {
      const built = path.join(tmpDir, file);
      if (!(await exists(built))) throw new StageError(`${job.label}: go produced no ${file}`, 'build');
      if ((process.getuid?.() ?? 1) === 0) await chown(built, 0, 0);
      await rename(built, target);
    }
    step.succeed(`built ${targets.join(', ')}`);
  } catch (err) {
    step.fail();
    if (err instanceof Error && /no space left on device/i.test(err.message)) {
      throw new StageError(`the disk is full while ${job.label} (${os.hostname()}): free space under ${ctx.paths.root} and the engine's storage, then rerun`, 'build');
    }
    throw err;
  } finally {
    ctx.signal.removeEventListener('abort', abort);
    await rm(tmpDir, { recursive: true, force: true });
  }
}
