// The LXC lab (smoke level L1): a qemu guest (cgroup v2, lxc, lxcfs, containerd,
// runc from Debian trixie), inside it one Proxmox-style LXC container per run, inside
// that a standalone kubelet with one static pod, under each fault profile, for the
// stock and the patched kubelet. See lab/README.md.
import { access, constants, copyFile, cp, link, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { binaryVersion, hasCommand, run } from '../lib/exec.js';
import { fileHash, writeFileAtomic } from '../lib/fsutil.js';
import { claimDir, ensureGuest, ownerGone, type GuestImage } from './guest.js';
import { labFile } from './paths.js';
import { compileProfile, loadProfiles, selectProfiles, type LabProfile } from './profiles.js';
import { accelCandidates, KVM_ERROR_GRACE_MS, KVM_PROOF_SECONDS, kvmFailureIn, QEMU, startVm, type Accel, type VmHandle } from './qemu.js';
import { readRunDir, withL2 } from './results.js';
import { renderConformance, renderReport } from './table.js';
import { writeJunit, type JunitStatus } from '../lib/junit.js';
import { KUBELET_KINDS, type KubeletKind, type LabAccelFallback, type LabGuestRestart, type LabLevel, type LabOptions, type LabProfileSummary, type LabReport, type LabRun, type LabStepTiming } from './types.js';
import { labVerdict, neutralityFacts } from './verdict.js';
import { driveL2Run, L2_BUDGETS, type L2RunResult } from './l2/driver.js';
import { writeL2Images } from './l2/images.js';
import { APISERVER_PORT, makeRunPki, NODE_IP, NODE_NAME, SERVICE_CIDR } from './l2/pki.js';
import { NEEDS_KVM, type ConformanceTest } from './l2/conformance.js';
import { type ContainerKind, OPERATOR_SETTINGS_PLACEHOLDER, renderLxcConfig, UNPRIVILEGED_ID_MAP } from '../rke2/lxc-settings.js';

export { labVerdict, type LabVerdict } from './verdict.js';
export { LAB_PROFILE_IDS, loadProfiles, parseProfiles, compileProfile, type LabProfile } from './profiles.js';
export { renderReport, renderTable } from './table.js';
export { GUEST_PACKAGES, GUEST_SUITE } from './guest.js';
export type * from './types.js';
export { LAB_LEVELS, KUBELET_KINDS } from './types.js';
export { KVM_ENV, KVM_MODES, kvmModeFrom, type KvmMode } from './qemu.js';

/** Time budgets of the lab's steps, in seconds (TCG on a 2-core machine). */
export const STEP_BUDGETS = Object.freeze({
  guestBuild: 900,
  boot: 180,
  guestSetup: 240,
  /** on top of the run's kubelet deadline: container start, containerd, image import, stop */
  runOverhead: 150,
  shutdown: 60,
});

/** The L2 lab's conformance results, beside its report (and attached to releases). */
export const CONFORMANCE_JUNIT = 'conformance-junit.xml';
export const CONFORMANCE_TABLE = 'conformance.txt';

/** Parallel ginkgo processes for the conformance tests (the guest's 2 vCPUs are the limit, waits are not). */
export const CONFORMANCE_PROCS = 3;

/** Boots of the guest per lab: the second one only when the first ended before its runs were done. */
const MAX_GUEST_BOOTS = 2;

/** Files of lab/ the guest reads at run time over 9p. */
const RUNTIME_FILES = ['guest-main.sh', 'ct-init.sh', 'lxc.conf.in', 'containerd.toml', 'kubelet-config.yaml', 'static-pod.yaml', 'ct-l2.sh', 'containerd-l2.toml', 'kubelet-config-l2.yaml', 'cni-bridge.conflist'];
/** Control-plane programs the L2 container runs from the kubelet disk (kubectl and e2e.test stay on the host). */
const L2_DISK_PROGRAMS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kine'] as const;
/** The L2 node's datastore, shaped like RKE2's with disable-etcd and a sqlite:// endpoint. */
export const L2_DATASTORE = 'sqlite:///var/lib/rancher/rke2/server/db/state.db?_journal=WAL&cache=shared&_busy_timeout=30000';
/** Host programs the lab runs (scripts/lab-host-deps.sh installs them). */
export const HOST_TOOLS = [QEMU, 'setpriv', 'debootstrap', 'mkfs.ext4', 'dpkg-query'];

/** The lab was stopped (its signal) before it had a verdict; qemu is gone when this is thrown. */
export class LabAbortError extends Error {
  constructor(message = 'lab aborted') {
    super(message);
    this.name = 'LabAbortError';
  }
}

export class LabSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabSetupError';
  }
}

async function checkKubelets(k: LabOptions['kubelets'], doctor: string): Promise<void> {
  const missing: string[] = [];
  for (const [kind, file] of [...KUBELET_KINDS.map((kind) => [kind, k[kind]] as const), ['doctor', doctor] as const]) {
    try {
      await access(file, constants.X_OK);
    } catch {
      missing.push(`${kind}: ${file}`);
    }
  }
  if (missing.length) {
    throw new LabSetupError(
      `kubelet binaries missing or not executable (${missing.join('; ')}). Build them from the default manifest: ` +
        `the stock kubelet is the pinned Kubernetes tree without the patch series, the patched one and kubelet-lxc-doctor with it (linux/amd64).`,
    );
  }
}

async function checkHostTools(): Promise<void> {
  const missing: string[] = [];
  for (const t of HOST_TOOLS) if (!(await hasCommand(t))) missing.push(t);
  if (missing.length) throw new LabSetupError(`host tools missing: ${missing.join(', ')}; run scripts/lab-host-deps.sh`);
}

async function kubeletVersion(path: string): Promise<string> {
  const v = await binaryVersion(path);
  if (!v.ok) throw new LabSetupError(`${path} --version failed: ${v.out.split('\n').slice(-3).join(' ')}`);
  return v.out.split('\n')[0] ?? 'unknown';
}

/** The last n non-empty lines of a text file ([] when it is missing). */
async function tailLines(p: string, n: number): Promise<string[]> {
  const text = await readFile(p, 'utf8').catch(() => '');
  return text
    .split(/\r?\n/)
    // the console carries terminal escapes; keep printable text only
    .map((l) => [...l].filter((c) => c >= ' ' && c !== '\x7f').join('').trimEnd())
    .filter((l) => l.trim())
    .slice(-n);
}

async function removeStaleWork(workRoot: string): Promise<void> {
  for (const name of await readdir(workRoot).catch(() => [] as string[])) {
    const m = /^run-(\d+)-/.exec(name);
    if (m?.[1] && (await ownerGone(join(workRoot, name), Number(m[1])))) await rm(join(workRoot, name), { recursive: true, force: true });
  }
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
  }
}

interface PlannedRun {
  id: string;
  profile: LabProfile;
  kubelet: KubeletKind;
  level: LabLevel;
  /** seconds the run may take inside the container */
  deadline: number;
  /** L2: the conformance tests this run runs (the patched kubelet's only) */
  conformance: ConformanceTest[];
}

function plan(profiles: LabProfile[], level: LabLevel, l1Deadline: number, l2: LabOptions['l2']): PlannedRun[] {
  const runs: PlannedRun[] = [];
  let n = 0;
  for (const p of profiles) {
    for (const k of KUBELET_KINDS) {
      n++;
      const conformance = level === 'L2' && k === 'patched' ? (l2?.conformance?.tests ?? []) : [];
      const deadline = level === 'L1' ? l1Deadline : l2RunDeadline(conformance.length);
      runs.push({ id: `${String(n).padStart(2, '0')}-${p.id}-${k}`, profile: p, kubelet: k, level, deadline, conformance });
    }
  }
  return runs;
}

/** An L2 run's time inside the container: control plane, node Ready, checks, the conformance tests. */
export function l2RunDeadline(tests: number): number {
  return L2_BUDGETS.apiserverReady + L2_BUDGETS.nodeReady + L2_BUDGETS.serviceAccount + L2_BUDGETS.podRunning + L2_BUDGETS.cgroupGone + 120 + (tests ? L2_BUDGETS.e2eSetup + L2_BUDGETS.perConformanceTest * tests : 0);
}

/** A free TCP port on the host's loopback, for qemu to forward to the guest's apiserver port. */
async function freeLoopbackPort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

function summary(p: LabProfile): LabProfileSummary {
  return {
    id: p.id,
    description: p.description,
    sites: p.sites,
    expectStockFailure: p.expect.stock.fails,
    ...(p.expect.stock.errors?.length ? { expectedStockErrors: p.expect.stock.errors } : {}),
    reason: p.expect.stock.reason,
    ...(p.expect.patched ? { expectPatchedFailure: { errors: p.expect.patched.errors, sameErrorAsStock: p.expect.patched.sameErrorAsStock, reason: p.expect.patched.reason } } : {}),
    ...(p.neutral ? { neutral: true } : {}),
  };
}

/** Steps with budgets: records wall time, flags overruns, and fires onOverrun once per step. */
class StepClock {
  readonly steps: LabStepTiming[] = [];
  private current: { step: string; started: number; budget: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly onOverrun: (step: string, budget: number) => void) {}
  start(step: string, budgetSeconds: number): void {
    this.end();
    this.current = { step, started: Date.now(), budget: budgetSeconds };
    this.timer = setTimeout(() => this.onOverrun(step, budgetSeconds), budgetSeconds * 1000);
    this.timer.unref();
  }
  end(): void {
    if (!this.current) return;
    if (this.timer) clearTimeout(this.timer);
    const seconds = Math.round((Date.now() - this.current.started) / 100) / 10;
    this.steps.push({ step: this.current.step, seconds, budgetSeconds: this.current.budget, overBudget: seconds > this.current.budget });
    this.current = undefined;
  }
}

/**
 * Runs the lab: builds (or reuses) the guest, boots it once, runs every profile with the
 * stock and the patched kubelet, writes outDir/lab-report.json and lab-report.txt and
 * returns the report (its verdict says whether the lab passed; the caller exits non-zero
 * when !report.verdict.ok). Rejects with LabAbortError on opts.signal (after qemu is gone),
 * with LabSetupError when kubelets or host tools are missing.
 */
/** lab/lxc.conf.in with the settings operators are told to use (kubelet-lxc proxmox-config) for this kind of container in place. */
export async function labContainerConfig(kind: ContainerKind = 'privileged'): Promise<string> {
  const template = await readFile(labFile('lxc.conf.in'), 'utf8');
  if (template.split(OPERATOR_SETTINGS_PLACEHOLDER).length !== 2) throw new LabSetupError(`lab/lxc.conf.in must hold ${OPERATOR_SETTINGS_PLACEHOLDER} once, where the operator settings go`);
  return template.replace(`${OPERATOR_SETTINGS_PLACEHOLDER}\n`, renderLxcConfig(kind));
}

/**
 * The guest's inputs: the 9p share (runtime scripts, profiles, the run plan's folders, L2
 * credentials per run) and the read-only kubelet disk (both kubelets; for L2 also the control
 * plane, kine, e2e.test and the test images).
 */
async function prepareShare(o: {
  workDir: string;
  share: string;
  runsOut: string;
  outDir: string;
  kubelets: Record<(typeof KUBELET_KINDS)[number], string>;
  doctor: string;
  level: LabLevel;
  l2: LabOptions['l2'];
  runs: PlannedRun[];
  profiles: LabProfile[];
  guest: GuestImage;
  log: (line: string) => void;
  signal: AbortSignal | undefined;
}): Promise<{ kubeletDisk: string; hostPort: number | undefined }> {
  const { workDir, share, runsOut, outDir, kubelets, level, runs, profiles, guest, log, signal } = o;
  await mkdir(join(share, 'lab'), { recursive: true });
  await claimDir(workDir);
  await mkdir(join(share, 'profiles'));
  await mkdir(join(share, 'out'));
  for (const f of RUNTIME_FILES) await copyFile(labFile(f), join(share, 'lab', f));
  await cp(labFile('hooks'), join(share, 'lab', 'hooks'), { recursive: true });
  await writeFile(join(share, 'lab', 'lxc.conf.in'), await labContainerConfig());
  if (o.l2) {
    const f = join(share, 'lab', 'containerd-l2.toml');
    await writeFile(f, (await readFile(f, 'utf8')).replace('@PAUSE_IMAGE@', o.l2.imageRefs.pause));
  }
  // the kubelets travel on their own read-only disk (outside the 9p share)
  const kdir = join(workDir, 'kubelets');
  await mkdir(kdir);
  let kbytes = 0;
  for (const k of KUBELET_KINDS) {
    await linkOrCopy(kubelets[k], join(kdir, `kubelet-${k}`));
    kbytes += (await stat(kubelets[k])).size;
  }
  await linkOrCopy(o.doctor, join(kdir, 'kubelet-lxc-doctor'));
  kbytes += (await stat(o.doctor)).size;
  let hostPort: number | undefined;
  if (level === 'L2') {
    const l2 = o.l2!;
    for (const p of L2_DISK_PROGRAMS) {
      await linkOrCopy(l2.binaries.paths[p], join(kdir, p));
      kbytes += (await stat(l2.binaries.paths[p])).size;
    }
    const images = join(kdir, 'images-l2.tar');
    log(`lab: L2 test images (${Object.values(l2.imageRefs).join(', ')})`);
    await writeL2Images(images, { refs: l2.imageRefs, imageFiles: guest.imageFiles, bins: l2.binaries, tree: l2.tree });
    kbytes += (await stat(images)).size;
    hostPort = await freeLoopbackPort();
    // per run: fresh credentials, kubeconfigs and the run's settings, in its control folder
    for (const r of runs) {
      const ctl = join(share, 'l2', r.id);
      await mkdir(ctl, { recursive: true });
      await makeRunPki(join(ctl, 'pki'), { hostPort, containerDir: '/lab-ctl/pki' });
      await writeFile(
        join(ctl, 'run.env'),
        [
          'IMAGES=/opt/lab/kubelets/images-l2.tar',
          'CONTAINERD_CONFIG=containerd-l2.toml',
          `DATASTORE='${L2_DATASTORE}'`,
          `NODE_IP=${NODE_IP}`,
          `NODE_NAME=${NODE_NAME}`,
          `SERVICE_CIDR=${SERVICE_CIDR}`,
          `APISERVER_BUDGET=${L2_BUDGETS.apiserverReady}`,
          '',
        ].join('\n'),
      );
    }
  }
  const kubeletDisk = join(workDir, 'kubelets.img');
  await run('mkfs.ext4', ['-q', '-F', '-L', 'labkubelets', '-d', kdir, kubeletDisk, `${Math.ceil(kbytes / 1048576) + 64}M`], { signal, wholeTree: true });
  for (const p of profiles) {
    await writeFile(join(share, 'profiles', `${p.id}.txt`), compileProfile(p));
    if (p.lxc.length) await writeFile(join(share, 'profiles', `${p.id}.lxc`), `# profile ${p.id}: the container's own setup\n${p.lxc.join('\n')}\n`);
    if (p.unprivileged) {
      // guest-main.sh takes this config instead of lab/lxc.conf.in, and the id map for the root file system
      await writeFile(join(share, 'profiles', `${p.id}.conf.in`), await labContainerConfig('unprivileged'));
      await writeFile(join(share, 'profiles', `${p.id}.idmap`), `${UNPRIVILEGED_ID_MAP.base} ${UNPRIVILEGED_ID_MAP.size}\n`);
    }
  }
  await rm(runsOut, { recursive: true, force: true });
  await mkdir(runsOut, { recursive: true });
  for (const name of await readdir(outDir)) if (/^(console|guest)\.(boot\d+|kvm)\.log$/.test(name)) await rm(join(outDir, name), { force: true });
  return { kubeletDisk, hostPort };
}

/** lab-report.json and .txt, and for L2 the conformance results as they go out with a release (JUnit, one suite per run, and the table). */
async function writeLabReport(o: {
  opts: LabOptions;
  outDir: string;
  level: LabLevel;
  startedAt: Date;
  accel: Accel;
  accelNote: string | undefined;
  accelFallback: LabAccelFallback | null;
  guest: GuestImage;
  kubeletInfo: LabReport['kubelets'];
  profiles: LabProfile[];
  allRuns: LabRun[];
  steps: LabReport['steps'];
  labProblems: string[];
  guestRestarts: LabGuestRestart[];
}): Promise<{ report: LabReport; text: string }> {
  const { opts, outDir, level, startedAt, accel, accelNote, accelFallback, guest, kubeletInfo, profiles, allRuns, labProblems, guestRestarts } = o;
  const finishedAt = new Date();
  const base = {
    schema: 1 as const,
    level,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    seconds: Math.round((finishedAt.getTime() - startedAt.getTime()) / 100) / 10,
    accel,
    accelNote: accelNote ?? null,
    accelFallback,
    guest: { key: guest.key, cached: guest.cached, dir: guest.dir, versions: guest.meta.versions, kernelRelease: guest.meta.kernelRelease },
    kubelets: kubeletInfo,
    ...(opts.l2 ? { l2: { binaries: opts.l2.binaries.sha256, images: opts.l2.imageRefs, datastore: L2_DATASTORE, conformanceTier: opts.l2.conformance?.tier ?? 'none', kine: opts.l2.binaries.kineVersion } } : {}),
    profiles: profiles.map(summary),
    runs: allRuns,
    steps: o.steps,
    labProblems,
    guestRestarts,
    neutrality: profiles
      .filter((p) => p.neutral)
      .flatMap((p) => {
        const st = allRuns.find((r) => r.profile === p.id && r.kubelet === 'stock');
        const pt = allRuns.find((r) => r.profile === p.id && r.kubelet === 'patched');
        return st && pt ? neutralityFacts(p.id, st, pt) : [];
      }),
  };
  const report: LabReport = { ...base, verdict: labVerdict(base) };
  await writeFileAtomic(join(outDir, 'lab-report.json'), JSON.stringify(report, null, 2) + '\n');
  const text = renderReport(report);
  await writeFileAtomic(join(outDir, 'lab-report.txt'), text);
  if (level === 'L2') {
    // the conformance results as they go out with a release: JUnit (one suite per run) and the table
    const suites = allRuns
      .filter((r) => r.l2?.conformance)
      .map((r) => ({
        name: `${r.id} (Kubernetes ${kubeletInfo[r.kubelet].version.replace(/^Kubernetes /, '')}, profile ${r.profile})`,
        cases: r.l2!.conformance!.results.map((t) => ({
          name: t.name,
          status: (t.result === 'not run' || t.result === NEEDS_KVM ? 'skipped' : t.result) as JunitStatus,
          seconds: t.seconds,
          ...(t.message ? { message: t.message } : {}),
          ...(t.attempts ? { attempts: t.attempts } : {}),
        })),
      }));
    await writeFileAtomic(join(outDir, CONFORMANCE_JUNIT), writeJunit(suites));
    await writeFileAtomic(join(outDir, CONFORMANCE_TABLE), `${renderConformance(report)}\n`);
  }
  return { report, text };
}

export async function runLab(opts: LabOptions): Promise<LabReport> {
  const log = opts.log;
  const signal = opts.signal;
  const startedAt = new Date();
  const deadline = opts.runDeadlineSeconds ?? 150;
  const settle = opts.settleSeconds ?? 12;
  const outDir = resolve(opts.outDir);
  const cacheDir = resolve(opts.cacheDir);
  const kubelets = { stock: resolve(opts.kubelets.stock), patched: resolve(opts.kubelets.patched) };
  const doctor = resolve(opts.doctor);
  const profiles = selectProfiles(loadProfiles(), opts.profiles);
  const level: LabLevel = opts.level ?? 'L1';
  if (level === 'L2' && !opts.l2) throw new LabSetupError('the L2 lab needs its control plane, kine, e2e.test and test images (opts.l2): build them with the release (kubelet-lxc lab --level L2)');
  const runs = plan(profiles, level, deadline, opts.l2);
  const memoryMiB = opts.memoryMiB ?? (level === 'L2' ? 4096 : 3072);

  await checkKubelets(kubelets, doctor);
  await checkHostTools();
  if (signal?.aborted) throw new LabAbortError();
  await mkdir(outDir, { recursive: true });
  // an earlier verdict must not outlive this run (its runs/ go below)
  for (const f of ['lab-report.json', 'lab-report.txt', CONFORMANCE_JUNIT, CONFORMANCE_TABLE]) await rm(join(outDir, f), { force: true });

  const labProblems: string[] = [];
  let vm: VmHandle | undefined;
  let overrun = false;
  const clock = new StepClock((step, budget) => {
    overrun = true;
    labProblems.push(`step ${step} exceeded its time budget of ${budget} s: stopped`);
    log(`lab: step ${step} exceeded its budget of ${budget} s, stopping the guest`);
    void vm?.kill();
  });

  // 1. the guest
  clock.start('guest-image', STEP_BUDGETS.guestBuild);
  log('lab: guest image');
  const guest: GuestImage = await ensureGuest({ cacheDir, log, signal, mirror: opts.mirror, timeoutMs: STEP_BUDGETS.guestBuild * 1000 });
  clock.end();

  const kubeletInfo = {} as LabReport['kubelets'];
  for (const k of KUBELET_KINDS) {
    kubeletInfo[k] = { path: kubelets[k], version: await kubeletVersion(kubelets[k]), sha256: await fileHash(kubelets[k]) };
  }

  // 2. the 9p share: runtime scripts, kubelets, the plan, and where results come back
  const workRoot = join(cacheDir, 'work');
  await mkdir(workRoot, { recursive: true });
  await removeStaleWork(workRoot);
  const workDir = join(workRoot, `run-${process.pid}-${Date.now()}`);
  const share = join(workDir, 'share');
  const runsOut = join(outDir, 'runs');
  let aborted = false;
  try {
    const { kubeletDisk, hostPort } = await prepareShare({ workDir, share, runsOut, outDir, kubelets, doctor, level, l2: opts.l2, runs, profiles, guest, log, signal });

    // 3. boot and watch the console; a guest that ends before its runs are done (a crash,
    // a kernel panic, qemu killed from outside) is booted once more for the runs left,
    // and the restart is recorded in the report with the console's last lines.
    // KVM counts only once the lab's own guest has booted under it to its first console
    // marker; any KVM failure ends that attempt at once and the same run goes on under TCG.
    const { candidates, note: accelNote } = await accelCandidates(opts.kvm ?? 'auto', opts.kvmDevice);
    let accel: Accel = candidates[0]!;
    if (accelNote) log(`lab: ${accelNote}: using TCG`);
    let kvmProven = false;
    let accelFallback: LabAccelFallback | null = null;
    const proofSeconds = opts.kvmProofSeconds ?? KVM_PROOF_SECONDS;
    const results = new Map<string, LabRun>();
    const pending: Promise<void>[] = [];
    const total = runs.length;
    const collect = async (id: string): Promise<void> => {
      const r = runs.find((x) => x.id === id);
      if (!r) return;
      const dest = join(runsOut, id);
      await cp(join(share, 'out', id), dest, { recursive: true }).catch(() => undefined);
      let run = await readRunDir(
        { id, profile: r.profile.id, kubelet: r.kubelet, logDir: dest, expectedErrors: r.kubelet === 'stock' ? r.profile.expect.stock.errors : undefined },
        dest,
      );
      if (r.level === 'L2') {
        l2Ended.get(id)?.();
        run = withL2(run, await (drivers.get(id) ?? Promise.resolve(undefined)));
      }
      results.set(id, run);
      const expectPass = r.kubelet === 'patched' ? !r.profile.expect.patched : !r.profile.expect.stock.fails;
      const verdict = !run.completed || !run.profileApplied ? 'NOT JUDGED' : run.passed === expectPass ? 'as expected' : 'UNEXPECTED';
      const how = run.l2
        ? `node ${run.l2.registered ? 'registered' : 'not registered'}, ${run.l2.ready ? 'Ready' : 'not Ready'}, checks ${run.l2.checks.filter((c) => c.ok).length}/${run.l2.checks.length}` +
          (run.l2.conformance ? `, conformance ${run.l2.conformance.results.filter((c) => c.result === 'passed').length}/${run.l2.conformance.results.length}` : '')
        : `healthz ${run.healthz ? 'ok' : 'no'}, pod ${run.podRunning ? 'Running' : 'not Running'}`;
      log(
        `lab: ${r.profile.id}/${r.kubelet}: ${run.passed ? 'pass' : 'fail'} (${verdict}; CM ${run.containerManagerStarted ? 'started' : 'not started'}, ${how}, ${run.seconds ?? '?'} s)` +
          (run.passed ? '' : ` ${run.firstError ? '- ' + run.firstError.slice(0, 160) : '- ' + (run.l2?.problem ?? run.endReason)}`),
      );
      if (verdict === 'UNEXPECTED' || verdict === 'NOT JUDGED') {
        // the evidence at once, in the log a maintainer reads (CI), not only in the report
        const kubeletLog = join(dest, 'kubelet.log');
        log(`lab:   the kubelet log's last lines (${kubeletLog}):`);
        for (const l of await tailLines(kubeletLog, 15)) log(`lab:   | ${l.slice(0, 300)}`);
      }
    };
    const guestRestarts: LabGuestRestart[] = [];
    // L2: one host-side driver per run, started when the guest starts the run
    const drivers = new Map<string, Promise<L2RunResult>>();
    const l2Ended = new Map<string, () => void>();
    const startDriver = (r: PlannedRun): void => {
      const l2 = opts.l2!;
      const ctlDir = join(share, 'l2', r.id);
      let endRun: () => void = () => undefined;
      const runEnded = new Promise<void>((res) => (endRun = res));
      l2Ended.set(r.id, endRun);
      drivers.set(
        r.id,
        driveL2Run(
          {
            id: r.id,
            ctlDir,
            kubeconfig: join(ctlDir, 'pki', 'host.kubeconfig'),
            kubectl: l2.binaries.paths.kubectl,
            e2eTest: l2.binaries.paths['e2e.test'],
            ginkgo: l2.binaries.paths.ginkgo,
            procs: l2.procs ?? CONFORMANCE_PROCS,
            outDir: join(runsOut, r.id),
            conformance: r.conformance.length ? { tier: l2.conformance?.tier ?? 'custom', tests: r.conformance } : null,
            accel,
            runEnded,
            log,
            signal,
          },
          l2.imageRefs.busybox,
        ),
      );
    };
    let remaining = runs;
    for (let boot = 1; ; ) {
      await writeFile(join(share, 'runs.txt'), remaining.map((r) => `${r.id} ${r.profile.id} ${r.kubelet} ${r.deadline} ${settle} ${r.level}\n`).join(''));
      for (const r of remaining) {
        await rm(join(share, 'out', r.id), { recursive: true, force: true });
        // a run done again on a new boot starts with a clean control folder (its credentials stay)
        for (const f of ['state', 'host-done', 'facts.env', 'cgroups.txt', 'kubelet-starts', 'kubelet-exits']) await rm(join(share, 'l2', r.id, f), { force: true });
      }
      const proving = accel === 'kvm' && !kvmProven;
      const suffix = proving ? '.kvm' : boot === 1 ? '' : `.boot${boot}`;
      const consoleLog = join(outDir, `console${suffix}.log`);
      const guestLog = join(outDir, `guest${suffix}.log`);
      const ended = new Set<string>();
      let current: string | undefined;
      let allDone = false;
      let fatal: string | undefined;
      let kvmFailure: string | undefined;
      let proofTimer: NodeJS.Timeout | undefined;
      // cleared when this boot's qemu has ended, so it can never stop the next boot's
      let killTimer: NodeJS.Timeout | undefined;
      const bootStarted = Date.now();
      log(
        `lab: booting the guest (qemu ${accel.toUpperCase()}${proving ? `, on trial: it must reach its first console marker within ${proofSeconds} s` : ''}, ` +
          `2 vCPUs, ${memoryMiB} MiB${hostPort ? `, apiserver forwarded to 127.0.0.1:${hostPort}` : ''}), ${remaining.length} ${level} runs${boot > 1 ? ` (boot ${boot})` : ''}`,
      );
      clock.start(proving ? 'kvm-trial' : boot === 1 ? 'boot' : `boot ${boot}`, proving ? proofSeconds + 30 : STEP_BUDGETS.boot);
      // qemu's KVM error is several lines (the error, its reason, a register dump): it gets a
      // moment to finish them, so the console tail in the report holds all of it
      const failKvm = (why: string, graceMs = 0): void => {
        if (kvmProven || kvmFailure) return;
        kvmFailure = why;
        if (graceMs) killTimer = setTimeout(() => void vm?.kill(), graceMs);
        else void vm?.kill();
      };
      if (proving) {
        proofTimer = setTimeout(() => failKvm(`no console marker within ${proofSeconds} s`), proofSeconds * 1000);
        proofTimer.unref();
      }
      vm = startVm({
        guest,
        kubeletDisk,
        shareDir: share,
        accel,
        memoryMiB,
        consoleLog,
        hostForward: hostPort ? { hostPort, guestPort: APISERVER_PORT } : undefined,
        qemu: opts.qemu,
        onLine: proving
          ? (line) => {
              const f = kvmFailureIn(line);
              if (f) failKvm(`qemu said "${f}"`, KVM_ERROR_GRACE_MS);
            }
          : undefined,
        onMarker: (event, args) => {
          switch (event) {
            case 'guest-up':
              if (proving && !kvmFailure) {
                kvmProven = true;
                if (proofTimer) clearTimeout(proofTimer);
                log(`lab: KVM works: the guest reached its first console marker ${((Date.now() - bootStarted) / 1000).toFixed(1)} s after qemu started`);
              }
              clock.start(boot === 1 ? 'guest-setup' : `guest-setup ${boot}`, STEP_BUDGETS.guestSetup);
              log(`lab: guest up (${args[0] ?? '?'} s after power-on)`);
              break;
            case 'lxcfs-up':
              log('lab: guest: cgroup2, lxcfs and the bridge are ready');
              break;
            case 'net-up':
              log(`lab: guest: ${args[0] ?? 'its network device'} up, port 6443 passed on to the container (L2)`);
              break;
            case 'kubelets-ready':
              log(`lab: guest: kubelet disk mounted (${args.join(' ')})`);
              break;
            case 'run-start': {
              const index = runs.findIndex((r) => r.id === args[0]);
              const r = runs[index];
              current = args[0];
              clock.start(`run ${args[0]}`, (r?.deadline ?? deadline) + STEP_BUDGETS.runOverhead);
              log(`lab: [${index + 1}/${total}] profile ${args[1]}, ${args[2]} kubelet${r?.level === 'L2' ? ` (L2 server node${r.conformance.length ? `, ${r.conformance.length} conformance tests` : ''})` : ''}`);
              if (r?.level === 'L2') startDriver(r);
              break;
            }
            case 'run-end':
              clock.end();
              current = undefined;
              if (args[0]) l2Ended.get(args[0])?.();
              if (args[0]) {
                ended.add(args[0]);
                pending.push(collect(args[0]));
              }
              break;
            case 'all-done':
              allDone = true;
              clock.start('shutdown', STEP_BUDGETS.shutdown);
              break;
            case 'fatal':
              fatal = args.join(' ');
              labProblems.push(`guest: ${fatal}`);
              log(`lab: guest failed: ${fatal}`);
              break;
          }
        },
      });
      const onAbort = (): void => {
        aborted = true;
        log('lab: interrupted, stopping the guest');
        void vm?.kill();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort();
      let exit: { exitCode: number | null; signal: string | null };
      try {
        exit = await vm.done;
      } finally {
        signal?.removeEventListener('abort', onAbort);
        if (proofTimer) clearTimeout(proofTimer);
        if (killTimer) clearTimeout(killTimer);
      }
      clock.end();
      // an L2 driver still waiting for its run stops: this boot is over
      for (const endRun of l2Ended.values()) endRun();
      await Promise.all(pending);
      if (aborted) throw new LabAbortError();
      const exitText = exit.exitCode ?? exit.signal ?? '?';
      if (proving && !kvmProven) {
        const reason = kvmFailure ?? `qemu exited ${exitText} before the first console marker`;
        const seconds = Math.round((Date.now() - bootStarted) / 100) / 10;
        const consoleTail = await tailLines(consoleLog, 8);
        if (candidates.length === 1) {
          throw new LabSetupError(
            `KVM forced (--kvm on), but the guest did not boot under it: ${reason} (console: ${consoleLog}${consoleTail.length ? `; last line: ${consoleTail.at(-1)}` : ''}). Use --kvm auto to fall back to TCG.`,
          );
        }
        accelFallback = { from: 'kvm', to: 'tcg', reason, seconds, consoleLog, consoleTail };
        log(`lab: KVM cannot run the guest (${reason}, after ${seconds} s): falling back to TCG in this run; the attempt's console (${consoleLog}) ends:`);
        for (const l of consoleTail) log(`lab:   | ${l}`);
        accel = 'tcg';
        overrun = false;
        continue;
      }
      await cp(join(share, 'out', 'guest.log'), guestLog).catch(() => undefined);
      remaining = remaining.filter((r) => !ended.has(r.id));
      if (allDone || fatal || overrun || remaining.length === 0) {
        if (exit.exitCode !== 0 && !fatal && !overrun) labProblems.push(`qemu exited ${exitText}: see ${consoleLog}`);
        break;
      }
      const consoleTail = await tailLines(consoleLog, 20);
      const guestTail = await tailLines(guestLog, 10);
      const what = `the guest ended ${current ? `during run ${current}` : 'before its runs'} (qemu exit ${exitText}), ${remaining.length} runs left`;
      log(`lab: ${what}; the console's last lines (${consoleLog}):`);
      for (const l of consoleTail) log(`lab:   | ${l}`);
      log(`lab: the guest script's last lines (${guestLog}):`);
      for (const l of guestTail) log(`lab:   | ${l}`);
      if (boot >= MAX_GUEST_BOOTS) {
        labProblems.push(`${what}, on each of ${MAX_GUEST_BOOTS} boots; last console line: ${consoleTail.at(-1) ?? '(none)'}; see ${consoleLog}`);
        break;
      }
      guestRestarts.push({ boot, duringRun: current ?? null, qemuExit: String(exitText), consoleTail, guestLogTail: guestTail });
      log(`lab: booting the guest again for the ${remaining.length} runs left (recorded in the report)`);
      boot++;
    }

    // 4. the report
    const allRuns: LabRun[] = [];
    for (const r of runs) {
      if (!results.has(r.id)) await collect(r.id);
      const got = results.get(r.id);
      if (got) allRuns.push(got);
    }
    const { report, text } = await writeLabReport({ opts, outDir, level, startedAt, accel, accelNote, accelFallback, guest, kubeletInfo, profiles, allRuns, steps: clock.steps, labProblems, guestRestarts });
    for (const line of text.trimEnd().split('\n')) log(line);
    return report;
  } finally {
    clock.end();
    if (vm) await vm.kill();
    await rm(workDir, { recursive: true, force: true });
  }
}
