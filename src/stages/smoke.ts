// smoke: cheapest checks first. L0: every binary has the intended arch and is static, its
// build settings are as intended, and the one this host can run prints the stamped version.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readElf } from '../lib/elf.js';
import { hasCommand, run } from '../lib/exec.js';
import { writeFileAtomic } from '../lib/fsutil.js';
import { PROJECT_ROOT, archOf, hostArch } from '../manifest.js';
import { GO_BUILD_TAGS } from './build.js';
import { formatMatrix, runPatchTests } from './smoke/patchtests.js';
import { CONFORMANCE_JUNIT, CONFORMANCE_TABLE, labVerdict, runLab, type LabL2Inputs, type LabLevel } from '../lab/index.js';
import { ensureL2Binaries } from '../lab/l2/binaries.js';
import { conformanceCodenames, imageTagsOf, leftConformanceBy, loadConformanceList, testsInTree, testsOfTier, type ConformanceTier } from '../lab/l2/conformance.js';
import { imageRefsFrom, retagImageRefs, type L2ImageRefs } from '../lab/l2/images.js';
import { imageId, resolveEngine } from '../lib/engine.js';
import { StageError, type BuildOutput, type BuiltBinary, type SmokeCheck, type Stage, type StageContext, type StageOutputs } from './types.js';

/** Build settings `go version -m` must show for a release kubelet. */
export function expectedBuildSettings(arch: string): string[] {
  return ['-trimpath=true', 'CGO_ENABLED=0', `GOARCH=${arch}`, 'GOOS=linux', `-tags=${GO_BUILD_TAGS}`];
}

export async function binaryChecks(b: BuiltBinary): Promise<SmokeCheck[]> {
  const arch = archOf(b.platform);
  const label = `${b.program === 'doctor' ? 'kubelet-lxc-doctor' : b.variant} ${b.platform}`;
  const checks: SmokeCheck[] = [];
  const elf = await readElf(b.path);
  checks.push({ level: 'L0', name: `${label}: ELF arch`, ok: elf.arch === arch, detail: `ELF machine ${elf.arch}, wanted ${arch}` });
  checks.push({ level: 'L0', name: `${label}: statically linked`, ok: elf.static, detail: elf.static ? 'no PT_INTERP/PT_DYNAMIC' : 'has a dynamic loader' });
  const m = await run('go', ['version', '-m', b.path], { reject: false, env: { ...process.env, GOTOOLCHAIN: 'local' } });
  const settings = [...m.stdout.matchAll(/^\s+build\s+(\S+)/gm)].map((x) => x[1]!);
  const missing = expectedBuildSettings(arch).filter((s) => !settings.includes(s));
  checks.push({ level: 'L0', name: `${label}: build settings`, ok: m.exitCode === 0 && missing.length === 0, detail: missing.length ? `missing ${missing.join(', ')} in go version -m` : expectedBuildSettings(arch).join(' ') });
  // The host runs its own arch; another arch runs under qemu user emulation when installed (qemu-user).
  let cmd: string[] | undefined;
  if (arch === hostArch()) cmd = [b.path, '--version'];
  else {
    const emulator = `qemu-${arch === 'arm64' ? 'aarch64' : 'x86_64'}`;
    if (await hasCommand(emulator)) cmd = [emulator, b.path, '--version'];
  }
  if (cmd) {
    const v = await run(cmd[0]!, cmd.slice(1), { reject: false, timeoutMs: 120_000 });
    const want = b.program === 'doctor' ? `kubelet-lxc-doctor ${b.version}` : `Kubernetes ${b.version}`;
    checks.push({ level: 'L0', name: `${label}: --version${cmd.length > 2 ? ` (${cmd[0]})` : ''}`, ok: v.stdout.trim() === want, detail: `printed "${v.stdout.trim()}", wanted "${want}"` });
  }
  return checks;
}

export const smokeStage: Stage<'smoke'> = {
  name: 'smoke',
  description: 'smoke-test the binaries (L0; patch tests and the L1 lab when asked)',
  sources: (ctx) => [
    ...['src/stages/smoke.ts', 'src/stages/smoke', 'src/lab', 'lab', 'src/rke2/lxc-settings.ts'].map((f) => path.join(PROJECT_ROOT, f)),
    path.join(ctx.manifest.patchesDir, 'site-tests.json'),
  ],
  async inputs(ctx, prev) {
    return { binaries: prev.build?.binaries.map((b) => b.sha256), smoke: ctx.opts.smoke, patched: prev.patch?.commit, stock: prev.source?.treeCommit };
  },
  async run(ctx, prev) {
    const checks: SmokeCheck[] = [];
    for (const b of prev.build!.binaries) checks.push(...(await binaryChecks(b)));
    const reports = [await writeReport(ctx, 'smoke-L0.json', checks)];
    for (const c of checks) ctx.log.info(`${c.ok ? 'ok  ' : 'FAIL'} ${c.level} ${c.name}: ${c.detail}`);
    if (ctx.opts.smoke.patchTests) {
      const b = prev.build!;
      const { report, files } = await runPatchTests(ctx, {
        engine: await engineOfBuild(ctx, b.engine),
        image: b.builderImage,
        stockTree: prev.source!.tree,
        stockCommit: prev.source!.treeCommit,
        sourceDateEpoch: prev.source!.sourceDateEpoch,
        patchedTree: prev.patch!.tree,
        patchedCommit: prev.patch!.commit,
      });
      reports.push(...files);
      ctx.log.info(formatMatrix(report));
      for (const r of report.rows) checks.push({ level: 'patch-tests', name: `site ${r.site} ${r.test}`, ok: r.ok, detail: `stock ${r.stock}, patched ${r.patched}` });
      for (const u of report.upstream) checks.push({ level: 'patch-tests', name: `upstream ${u.pkg}`, ok: u.ok, detail: u.result });
      for (const u of report.unit) checks.push({ level: 'patch-tests', name: `unit ${u.pkg}`, ok: u.ok, detail: `${u.tests} tests` });
      for (const p of report.problems) checks.push({ level: 'patch-tests', name: 'matrix', ok: false, detail: p });
    }
    for (const level of ctx.opts.smoke.lab) {
      const lab = await runLabFor(ctx, prev, { level, conformance: ctx.opts.smoke.conformance });
      reports.push(...lab.files);
      for (const r of lab.checks) checks.push(r);
    }
    const failed = checks.filter((c) => !c.ok);
    if (failed.length) throw new StageError(`smoke failed: ${failed.map((c) => `${c.name}: ${c.detail}`).join('; ')} (reports: ${reports.join(', ')})`, 'smoke');
    return { checks, reports };
  },
  async intact() {
    return true;
  },
};

/** The engine a build used, checked again: a build stage skipped as unchanged never asked it, and the daemon may have stopped since (a clear error, not docker's own). */
async function engineOfBuild(ctx: StageContext, engine: BuildOutput['engine']): Promise<BuildOutput['engine']> {
  return engine === 'host' ? engine : resolveEngine(engine, ctx.log, { hostAllowed: false });
}

/** Lab cache: shared by every work directory on the machine (the guest takes minutes to build). */
export function labCacheDir(): string {
  return process.env.KUBELET_LXC_LAB_CACHE ?? path.join(os.homedir(), '.cache', 'kubelet-lxc', 'lab');
}

/** L2's matrix: the untouched container (stock passes too: the harness is not rigged) and every fault at once (stock never gets its node Ready). */
export const L2_DEFAULT_PROFILES = ['lxc-default', 'all'] as const;

export interface LabRequest {
  level: LabLevel;
  profiles?: string[];
  /** L2: the conformance tier the patched kubelet's runs run */
  conformance?: ConformanceTier;
}

/** The lab (L1 or L2) on the stock and patched amd64 kubelets; L2 builds what it needs besides them first. */
export async function runLabFor(ctx: StageContext, prev: StageOutputs, req: LabRequest): Promise<{ checks: SmokeCheck[]; files: string[] }> {
  const binaries = prev.build!.binaries;
  const pick = (v: string, program = 'kubelet') => binaries.find((b) => b.program === program && b.variant === v && b.platform === 'linux/amd64');
  const stock = pick('stock');
  const patched = pick('patched');
  const doctor = pick('patched', 'doctor');
  if (!stock || !patched || !doctor) throw new StageError('the lab needs the stock and the patched linux/amd64 kubelets and the doctor: build with --lab and --platform linux/amd64', 'smoke');
  const outDir = path.join(ctx.paths.reports, req.level === 'L1' ? 'lab' : 'lab-l2');
  let l2: LabL2Inputs | undefined;
  if (req.level === 'L2') {
    const build = prev.build!;
    const source = prev.source!;
    const engine = await engineOfBuild(ctx, build.engine);
    const image = engine === 'host' ? { ref: 'host', id: 'host' } : { ref: build.builderImage, id: (await imageId(engine, build.builderImage)) ?? build.builderImage };
    const bins = await ensureL2Binaries(ctx, {
      engine,
      image,
      goVersion: build.goVersion,
      tree: source.tree,
      treeCommit: source.treeCommit,
      upstreamCommit: source.upstreamCommit,
      sourceDateEpoch: source.sourceDateEpoch,
    });
    const list = loadConformanceList();
    const tier = req.conformance ?? 'ci';
    // the list is written against one release; names and image tags are taken as this tree spells them
    const tags = imageTagsOf(await readFile(path.join(source.tree, 'test', 'utils', 'image', 'manifest.go'), 'utf8'));
    const imageRefs = retagImageRefs(imageRefsFrom(list.images.map((i) => i.name)), tags);
    await checkImagesKnownToSuite(bins.paths['e2e.test'], imageRefs);
    const codenames = conformanceCodenames(await readFile(path.join(source.tree, 'test', 'conformance', 'testdata', 'conformance.yaml'), 'utf8'));
    let tests;
    try {
      const version = ctx.manifest.data.kubernetes.version;
      const tierTests = testsOfTier(list, tier);
      for (const t of tierTests.filter((x) => leftConformanceBy(x, version))) ctx.log.info(`lab: not run on ${version}, no longer a conformance test since ${t.leftConformance!.in}: ${t.name}`);
      tests = testsInTree(tierTests.filter((x) => !leftConformanceBy(x, version)), codenames, version);
    } catch (e) {
      throw new StageError((e as Error).message, 'smoke');
    }
    l2 = { binaries: bins, tree: source.tree, imageRefs, conformance: tier === 'none' ? null : { tier, tests } };
  }
  const report = await runLab({
    kubelets: { stock: stock.path, patched: patched.path },
    doctor: doctor.path,
    cacheDir: labCacheDir(),
    outDir,
    profiles: req.profiles ?? (req.level === 'L2' ? [...L2_DEFAULT_PROFILES] : undefined),
    level: req.level,
    l2,
    kvm: ctx.opts.kvm,
    log: (l) => ctx.log.info(/^(lab|guest):/.test(l) ? l : `lab: ${l}`),
    signal: ctx.signal,
  });
  const verdict = labVerdict(report);
  const what = req.level === 'L1' ? 'LXC lab' : `LXC lab L2 (server node${l2?.conformance ? `, conformance ${l2.conformance.tier}` : ''})`;
  const checks: SmokeCheck[] = [
    { level: req.level, name: what, ok: verdict.ok, detail: verdict.ok ? 'patched kubelet passed every profile; stock failed where meant to' : verdict.problems.join('; ') },
  ];
  const files = [path.join(outDir, 'lab-report.json'), path.join(outDir, 'lab-report.txt')];
  if (l2?.conformance) files.push(path.join(outDir, CONFORMANCE_JUNIT), path.join(outDir, CONFORMANCE_TABLE));
  return { checks, files };
}

/** Our image names must be the ones the suite uses (e2e.test --list-images), or the tests would pull. */
async function checkImagesKnownToSuite(e2eTest: string, refs: L2ImageRefs): Promise<void> {
  const listed = await run(e2eTest, ['--list-images'], { reject: false, timeoutMs: 120_000 });
  const names = new Set(listed.stdout.split('\n').map((l) => l.trim()).filter(Boolean));
  const unknown = Object.values(refs).filter((r) => !names.has(r));
  if (listed.exitCode !== 0 || unknown.length) {
    throw new StageError(
      `the conformance suite does not use ${unknown.join(', ') || 'the lab\'s images'} (e2e.test --list-images exit ${listed.exitCode}): update lab/conformance.json's images to the names test/utils/image/manifest.go gives`,
      'smoke',
    );
  }
}

async function writeReport(ctx: StageContext, name: string, data: unknown): Promise<string> {
  const file = path.join(ctx.paths.reports, name);
  await writeFileAtomic(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}
