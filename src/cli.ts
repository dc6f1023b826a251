#!/usr/bin/env node
// kubelet-lxc: the command line. Parses options (commander), resolves the release manifest,
// and hands a StageContext to the runner. Errors print as one clear message, never a stack.
import path from 'node:path';
import { access, constants, stat } from 'node:fs/promises';
import { Command, CommanderError, Option } from 'commander';
import { PLATFORMS, PROJECT_ROOT, hostArch, listManifests, resolveManifest, type LoadedManifest, type Platform } from './manifest.js';
import { createLogger, type Logger } from './lib/progress.js';
import { runPipeline, selectStages } from './runner.js';
import { STAGE_NAMES, StageError, distDir, workPaths, type PipelineOptions, type SourceKind, type StageContext, type StageName } from './stages/types.js';
import { chooseSource } from './stages/source.js';
import { ensureBuilderImage, resolveEngine } from './lib/engine.js';
import { cancelCommandsOn, redactUrls, run } from './lib/exec.js';
import { pinRelease } from './pin.js';
import { formatRebase, rebaseSeries } from './rebase.js';
import { applyUpstreamWatch, formatPlan, planUpstreamWatch } from './upstream-watch.js';
import { acquireLock, LockBusyError, type HeldLock } from './lib/lock.js';
import { selectProfiles, loadProfiles } from './lab/profiles.js';
import { runLabFor } from './stages/smoke.js';
import { runSeriesMatrix } from './stages/smoke/matrix.js';
import { DOCTOR_NAME } from './stages/build.js';
import { runPublish, formatReport } from './publish/index.js';
import { installBundle, InstallError, RUNTIME_IMAGE_REPO, type InstallReport } from './rke2/index.js';
import { KVM_ENV, KVM_MODES, kvmModeFrom, LAB_LEVELS, type LabLevel } from './lab/index.js';
import { CONFORMANCE_TIERS, type ConformanceTier } from './lab/l2/conformance.js';
import { addArtifacts, ArtifactListError, readArtifactLists, writeChecksums } from './stages/package/artifacts.js';
import { exists } from './lib/fsutil.js';
import { describeError, ERRNO_WORDS } from './error-report.js';
import { CONTAINER_KINDS, type ContainerKind, lxcSettings, PROXMOX_OPTIONS, renderProxmoxConfig } from './rke2/lxc-settings.js';

/** The platform the LXC lab runs its kubelets on (its qemu guest is x86_64). */
const LAB_PLATFORM: Platform = 'linux/amd64';

interface CommonFlags {
  release?: string;
  platform?: string[];
  engine: PipelineOptions['engine'];
  builderBase: PipelineOptions['builderBase'];
  source: SourceKind | 'auto';
  sourceUrl?: string;
  goproxy?: string;
  workdir: string;
  cacheDir?: string;
  json: boolean;
  dryRun: boolean;
  force: boolean;
  stock: boolean;
  patchTests: boolean;
  /** --lab: true (L1), or a list such as "L1,L2" */
  lab: boolean | string;
  conformance?: string;
  baseImageArchive?: string;
  runtimeImageRevision: string;
  runtimeImageRepo: string;
  from?: StageName;
  to?: StageName;
  kvm?: string;
}

const controller = new AbortController();
cancelCommandsOn(controller.signal);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (controller.signal.aborted) {
      // a second Ctrl-C must not kill the cleanup half way
      process.stderr.write(`${sig}: already stopping, cleaning up (kill -9 ${process.pid} stops at once: temp files may stay, never a half artifact)\n`);
      return;
    }
    process.stderr.write(`\n${sig}: stopping; finished artifacts stay, unfinished ones are removed\n`);
    controller.abort();
  });
}

function addCommonOptions(cmd: Command, withRange: boolean): Command {
  cmd
    .option('--release <id|version|file>', 'release manifest (default: the newest in releases/)')
    .option('--platform <list...>', `platforms to build (${PLATFORMS.join(', ')}; default: the manifest's)`)
    .addOption(new Option('--engine <engine>', 'where to compile').choices(['auto', 'docker', 'podman', 'host']).default('auto'))
    .addOption(new Option('--builder-base <base>', "the builder image's Go: official image, host toolchain, or either").choices(['auto', 'official', 'local']).default('auto'))
    .addOption(new Option('--source <kind>', 'where the Kubernetes tree comes from (auto: git if reachable, else the Go module proxy)').choices(['auto', 'git', 'goproxy']).default('auto'))
    .option('--source-url <url>', 'git mirror of kubernetes/kubernetes (git source)')
    .option('--goproxy <url>', 'GOPROXY for the goproxy source (default: the Go environment)')
    .option('--workdir <dir>', 'work directory (trees, outputs, state)', path.join(PROJECT_ROOT, 'work'))
    .option('--cache-dir <dir>', 'shared cache of verified trees (default: $KUBELET_LXC_CACHE or <workdir>/cache)')
    .option('--json', 'print the result as JSON on stdout (progress goes to stderr)', false)
    .option('--dry-run', 'say what would run, run nothing', false)
    .option('--force', 'rerun stages even when their inputs did not change', false)
    .option('--stock', 'also build the unpatched kubelet (the lab\'s negative control) for every platform', false)
    .option('--patch-tests', 'smoke: run the patch series\' Go tests on the stock and patched trees', false)
    .option('--lab [levels]', 'smoke: run the LXC lab, L1 (default) and/or L2 (e.g. --lab L1,L2); builds the stock kubelet for linux/amd64, the platform the lab runs', false)
    .addOption(new Option('--conformance <tier>', 'L2: the conformance tests the patched kubelet runs (lab/conformance.json)').choices([...CONFORMANCE_TIERS]).default('ci'))
    .addOption(new Option('--kvm <mode>', `lab accelerator: auto tries KVM (it must boot the guest) and falls back to TCG; on: KVM or fail; off: TCG (default: $${KVM_ENV} or auto)`).choices([...KVM_MODES]))
    .option('--base-image-archive <file>', 'docker-archive of rancher/rke2-runtime for the runtime image ({arch} is replaced per platform); default: pull it, else a labelled stand-in')
    .option('--runtime-image-revision <n>', 'N in the runtime image tag <rke2 version>-lxcN (bump it for every rebuilt image: RKE2 never re-extracts a tag)', '1')
    .option('--runtime-image-repo <repo>', `repository of the runtime image reference (default under the reserved .invalid host: RKE2 can only load it from the tarball, never pull it)`, RUNTIME_IMAGE_REPO);
  if (withRange) {
    cmd.addOption(new Option('--from <stage>', 'first stage to run').choices([...STAGE_NAMES]));
    cmd.addOption(new Option('--to <stage>', 'last stage to run').choices([...STAGE_NAMES]));
  }
  return cmd;
}

/** --platform as given (a list, each item maybe comma-separated); undefined when not given. */
function splitPlatforms(list: string[] | undefined): string[] | undefined {
  return list?.flatMap((p) => p.split(',')).map((p) => p.trim()).filter(Boolean);
}

function parsePlatforms(list: string[] | undefined, manifest: LoadedManifest): Platform[] {
  const flat = splitPlatforms(list);
  if (flat === undefined) return manifest.data.platforms;
  const hint = `e.g. --platform ${PLATFORMS.join(',')}, or leave --platform out for the manifest's (${manifest.data.platforms.join(',')})`;
  if (flat.length === 0) throw new StageError(`--platform is empty: give one or more of ${PLATFORMS.join(', ')} (${hint})`, 'cli', { hint });
  for (const p of flat) {
    if (!(PLATFORMS as readonly string[]).includes(p)) throw new StageError(`unknown platform "${p}"; known: ${PLATFORMS.join(', ')}`, 'cli', { hint });
  }
  const twice = flat.find((p, i) => flat.indexOf(p) !== i);
  if (twice) throw new StageError(`--platform names ${twice} twice: give each platform once`, 'cli', { hint });
  return flat as Platform[];
}

/** --lab's levels: a bare --lab is L1; else a comma list of L1, L2. */
function parseLabLevels(v: boolean | string | undefined): LabLevel[] {
  if (!v) return [];
  if (v === true) return ['L1'];
  const levels = v.split(',').map((x) => x.trim().toUpperCase()).filter(Boolean);
  const bad = levels.filter((l) => !(LAB_LEVELS as readonly string[]).includes(l));
  if (bad.length || !levels.length) throw new StageError(`--lab takes ${LAB_LEVELS.join(', ')} (a comma list), got "${v}"`, 'cli');
  return [...new Set(levels)] as LabLevel[];
}

/** A folder the run will write (--workdir, --cache-dir): a directory this user can write, or one that can be made. */
async function checkWritableDir(dir: string, flag: string): Promise<void> {
  const hint = `give a directory this user can write (it is made when missing): ${flag} <dir>`;
  let p = dir;
  for (;;) {
    const st = await stat(p).catch((e: NodeJS.ErrnoException) => e);
    if (!(st instanceof Error)) {
      if (!st.isDirectory()) throw new StageError(`${flag} ${dir}${p === dir ? '' : `: ${p}`} is a file, not a directory: ${hint}`, 'cli', { hint });
      break;
    }
    if (st.code !== 'ENOENT' && st.code !== 'ENOTDIR') throw new StageError(`${flag} ${dir} cannot be read: ${ERRNO_WORDS[st.code ?? ''] ?? st.message}: ${hint}`, 'cli', { hint });
    if (path.dirname(p) === p) break;
    p = path.dirname(p);
  }
  try {
    await access(p, constants.W_OK | constants.X_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    throw new StageError(`${flag} ${dir} cannot be written: ${ERRNO_WORDS[code] ?? (e as Error).message}${p === dir ? '' : ` (at ${p})`}: ${hint}`, 'cli', { hint });
  }
}

function parsePositiveInt(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new StageError(`${name} must be a positive whole number, got "${v}"`, 'cli');
  return n;
}

async function makeContext(flags: CommonFlags, log: Logger, given?: LoadedManifest): Promise<StageContext> {
  const manifest = given ?? resolveManifest(flags.release);
  const workdir = path.resolve(flags.workdir);
  const platforms = parsePlatforms(flags.platform, manifest);
  const cacheDir = path.resolve(flags.cacheDir ?? process.env.KUBELET_LXC_CACHE ?? path.join(workdir, 'cache'));
  await checkWritableDir(workdir, '--workdir');
  await checkWritableDir(cacheDir, flags.cacheDir ? '--cache-dir' : process.env.KUBELET_LXC_CACHE ? 'KUBELET_LXC_CACHE' : '--workdir');
  if (flags.lab && !platforms.includes(LAB_PLATFORM)) {
    throw new StageError(`--lab runs the ${LAB_PLATFORM} kubelets: add ${LAB_PLATFORM} to --platform (got ${platforms.join(', ')})`, 'cli');
  }
  // The stock kubelet is the lab's negative control: built where the lab runs it, everywhere only when asked.
  const labLevels = parseLabLevels(flags.lab);
  const stockPlatforms: Platform[] = flags.stock ? platforms : labLevels.length ? [LAB_PLATFORM] : [];
  const opts: PipelineOptions = {
    platforms,
    engine: flags.engine,
    builderBase: flags.builderBase,
    sourceKind: await chooseSource(flags.source, manifest, flags.sourceUrl, log),
    sourceUrl: flags.sourceUrl,
    goproxy: flags.goproxy,
    workdir,
    cacheDir,
    stockPlatforms,
    kvm: kvmModeFrom(flags.kvm),
    smoke: { patchTests: flags.patchTests, lab: labLevels, conformance: (flags.conformance ?? 'ci') as ConformanceTier },
    packaging: {
      baseImageArchive: flags.baseImageArchive ? path.resolve(flags.baseImageArchive) : undefined,
      runtimeImageRevision: parsePositiveInt(flags.runtimeImageRevision, '--runtime-image-revision'),
      runtimeImageRepo: flags.runtimeImageRepo,
    },
    json: flags.json,
    dryRun: flags.dryRun,
    force: flags.force,
  };
  return { manifest, opts, paths: workPaths(opts, manifest), log, signal: controller.signal };
}

function print(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${text()}\n`);
}

/** One run per work directory (a dry run writes nothing and takes none). */
async function lockWorkdir(ctx: StageContext): Promise<HeldLock | undefined> {
  if (ctx.opts.dryRun) return undefined;
  try {
    return await acquireLock(path.join(ctx.opts.workdir, '.kubelet-lxc.lock'), {
      what: `work directory ${ctx.opts.workdir}`,
      hint: 'wait for it to finish, or use another --workdir',
      command: redactUrls(['kubelet-lxc', ...process.argv.slice(2)].join(' ')),
      warn: (t) => ctx.log.warn(t),
    });
  } catch (err) {
    if (err instanceof LockBusyError) throw new StageError(err.message, 'cli', { hint: 'wait for the other run to finish, or use another --workdir' });
    throw err;
  }
}

async function pipelineCommand(flags: CommonFlags, from: StageName, to: StageName): Promise<void> {
  const log = createLogger({ json: flags.json });
  selectStages(from, to);
  const ctx = await makeContext(flags, log);
  const lock = await lockWorkdir(ctx);
  try {
    await pipelineRun(ctx, flags, from, to);
  } finally {
    await lock?.release();
  }
}

async function pipelineRun(ctx: StageContext, flags: CommonFlags, from: StageName, to: StageName): Promise<void> {
  const log = ctx.log;
  log.info(`release ${ctx.manifest.id}: Kubernetes ${ctx.manifest.data.kubernetes.version} -> ${ctx.manifest.data.stamp.version}, ${ctx.opts.platforms.join(' ')}, source ${ctx.opts.sourceKind}`);
  const result = await runPipeline(ctx, from, to);
  const o = result.outputs;
  const summary = {
    release: ctx.manifest.id,
    version: ctx.manifest.data.stamp.version,
    source: o.source && { kind: o.source.kind, origin: o.source.origin, verification: o.source.verification, treeCommit: o.source.treeCommit },
    patch: o.patch && { commit: o.patch.commit, applied: o.patch.applied.map((a) => a.file) },
    binaries: o.build?.binaries,
    dist: o.package?.files,
    smoke: o.smoke?.checks,
    stages: result.stages,
  };
  print(flags.json, summary, () =>
    [
      `source: ${summary.source ? `${summary.source.kind} (${summary.source.origin}); ${summary.source.verification.join('; ')}` : '-'}`,
      ...(summary.binaries ?? []).map((b) => `${b.program === 'doctor' ? 'kubelet-lxc-doctor' : `kubelet ${b.variant}`} ${b.platform}: ${b.path} (${b.version}, sha256 ${b.sha256.slice(0, 16)}…)`),
      ...(summary.dist ?? []).map((f) => `dist: ${f.path}`),
      `stages: ${result.stages.map((s) => `${s.stage}=${s.status}`).join(' ')}`,
    ].join('\n'),
  );
}

const program = new Command()
  .name('kubelet-lxc')
  .description('Build a kubelet that starts inside LXC containers on cgroup v2 hosts, packaged for RKE2.')
  .showHelpAfterError()
  // parse errors come back to main(), which prints them as JSON under --json (inherited by subcommands)
  .exitOverride();

addCommonOptions(program.command('build').description('run every stage: source, patch, build, package, smoke'), true).action((flags: CommonFlags) =>
  pipelineCommand(flags, flags.from ?? 'source', flags.to ?? 'smoke'),
);

const stageCommands: [string, StageName, string][] = [
  ['source', 'source', 'fetch and verify the pinned Kubernetes tree'],
  ['patch', 'patch', 'apply the patch series (runs source first if needed)'],
  ['compile', 'build', 'the build stage: compile kubelet in the builder container'],
  ['package', 'package', 'package tarballs, bundles and checksums'],
  ['smoke', 'smoke', 'smoke-test the binaries'],
];
for (const [cmd, stage, desc] of stageCommands) {
  addCommonOptions(program.command(cmd).description(desc), false).action((flags: CommonFlags) => pipelineCommand(flags, stage, stage));
}

addCommonOptions(
  program.command('matrix').description("the series' proof without a kubelet build: the release's tree, its series applied, and the stock-vs-patched site matrix (exit 1 when the matrix fails)"),
  false,
).action(async (flags: CommonFlags) => {
  const log = createLogger({ json: flags.json });
  const ctx = await makeContext(flags, log);
  if (ctx.opts.dryRun) {
    const plan = await runPipeline(ctx, 'source', 'patch');
    print(flags.json, { release: ctx.manifest.id, stages: plan.stages, then: 'the stock-vs-patched matrix and the doctor tests in the builder container' }, () => `release ${ctx.manifest.id}: ${plan.stages.map((s) => `${s.stage}=${s.status}`).join(' ')}, then the matrix and the doctor's tests (dry run: nothing ran)`);
    return;
  }
  const lock = await lockWorkdir(ctx);
  try {
    const res = await runSeriesMatrix(ctx);
    print(flags.json, res, () => [`release ${res.release}: ${res.patch.applied.length} patches applied; matrix ${res.matrix.ok ? 'ok' : 'FAILED'}`, ...res.matrix.problems.map((p) => `problem: ${p}`), ...res.reports.map((r) => `report: ${r}`)].join('\n'));
    if (!res.matrix.ok) process.exitCode = 1;
  } finally {
    await lock?.release();
  }
});

addCommonOptions(
  program
    .command('rebase <release> <new-version>')
    .description("carry a release's patch series to another Kubernetes release: pin it, replay the series with git am -3 (each patch: applied, 3-way, already upstream or conflict with file and hunk), write the series and manifest when nothing conflicts, then run the matrix (exit 1 on a conflict or a failed matrix)"),
  false,
)
  .option('--rke2 <release>', 'the RKE2 release shipping the new version (default <new-version>+rke2r1)')
  .option('--kine <version>', "the kine version (default: the one that RKE2 release runs, else the old release's)")
  .option('--releases-dir <dir>', 'where release manifests are read and written', path.join(PROJECT_ROOT, 'releases'))
  .option('--replace', "replace an existing manifest of the new version, or another minor's series folder", false)
  .option('--no-matrix', 'do not run the stock-vs-patched matrix on the written series')
  .action(async (release: string, version: string, flags: CommonFlags & { rke2?: string; kine?: string; releasesDir: string; replace: boolean; matrix: boolean }) => {
    const log = createLogger({ json: flags.json });
    const from = resolveManifest(release, path.resolve(flags.releasesDir));
    // the new release's context: the same work directory, engine and source choice as the old one's
    const first = await makeContext(flags, log, from);
    const lock = await lockWorkdir(first);
    try {
      const report = await rebaseSeries({
        from,
        version,
        releasesDir: flags.releasesDir,
        kine: flags.kine,
        rke2: flags.rke2,
        goproxy: flags.goproxy,
        gitUrl: flags.sourceUrl,
        replace: flags.replace,
        matrix: flags.matrix,
        contextFor: (m) => (m === from ? Promise.resolve(first) : makeContext(flags, log, m)),
        log,
      });
      print(flags.json, report, () => `${formatRebase(report)}\nreport: ${report.reportFile}`);
      if (!report.ok) process.exitCode = 1;
    } finally {
      await lock?.release();
    }
  });

addCommonOptions(
  program
    .command('upstream-watch')
    .description('for every supported minor, the newest patch release the Go module proxy serves completely; with --apply, rebase each onto it and write the pull request and issue bodies the scheduled workflow posts'),
  false,
)
  .option('--releases-dir <dir>', 'where release manifests are read and written', path.join(PROJECT_ROOT, 'releases'))
  .option('--apply', 'rebase each minor onto its next release (pin, replay, matrix) and write the bodies', false)
  .option('--no-matrix', 'with --apply: do not run the matrix on the written series')
  .option('--out <dir>', 'where --apply writes watch.json, pull-request.md and issue-<minor>.md (default <workdir>/upstream-watch)')
  .action(async (flags: CommonFlags & { releasesDir: string; apply: boolean; matrix: boolean; out?: string }) => {
    const log = createLogger({ json: flags.json });
    const releasesDir = path.resolve(flags.releasesDir);
    const plan = await planUpstreamWatch({ releasesDir, goproxy: flags.goproxy, log });
    if (!flags.apply) {
      print(flags.json, plan, () => formatPlan(plan));
      return;
    }
    const outDir = path.resolve(flags.out ?? path.join(flags.workdir, 'upstream-watch'));
    const outcome = await applyUpstreamWatch(plan, {
      releasesDir,
      outDir,
      rebase: async (from, version) => {
        const first = await makeContext(flags, log, from);
        const lock = await lockWorkdir(first);
        try {
          return await rebaseSeries({ from, version, releasesDir, goproxy: flags.goproxy, gitUrl: flags.sourceUrl, matrix: flags.matrix, contextFor: (m) => (m === from ? Promise.resolve(first) : makeContext(flags, log, m)), log });
        } finally {
          await lock?.release();
        }
      },
    });
    print(flags.json, outcome, () =>
      [formatPlan(plan), ...outcome.rebases.map((r) => `${r.minor}: ${r.from} -> ${r.to}: ${r.ok ? 'written, matrix ok' : r.written ? 'matrix FAILED (not kept)' : 'conflict'} (${r.report})`), outcome.pullRequest ? `pull request: ${outcome.pullRequest.bodyFile}` : 'pull request: none', ...outcome.issues.map((i) => `issue: ${i.title} (${i.bodyFile})`)].join('\n'),
    );
  });

program
  .command('releases')
  .description('list the release manifests (the first is the default)')
  .option('--json', 'as JSON', false)
  .action((flags: { json: boolean }) => {
    const all = listManifests();
    print(flags.json, all.map((m, i) => ({ id: m.id, default: i === 0, file: path.relative(PROJECT_ROOT, m.file), ...m.data })), () =>
      all.map((m, i) => `${i === 0 ? '*' : ' '} ${m.id}  kubernetes ${m.data.kubernetes.version}  stamp ${m.data.stamp.version}  go ${m.data.go.version}  rke2 ${m.data.rke2.version}  ${m.data.platforms.join(',')}`).join('\n'),
    );
  });

program
  .command('builder-image')
  .description('build the builder image (Dockerfile.build) for a release\'s Go version')
  .option('--release <id|version|file>', 'release manifest (default: the newest)')
  .addOption(new Option('--engine <engine>').choices(['auto', 'docker', 'podman']).default('auto'))
  .addOption(new Option('--base <base>', 'official Go image, or bootstrap from the host Go toolchain (local)').choices(['auto', 'official', 'local']).default('auto'))
  .option('--json', 'as JSON', false)
  .action(async (flags: { release?: string; engine: 'auto' | 'docker' | 'podman'; base: 'auto' | 'official' | 'local'; json: boolean }) => {
    const log = createLogger({ json: flags.json });
    const manifest = resolveManifest(flags.release);
    const engine = await resolveEngine(flags.engine, log, { hostAllowed: false });
    if (engine === 'host') throw new StageError('builder-image needs a container engine', 'cli');
    const image = await ensureBuilderImage(engine, manifest.data.go.version, flags.base, log, { baseFlag: '--base' });
    print(flags.json, image, () => `${image.ref} ${image.id}`);
  });

program
  .command('pin <version>')
  .description('write releases/<version>.json with every pin filled (module hashes, commit, Go version)')
  .option('--rke2 <release>', 'the RKE2 release shipping this Kubernetes version (default <version>+rke2r1)')
  .option('--kine <version>', "the kine version (the L2 lab's datastore shim; default: the one that RKE2 release runs)")
  .option('--stamp <version>', 'version the kubelet reports (default: the RKE2 release, e.g. v1.36.4+rke2r1; or a distinct suffix such as v1.36.4+lxc.1)')
  .option('--goproxy <url>', 'GOPROXY to resolve modules through')
  .option('--source-url <url>', 'git URL to read the tag commit from')
  .option('--releases-dir <dir>', 'where to write the manifest', path.join(PROJECT_ROOT, 'releases'))
  .option('--force', 'overwrite an existing manifest', false)
  .option('--json', 'as JSON', false)
  .action(async (version: string, flags: { rke2?: string; kine?: string; stamp?: string; goproxy?: string; sourceUrl?: string; releasesDir: string; force: boolean; json: boolean }) => {
    const log = createLogger({ json: flags.json });
    const res = await pinRelease({ version, rke2: flags.rke2, kine: flags.kine, stamp: flags.stamp, goproxy: flags.goproxy, gitUrl: flags.sourceUrl, releasesDir: path.resolve(flags.releasesDir), force: flags.force, log });
    print(flags.json, res, () => [`wrote ${path.relative(process.cwd(), res.file)}`, ...res.notes.map((n) => `note: ${n}`), `next: npm run build-kubelet -- --release ${res.manifest.kubernetes.version}`].join('\n'));
  });

addCommonOptions(
  program.command('lab').description('the LXC lab: stock and patched kubelet in an LXC container on a cgroup v2 kernel (qemu guest), one run per fault profile; L1 standalone, L2 a server node with conformance tests'),
  false,
)
  .option('--profile <ids...>', 'fault profiles to run (default: all in lab/profiles.json)')
  .addOption(new Option('--level <level>', 'L1: a standalone kubelet with a static pod; L2: a server node (kine on SQLite, the control plane, the kubelet registering) and the conformance tier').choices([...LAB_LEVELS]).default('L1'))
  .action(async (flags: CommonFlags & { profile?: string[]; level: LabLevel }) => {
    const log = createLogger({ json: flags.json });
    verifyLabOptions(flags);
    const ctx = await makeContext({ ...flags, lab: flags.level, platform: flags.platform ?? [LAB_PLATFORM] }, log);
    const lock = await lockWorkdir(ctx);
    try {
      await labRun(ctx, flags, log);
    } finally {
      await lock?.release();
    }
  });

/** The lab's own options, checked before any stage: its profiles exist, and it runs linux/amd64 only. */
function verifyLabOptions(flags: CommonFlags & { profile?: string[] }): void {
  try {
    selectProfiles(loadProfiles(), flags.profile);
  } catch (err) {
    throw new StageError((err as Error).message, 'cli', { hint: 'leave --profile out for every profile of lab/profiles.json' });
  }
  const other = (splitPlatforms(flags.platform) ?? []).filter((p) => p !== LAB_PLATFORM);
  if (other.length) {
    throw new StageError(`the lab runs ${LAB_PLATFORM} kubelets only (its qemu guest is x86_64): drop --platform ${other.join(',')}`, 'cli', { hint: 'leave --platform out' });
  }
}

async function labRun(ctx: StageContext, flags: CommonFlags & { profile?: string[]; level: LabLevel }, log: Logger): Promise<void> {
  const result = await runPipeline(ctx, 'source', 'build');
  if (ctx.opts.dryRun) {
    log.info(`would run the lab ${flags.level}: profiles ${flags.profile?.join(', ') ?? 'all of lab/profiles.json'}, stock and patched linux/amd64 kubelets${flags.level === 'L2' ? `, conformance tier ${ctx.opts.smoke.conformance}` : ''}`);
    return;
  }
  if (!result.outputs.build) throw new StageError('the lab has no kubelets: the build stage gave no output', 'smoke');
  const lab = await runLabFor(ctx, result.outputs, { level: flags.level, profiles: flags.profile, conformance: ctx.opts.smoke.conformance });
  print(flags.json, { checks: lab.checks, reports: lab.files }, () => lab.files.map((f) => `report: ${f}`).join('\n'));
  if (!lab.checks.every((c) => c.ok)) throw new StageError(`lab failed: ${lab.checks.filter((c) => !c.ok).map((c) => c.detail).join('; ')}`, 'smoke');
}

program
  .command('publish')
  .description('publish the release assets to a GitHub release (token from GITHUB_TOKEN or GH_TOKEN)')
  .option('--release <id|version|file>', 'release manifest (default: the newest)')
  .option('--workdir <dir>', 'work directory', path.join(PROJECT_ROOT, 'work'))
  .option('--repo <owner/name>', 'GitHub repository (default: $GITHUB_REPOSITORY)', process.env.GITHUB_REPOSITORY)
  .option('--replace', 'replace differing assets, delete strays', false)
  .option('--allow-stand-in', 'publish even though the runtime image was built on a stand-in base (never for real releases)', false)
  .option('--dry-run', 'print the plan, change nothing', false)
  .option('--json', 'print the report as JSON', false)
  .action(async (f: { release?: string; workdir: string; repo?: string; replace: boolean; allowStandIn: boolean; dryRun: boolean; json: boolean }) => {
    if (!f.repo) throw new StageError('--repo owner/name is required (or set GITHUB_REPOSITORY)', 'cli');
    const manifest = resolveManifest(f.release);
    const workdir = path.resolve(f.workdir);
    const report = await runPublish({ manifest, distDir: distDir(workdir, manifest), repo: f.repo, replace: f.replace, dryRun: f.dryRun, allowStandIn: f.allowStandIn, log: createLogger({ json: f.json }), env: process.env, signal: controller.signal });
    print(f.json, report, () => formatReport(report));
  });

program
  .command('doctor')
  .description("run kubelet-lxc-doctor on this node: whether the stock kubelet starts here, what the patched one does instead, and each blocker's fix (the same static program the bundle ships; exit 1 when the patched kubelet is blocked too)")
  .option('--release <id|version|file>', 'release manifest whose build to take it from (default: the newest)')
  .option('--workdir <dir>', 'work directory of that build', path.join(PROJECT_ROOT, 'work'))
  .option('--binary <file>', 'a kubelet-lxc-doctor to run instead (e.g. the release asset kubelet-lxc-doctor-linux-<arch>)')
  .option('--kubelet-config <file>', "the kubelet's configuration file (failSwapOn, protectKernelDefaults, featureGates)")
  .option('--json', 'the report as JSON', false)
  .action(async (f: { release?: string; workdir: string; binary?: string; kubeletConfig?: string; json: boolean }) => {
    const arch = hostArch();
    const binary = f.binary ? path.resolve(f.binary) : path.join(workPaths({ workdir: path.resolve(f.workdir), cacheDir: '' }, resolveManifest(f.release)).bin, 'patched', `linux-${arch}`, DOCTOR_NAME);
    if (!(await exists(binary))) {
      const hint = f.binary ? 'give the path of a kubelet-lxc-doctor binary' : `build it with the kubelet (npm run build-kubelet), or pass --binary with the release asset kubelet-lxc-doctor-linux-${arch}`;
      throw new StageError(`no kubelet-lxc-doctor at ${binary}: ${hint}`, 'cli', { hint });
    }
    const args = [...(f.json ? ['--json'] : []), ...(f.kubeletConfig ? ['--kubelet-config', path.resolve(f.kubeletConfig)] : [])];
    const res = await run(binary, args, { reject: false, timeoutMs: 300_000 });
    if (res.exitCode !== 0 && res.exitCode !== 1) throw new StageError(`kubelet-lxc-doctor (${binary}) could not run (exit ${res.exitCode}): ${res.stderr.trim() || res.stdout.trim()}`, 'cli');
    process.stderr.write(res.stderr);
    // the exec seam strips the last newline; the doctor's output ends with one
    process.stdout.write(res.stdout ? `${res.stdout}\n` : '');
    process.exitCode = res.exitCode;
  });

program
  .command('proxmox-config')
  .description('the lines a Proxmox container needs in /etc/pve/lxc/<id>.conf to run a kubelet, privileged and unprivileged, each with its reason (the lab runs its containers with the same)')
  .addOption(new Option('--kind <kind>', 'only this kind of container').choices([...CONTAINER_KINDS]))
  .option('--json', 'the settings as JSON', false)
  .action((f: { kind?: ContainerKind; json: boolean }) => {
    const kinds = f.kind ? [f.kind] : CONTAINER_KINDS;
    const data = Object.fromEntries(kinds.map((k) => [k, { proxmox: PROXMOX_OPTIONS[k], lxc: lxcSettings(k), kubeletFeatureGates: k === 'unprivileged' ? { KubeletInUserNamespace: true } : {} }]));
    print(f.json, data, () => kinds.map((k) => renderProxmoxConfig(k)).join('\n').trimEnd());
  });

// The package stage's artifact lists, for the release workflow: files made after it (the lab's
// conformance results) join a platform's list, and the checksum files are rewritten from the
// merged lists of every platform job.
const artifacts = program.command('artifacts').description("the package stage's artifact lists in a dist/ folder: list, add files, rewrite the checksum files");
artifacts
  .command('list')
  .description('every listed artifact: kind, platform, size, sha256, stand-in')
  .requiredOption('--dist <dir>', 'the dist/ folder (<workdir>/out/<release>/dist)')
  .option('--json', 'as JSON', false)
  .action(async (f: { dist: string; json: boolean }) => {
    const { artifacts: listed } = await readArtifactLists(path.resolve(f.dist)).catch(artifactListFailure(f.dist));
    print(f.json, listed, () => listed.map((a) => `${a.name}  ${a.kind}  ${a.platform ?? 'any'}  ${a.size}  sha256:${a.sha256}${a.standIn ? '  STAND-IN' : ''}`).join('\n'));
  });
artifacts
  .command('add <files...>')
  .description("copy files into dist/ and add them to a platform's artifact list (then run artifacts sums)")
  .requiredOption('--dist <dir>', 'the dist/ folder (<workdir>/out/<release>/dist)')
  .requiredOption('--platform <os/arch>', `the platform whose list gets them (${PLATFORMS.join(', ')})`)
  .requiredOption('--kind <kind>', 'what they are, e.g. conformance-junit')
  .option('--json', 'as JSON', false)
  .action(async (files: string[], f: { dist: string; platform: string; kind: string; json: boolean }) => {
    if (!(PLATFORMS as readonly string[]).includes(f.platform)) throw new StageError(`unknown platform "${f.platform}"; known: ${PLATFORMS.join(', ')}`, 'cli');
    if (!/^[a-z0-9][a-z0-9-]*$/.test(f.kind)) throw new StageError(`--kind ${JSON.stringify(f.kind)}: use lower-case letters, digits and "-"`, 'cli');
    for (const file of files) if (!(await exists(file))) throw new StageError(`${file} does not exist`, 'cli');
    const added = await addArtifacts(path.resolve(f.dist), f.platform as Platform, files.map((x) => path.resolve(x)), f.kind).catch(artifactListFailure(f.dist));
    print(f.json, added, () => added.map((a) => `added ${a.name} (${a.kind}, ${a.platform}) sha256:${a.sha256}`).join('\n'));
  });
artifacts
  .command('sums')
  .description('rewrite the checksum files (SHA256SUMS, SHA512SUMS, sha256sum-<arch>.txt, …) from the artifact lists')
  .requiredOption('--dist <dir>', 'the dist/ folder (<workdir>/out/<release>/dist)')
  .option('--json', 'as JSON', false)
  .action(async (f: { dist: string; json: boolean }) => {
    const written = await writeChecksums(path.resolve(f.dist)).catch(artifactListFailure(f.dist));
    print(f.json, { written }, () => `wrote ${written.join(', ')}`);
  });

function artifactListFailure(dist: string): (err: unknown) => never {
  return (err: unknown) => {
    if (err instanceof ArtifactListError) throw new StageError(err.message, 'cli');
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StageError(`${dist} does not exist: give the dist/ folder of a build (<workdir>/out/<release>/dist)`, 'cli');
    throw err;
  };
}

program
  .command('install [bundle]')
  .description('install a kubelet-path bundle on this node (verifies checksums, backs up, atomic), or --rollback')
  .option('--root <dir>', 'file system root to install into', '/')
  .option('--rollback', 'restore the state before the last install', false)
  .option('--json', 'as JSON', false)
  .action(async (bundle: string | undefined, f: { root: string; rollback: boolean; json: boolean }) => {
    if (!bundle && !f.rollback) throw new InstallError('give the bundle to install (kubelet-lxc-<version>-linux-<arch>.tar.gz), or --rollback to undo the last install');
    if (bundle && f.rollback) throw new InstallError('--rollback takes no bundle: run kubelet-lxc install --rollback alone to undo the last install');
    const log = createLogger({ json: f.json });
    const report = await installBundle({ bundle: bundle ? path.resolve(bundle) : undefined, root: path.resolve(f.root), rollback: f.rollback, log });
    print(f.json, report, () => [formatInstallReport(report), report.next].join('\n'));
  });

function formatInstallReport(r: InstallReport): string {
  if (r.action === 'rolled-back') {
    const lines = [`rolled-back: ${r.undone?.map((u) => `${u.action} ${u.path}`).join(', ') || 'nothing was left to undo'}`];
    if (r.kubeletPath && r.kubeletVersion) lines.push(`kubelet: ${r.kubeletPath} (${r.kubeletVersion})`);
    return lines.join('\n');
  }
  return `${r.action}: ${r.kubeletPath} (${r.kubeletVersion})`;
}

/** Whether the command line asks for JSON (before a "--", whatever the command). */
function wantsJson(argv: string[]): boolean {
  const args = argv.slice(2);
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).includes('--json');
}

export async function main(argv = process.argv): Promise<number> {
  const json = wantsJson(argv);
  try {
    await program.parseAsync(argv);
    if (controller.signal.aborted) {
      process.stderr.write('interrupted\n');
      return 130;
    }
    // a command that ran and has a verdict of its own (doctor: 1 = blocked) sets it
    return Number(process.exitCode ?? 0);
  } catch (err) {
    if (controller.signal.aborted) {
      process.stderr.write('interrupted\n');
      if (json) process.stdout.write(`${JSON.stringify({ error: 'interrupted', stage: null, hint: null })}\n`);
      return 130;
    }
    // --help and the like end through exitOverride too
    if (err instanceof CommanderError && err.exitCode === 0) return 0;
    const report = describeError(err);
    // commander has printed its own message already
    if (!(err instanceof CommanderError)) process.stderr.write(`error: ${err instanceof StageError ? `${err.stage}: ` : ''}${report.error}\n`);
    if (json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    if (process.env.KUBELET_LXC_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${redactUrls(err.stack)}\n`);
    return err instanceof CommanderError ? err.exitCode || 1 : 1;
  }
}

process.exitCode = await main();
