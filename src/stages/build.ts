// build: cross-compile kubelet in the builder container, one static binary per platform and
// variant, stamped like an upstream build, written atomically at a stable path.
import path from 'node:path';
import os from 'node:os';
import { chown, copyFile, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { exists, fileHash, hashFiles, hashJson, readJson } from '../lib/fsutil.js';
import { run } from '../lib/exec.js';
import { parseVersion } from '../lib/version.js';
import { isClean } from '../lib/git.js';
import { BUILDER_UID, builderContextFiles, builderRunArgs, ensureBuilderImage, hostGoEnv, hostGoroot, resolveEngine, verifyGoRelease } from '../lib/engine.js';
import { PROJECT_ROOT, archOf, hostArch, type Platform } from '../manifest.js';
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

/** The doctor's binary name, in the build output, the bundle and (with -linux-<arch>) the release. */
export const DOCTOR_NAME = 'kubelet-lxc-doctor';
/** Where the doctor's main package goes in the tree (by -overlay only). */
export const DOCTOR_PACKAGE = 'cmd/kubelet-lxc-doctor';

/** The doctor's layer every series shares: patches/doctor/, beside the series folders. */
export function sharedDoctorDir(patchesDir: string): string {
  return path.join(path.dirname(patchesDir), 'doctor');
}

/** One of the doctor's Go files: its path in the Kubernetes tree, and where it is in this project. */
export interface DoctorFile {
  rel: string;
  file: string;
}

/**
 * The doctor's Go files for a series, paths as in the Kubernetes tree: the shared layer
 * (patches/doctor/: the main package, the same for every release) with the series' own
 * doctor/ laid over it (the files that differ per release: where cAdvisor's packages live,
 * what the tests expect of the release, and small files that export the kubelet's unexported
 * start-path functions to it); a series file replaces a shared one of the same path. They
 * reach the compiler through `go build -overlay` only, so the patched tree and the kubelet
 * built from it never contain them.
 */
export async function doctorFiles(patchesDir: string): Promise<DoctorFile[]> {
  const own = path.join(patchesDir, 'doctor');
  if (!(await exists(own))) {
    throw new StageError(`the series ${patchesDir} has no doctor/ (${own}): every series ships its release's doctor files, built from its own tree`, 'build');
  }
  const files = new Map<string, string>();
  for (const root of [sharedDoctorDir(patchesDir), own]) {
    if (!(await exists(root))) continue;
    const entries = await readdir(root, { recursive: true, withFileTypes: true });
    for (const e of entries) {
      if (!e.isFile() || !e.name.endsWith('.go')) continue;
      const file = path.join(e.parentPath, e.name);
      files.set(path.relative(root, file), file);
    }
  }
  const main = path.join(DOCTOR_PACKAGE, 'main.go');
  if (!files.has(main)) {
    throw new StageError(`the doctor of ${patchesDir} has no ${main}: neither ${sharedDoctorDir(patchesDir)} nor ${own} holds it`, 'build');
  }
  return [...files].map(([rel, file]) => ({ rel, file })).sort((a, b) => a.rel.localeCompare(b.rel));
}

interface Job {
  /** kubelet, or the doctor (patched tree only, its Go files laid over the tree) */
  program: 'kubelet' | 'doctor';
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
      const dir = path.join(ctx.paths.bin, variant, `linux-${archOf(platform)}`);
      list.push({ program: 'kubelet', variant, platform, tree, stamp, out: path.join(dir, 'kubelet') });
      if (variant === 'patched') list.push({ program: 'doctor', variant, platform, tree, stamp, out: path.join(dir, DOCTOR_NAME) });
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
      jobs: jobs(ctx, prev).map((j) => ({ program: j.program, v: j.variant, p: j.platform, tree: treeCommitOf(j, prev), stamp: j.stamp })),
      doctor: await doctorHash(ctx),
    };
  },
  async run(ctx, prev) {
    const engine = await resolveEngine(ctx.opts.engine, ctx.log);
    const goVersion = ctx.manifest.data.go.version;
    let image = { ref: 'host', id: 'host' };
    if (engine !== 'host') image = await ensureBuilderImage(engine, goVersion, ctx.opts.builderBase, ctx.log);
    else await hostGoroot(goVersion, ctx.log);
    const binaries: BuiltBinary[] = [];
    const doctor = await doctorHash(ctx);
    for (const job of jobs(ctx, prev)) {
      if (!(await isClean(job.tree))) throw new StageError(`the ${job.variant} tree ${job.tree} has local changes; refusing to stamp a clean build from it`, 'build');
      const key = {
        image: image.id, go: goVersion, tree: treeCommitOf(job, prev), stamp: job.stamp, tags: GO_BUILD_TAGS,
        ...(job.program === 'kubelet' ? { target: ctx.manifest.data.target } : { target: `./${DOCTOR_PACKAGE}`, doctor }),
      };
      const keyFile = `${job.out}.inputs.json`;
      const recorded = await readJson<typeof key>(keyFile);
      if (!ctx.opts.force && (await exists(job.out)) && JSON.stringify(recorded) === JSON.stringify(key)) {
        ctx.log.info(`build: ${job.variant} ${job.platform} unchanged, reusing ${job.out}`);
      } else {
        if (job.program === 'kubelet') await compile(ctx, engine, image.ref, goVersion, job);
        else await compileDoctor(ctx, engine, image.ref, goVersion, job);
        await writeFile(keyFile, JSON.stringify(key));
      }
      const st = await stat(job.out);
      binaries.push({ program: job.program, variant: job.variant, platform: job.platform, path: job.out, sha256: await fileHash(job.out), size: st.size, version: job.stamp.gitVersion });
    }
    return { engine, builderImage: image.ref, goVersion, binaries };
  },
  async intact(_ctx, out) {
    for (const b of out.binaries) if (!(await exists(b.path)) || (await fileHash(b.path)) !== b.sha256) return false;
    return true;
  },
};

async function doctorHash(ctx: StageContext): Promise<string> {
  const parts: [string, string][] = [];
  for (const f of await doctorFiles(ctx.manifest.patchesDir)) parts.push([f.rel, await fileHash(f.file)]);
  return hashJson(parts);
}

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

/**
 * The doctor: its files are copied into the private output folder with an overlay file that lays
 * them over the (read-only) tree, then `go build -overlay` compiles it like the kubelet: static,
 * stamped, the same tags.
 */
/** The -overlay that lays the series' doctor files over a tree (built by the caller's prepare step). */
async function doctorOverlay(ctx: StageContext): Promise<{ overlay: string; prepare: GoInBuilderJob['prepare'] }> {
  const files = await doctorFiles(ctx.manifest.patchesDir);
  const overlay = `${OUT}/doctor-src/overlay.json`;
  const prepare: GoInBuilderJob['prepare'] = async ({ hostOut, out, src }) => {
    const replace: Record<string, string> = {};
    for (const { rel, file } of files) {
      await mkdir(path.dirname(path.join(hostOut, 'doctor-src', rel)), { recursive: true });
      await copyFile(file, path.join(hostOut, 'doctor-src', rel));
      replace[path.posix.join(src, rel)] = path.posix.join(out, 'doctor-src', rel);
    }
    await writeFile(path.join(hostOut, 'doctor-src', 'overlay.json'), JSON.stringify({ Replace: replace }));
    if ((process.getuid?.() ?? 0) === 0) await chownTree(path.join(hostOut, 'doctor-src'), BUILDER_UID);
  };
  return { overlay, prepare };
}

/**
 * The doctor's own tests on this machine's arch: compiled in the builder against the patched
 * tree (the package exists only through the overlay, so go test could not run it in its folder),
 * run here. The build stage runs them before building it; the matrix runs them for every release.
 */
export async function testDoctor(ctx: StageContext, o: { engine: EngineName; image: string; goVersion: string; tree: string; scratch: string }): Promise<number> {
  const { overlay, prepare } = await doctorOverlay(ctx);
  const arch = hostArch();
  const testBinary = path.join(o.scratch, `.${DOCTOR_NAME}.test`);
  await goInBuilder(ctx, {
    engine: o.engine,
    image: o.image,
    goVersion: o.goVersion,
    tree: o.tree,
    prepare,
    goArgs: ['test', '-c', '-vet=off', '-trimpath', '-overlay', overlay, '-tags', GO_BUILD_TAGS, '-o', `${OUT}/${DOCTOR_NAME}.test`, `./${DOCTOR_PACKAGE}`],
    env: { CGO_ENABLED: '0' },
    label: `compiling kubelet-lxc-doctor's tests (./${DOCTOR_PACKAGE})`,
    name: `doctor-test-${arch}`,
    outputs: { [`${DOCTOR_NAME}.test`]: testBinary },
  });
  try {
    const res = await run(testBinary, ['-test.count=1', '-test.v'], { reject: false, signal: ctx.signal, onLine: (l) => ctx.log.detail(l) });
    if (res.exitCode !== 0) throw new StageError(`kubelet-lxc-doctor's tests failed (${path.join(sharedDoctorDir(ctx.manifest.patchesDir), DOCTOR_PACKAGE)} with ${path.join(ctx.manifest.patchesDir, 'doctor', DOCTOR_PACKAGE)} over it):\n${res.all.split('\n').filter((l) => /^(--- FAIL|\s+\S+_test\.go:\d+:|FAIL)/.test(l)).join('\n')}`, 'build');
    const passed = (res.stdout.match(/^--- PASS/gm) ?? []).length;
    ctx.log.info(`build: kubelet-lxc-doctor's tests passed (${passed})`);
    return passed;
  } finally {
    await rm(testBinary, { force: true });
  }
}

async function compileDoctor(ctx: StageContext, engine: EngineName, image: string, goVersion: string, job: Job): Promise<void> {
  const arch = archOf(job.platform);
  const { overlay, prepare } = await doctorOverlay(ctx);
  const common = { engine, image, goVersion, tree: job.tree, prepare };
  if (arch === hostArch()) await testDoctor(ctx, { engine, image, goVersion, tree: job.tree, scratch: path.dirname(job.out) });
  await goInBuilder(ctx, {
    ...common,
    goArgs: ['build', '-v', '-trimpath', '-buildvcs=false', '-overlay', overlay, '-tags', GO_BUILD_TAGS, '-ldflags', ldflags(job.stamp), '-o', `${OUT}/${DOCTOR_NAME}`, `./${DOCTOR_PACKAGE}`],
    env: { GOOS: 'linux', GOARCH: arch, CGO_ENABLED: '0' },
    label: `compiling kubelet-lxc-doctor for ${job.platform} (${job.stamp.gitVersion}, go${goVersion}, ${engine})`,
    name: `doctor-${arch}`,
    outputs: { [DOCTOR_NAME]: job.out },
  });
}

async function chownTree(dir: string, uid: number): Promise<void> {
  await chown(dir, uid, uid);
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) await chown(path.join(e.parentPath, e.name), uid, uid);
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
  /** where the private output folder goes when there are no outputs (go test) */
  outDir?: string;
  /** Writes inputs into the private output folder first: hostOut is it on this machine, out and src where go sees it and the tree. */
  prepare?: (dirs: { hostOut: string; out: string; src: string }) => Promise<void>;
}

/**
 * Run `go` in the builder container (or on the host with --engine host) on a read-only tree,
 * writing into a private folder beside the first output, then rename every output into place.
 * Progress: a line every 200 packages (go build -v), and the step's heartbeat.
 */
export async function goInBuilder(ctx: StageContext, job: GoInBuilderJob): Promise<void> {
  const targets = Object.values(job.outputs);
  const outDir = job.outDir ?? path.dirname(targets[0]!);
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
    await job.prepare?.(job.engine === 'host' ? { hostOut: tmpDir, out: tmpDir, src: job.tree } : { hostOut: tmpDir, out: OUT, src: '/src' });
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
    step.succeed(targets.length ? `built ${targets.join(', ')}` : `${job.label}: ok`);
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
