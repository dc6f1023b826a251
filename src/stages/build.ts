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
import { StageError, type BuiltBinary, type Stage, type StageContext, type StageOutputs, type Variant } from './types.js';

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

async function compile(ctx: StageContext, engine: string, image: string, goVersion: string, job: Job): Promise<void> {
  const arch = archOf(job.platform);
  const outDir = path.dirname(job.out);
  await mkdir(outDir, { recursive: true });
  // Build into a private folder beside the target, then rename: never a half-written kubelet.
  const tmpDir = path.join(outDir, `.build-${process.pid}-${Date.now()}`);
  await mkdir(tmpDir, { recursive: true });
  const goArgs = ['build', '-v', '-trimpath', '-buildvcs=false', '-tags', GO_BUILD_TAGS, '-ldflags', ldflags(job.stamp), '-o'];
  const step = ctx.log.step(`compiling ${job.variant} kubelet for ${job.platform} (${job.stamp.gitVersion}, go${goVersion}, ${engine})`);
  let packages = 0;
  const onLine = (l: string) => {
    packages++;
    if (packages % 200 === 0) step.update(`${packages} packages`);
    ctx.log.detail(l);
  };
  const name = `kubelet-lxc-build-${process.pid}-${job.variant}-${arch}`;
  // cleanup after Ctrl-C: must not itself be cancelled
  const abort = () => void run(engine, ['rm', '-f', name], { reject: false, signal: null });
  ctx.signal.addEventListener('abort', abort, { once: true });
  try {
    if (engine === 'host') {
      await run('go', [...goArgs, path.join(tmpDir, 'kubelet'), ctx.manifest.data.target], {
        cwd: job.tree,
        env: hostGoEnv(goVersion, { GOOS: 'linux', GOARCH: arch }),
        signal: ctx.signal,
        onLine,
      });
    } else {
      if ((process.getuid?.() ?? 0) === 0) await chown(tmpDir, BUILDER_UID, BUILDER_UID);
      const args = builderRunArgs({
        engine: engine as 'docker' | 'podman',
        image,
        tree: job.tree,
        name,
        mounts: [`type=bind,src=${tmpDir},dst=/out`],
        env: { GOOS: 'linux', GOARCH: arch, CGO_ENABLED: '0' },
        goArgs: [...goArgs, '/out/kubelet', ctx.manifest.data.target],
      });
      await run(engine, args, { signal: ctx.signal, onLine });
    }
    if (!(await exists(path.join(tmpDir, 'kubelet')))) throw new StageError(`the build of ${job.platform} produced no binary`, 'build');
    if ((process.getuid?.() ?? 1) === 0) await chown(path.join(tmpDir, 'kubelet'), 0, 0);
    await rename(path.join(tmpDir, 'kubelet'), job.out);
    step.succeed(`built ${job.out}`);
  } catch (err) {
    step.fail();
    if (err instanceof Error && /no space left on device/i.test(err.message)) {
      throw new StageError(`the disk is full while building ${job.platform} (${os.hostname()}): free space under ${ctx.paths.root} and the engine's storage, then rerun`, 'build');
    }
    throw err;
  } finally {
    ctx.signal.removeEventListener('abort', abort);
    await rm(tmpDir, { recursive: true, force: true });
  }
}
