// The host's side of one L2 run: waits for the container's control plane, then checks the node
// through the apiserver as a user would (kubectl from the host over the guest's forwarded port),
// runs the conformance tier, and tells the container it is done. What the container shows
// (CPUs, memory, pod cgroups) comes through the run's control folder (see lab/ct-l2.sh).
import path from 'node:path';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { run, spawnChild } from '../../lib/exec.js';
import { parseJunit, passedOnAttempt, type JunitCase } from '../../lib/junit.js';
import { NODE_NAME } from './pki.js';
import { NEEDS_KVM, type ConformanceTest } from './conformance.js';

/** Budgets of an L2 run's steps, in seconds (TCG on 2 cores). */
export const L2_BUDGETS = Object.freeze({
  /** container start, containerd, image import, kine, apiserver /readyz */
  apiserverReady: 600,
  /** apiserver ready -> node Ready */
  nodeReady: 300,
  /** a kubelet that exited this often without its node registering has shown its failure (RKE2 would restart it forever) */
  kubeletExitsConclusive: 3,
  podRunning: 240,
  serviceAccount: 180,
  cgroupGone: 120,
  /** per conformance test, on average (the run's e2e budget is this times the tests, plus setup) */
  perConformanceTest: 240,
  e2eSetup: 300,
});

export interface L2Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface L2ConformanceResult {
  name: string;
  result: 'passed' | 'failed' | 'skipped' | 'not run' | string;
  seconds: number;
  /** why it did not pass; for a pass on a later attempt, what the first attempt met */
  message?: string;
  /** how many times it ran, when more than once (under TCG a failed test gets a second attempt) */
  attempts?: number;
}

export interface L2RunResult {
  /** the apiserver answered /readyz in the container */
  apiserverReady: boolean;
  secondsToApiserver: number | null;
  /** the node object appeared */
  registered: boolean;
  secondsToRegistered: number | null;
  ready: boolean;
  secondsToReady: number | null;
  /** how often the supervisor started the kubelet, and its exit codes */
  kubeletStarts: number;
  kubeletExits: string[];
  checks: L2Check[];
  /** the node's .status at the end of the checks (capacity, allocatable, nodeInfo, ...) */
  nodeStatus: unknown;
  conformance: { tier: string; results: L2ConformanceResult[]; seconds: number; junit: string | null; exitCode: number | null } | null;
  /** every check passed, and every conformance test ran and passed */
  passed: boolean;
  /** why it stopped early, when it did */
  problem: string | null;
}

export interface DriveL2Options {
  id: string;
  /** host path of the run's control folder (the container's /lab-ctl) */
  ctlDir: string;
  kubeconfig: string;
  kubectl: string;
  e2eTest: string;
  /** ginkgo's runner, for parallel processes (absent: e2e.test alone, one spec at a time) */
  ginkgo?: string;
  /** parallel ginkgo processes */
  procs: number;
  /** where the conformance report (JUnit) and e2e log go */
  outDir: string;
  conformance: { tier: string; tests: ConformanceTest[] } | null;
  /** the guest's accelerator: under TCG the tests that need KVM are held back */
  accel: 'kvm' | 'tcg';
  /** resolves when the guest reports the run's end: the driver stops waiting */
  runEnded: Promise<void>;
  log: (line: string) => void;
  signal?: AbortSignal;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readState(ctlDir: string): Promise<string[]> {
  return (await readFile(path.join(ctlDir, 'state'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
}

function parseEnv(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .map((l) => /^([a-z_]+)=(.*)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => !!m)
      .map((m) => [m[1]!, m[2]!]),
  );
}

/** ginkgo matches --ginkgo.focus against the suite's name, a space, then the spec text. */
export const E2E_SUITE_NAME = 'Kubernetes e2e suite';

/** A focus expression that selects exactly these specs (each name quoted and anchored whole). */
export function focusRegex(names: string[]): string {
  const quote = (n: string) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return names.map((n) => `^${quote(E2E_SUITE_NAME)} ${quote(n)}$`).join('|');
}

/** Memory quantity of a node's capacity ("4028312Ki", "3Gi", bytes) in bytes. */
export function quantityBytes(q: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q);
  if (!m) return NaN;
  const mult: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * mult[m[2] ?? '']!;
}

/** Number of CPUs in a cpuset list ("0-1", "1,3", "0-3,8"). */
export function cpusetCount(list: string): number {
  let n = 0;
  for (const part of list.trim().split(',').filter(Boolean)) {
    const [a, b] = part.split('-').map(Number);
    n += b === undefined ? 1 : b! - a! + 1;
  }
  return n;
}

/** The pod that every L2 run starts through the API: limits, logs, exec, cgroup files. */
export const CHECK_POD = 'lab-l2-check';
export const CHECK_MARKER = 'kubelet-lxc-l2-check-up';
export const CHECK_LIMITS = { cpu: '250m', memory: '64Mi', cpuMax: '25000 100000', memoryMax: String(64 * 1024 * 1024) };

export function checkPodManifest(image: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: CHECK_POD, namespace: 'default' },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: 'check',
          image,
          imagePullPolicy: 'IfNotPresent',
          command: ['sh', '-c', `echo ${CHECK_MARKER}; exec sleep 3600`],
          resources: { requests: { cpu: CHECK_LIMITS.cpu, memory: CHECK_LIMITS.memory }, limits: { cpu: CHECK_LIMITS.cpu, memory: CHECK_LIMITS.memory } },
        },
      ],
    },
  });
}

/** Drives one L2 run to its end; never throws for what it finds (that goes into the result). */
export async function driveL2Run(o: DriveL2Options, busyboxImage: string): Promise<L2RunResult> {
  const started = Date.now();
  const since = () => Math.round((Date.now() - started) / 100) / 10;
  let ended = false;
  void o.runEnded.then(() => (ended = true));
  const res: L2RunResult = {
    apiserverReady: false,
    secondsToApiserver: null,
    registered: false,
    secondsToRegistered: null,
    ready: false,
    secondsToReady: null,
    kubeletStarts: 0,
    kubeletExits: [],
    checks: [],
    nodeStatus: null,
    conformance: null,
    passed: false,
    problem: null,
  };
  const kubectl = (args: string[], timeoutMs = 60_000) => run(o.kubectl, ['--kubeconfig', o.kubeconfig, '--request-timeout=30s', ...args], { reject: false, timeoutMs, signal: o.signal ?? undefined }).catch((e: Error) => ({ exitCode: -1, stdout: '', stderr: e.message, all: e.message }));
  const check = (name: string, ok: boolean, detail: string) => {
    res.checks.push({ name, ok, detail });
    o.log(`lab L2: ${o.id}: ${ok ? 'ok  ' : 'FAIL'} ${name}: ${detail}`);
  };
  const stopped = () => ended || !!o.signal?.aborted;
  try {
    // 1. the control plane in the container
    let lastWaitNote = Date.now();
    for (;;) {
      const st = await readState(o.ctlDir);
      const failed = st.find((l) => l.includes('setup-failed'));
      if (failed) {
        res.problem = `the container's setup failed: ${failed.split(' ').slice(1).join(' ')}`;
        return res;
      }
      if (st.some((l) => l.endsWith(' apiserver-ready'))) break;
      if (stopped()) {
        res.problem = 'the run ended before the apiserver was ready';
        return res;
      }
      if (since() > L2_BUDGETS.apiserverReady) {
        res.problem = `the apiserver was not ready within ${L2_BUDGETS.apiserverReady} s`;
        return res;
      }
      if (Date.now() - lastWaitNote > 60_000) {
        lastWaitNote = Date.now();
        o.log(`lab L2: ${o.id}: waiting for the apiserver (${Math.round(since())} s; container: ${st.at(-1)?.split(' ').slice(1).join(' ') ?? 'starting'})`);
      }
      await sleep(2000);
    }
    res.apiserverReady = true;
    res.secondsToApiserver = since();
    o.log(`lab L2: ${o.id}: apiserver ready on kine/SQLite (${res.secondsToApiserver} s); waiting for node ${NODE_NAME}`);

    // 2. the node registers and becomes Ready
    const readyBy = Date.now() + L2_BUDGETS.nodeReady * 1000;
    let node: { status?: { conditions?: { type: string; status: string; message?: string }[]; capacity?: Record<string, string>; allocatable?: Record<string, string> } } | undefined;
    let lastNote = 0;
    while (!stopped() && Date.now() < readyBy) {
      const r = await kubectl(['get', 'node', NODE_NAME, '-o', 'json']);
      if (r.exitCode === 0) {
        node = JSON.parse(r.stdout);
        if (!res.registered) {
          res.registered = true;
          res.secondsToRegistered = since();
          o.log(`lab L2: ${o.id}: node ${NODE_NAME} registered (${res.secondsToRegistered} s)`);
        }
        if (node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) {
          res.ready = true;
          res.secondsToReady = since();
          break;
        }
      }
      const exits = (await readFile(path.join(o.ctlDir, 'kubelet-exits'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
      if (!res.registered && exits.length >= L2_BUDGETS.kubeletExitsConclusive) {
        o.log(`lab L2: ${o.id}: the kubelet exited ${exits.length}x (restarted 5 s after each exit, as RKE2 does) and the node never registered: stop waiting`);
        break;
      }
      if (Date.now() - lastNote > 60_000) {
        lastNote = Date.now();
        o.log(`lab L2: ${o.id}: node ${res.registered ? 'registered, not Ready yet' : 'not registered yet'} (${since()} s; kubelet exits so far: ${exits.length})`);
      }
      await sleep(3000);
    }
    await readKubeletRecord(o.ctlDir, res);
    check('node registered', res.registered, res.registered ? `${NODE_NAME} after ${res.secondsToRegistered} s` : `no node object (kubelet started ${res.kubeletStarts}x, exit codes: ${res.kubeletExits.slice(0, 5).join(', ') || 'none'})`);
    check('node Ready', res.ready, res.ready ? `after ${res.secondsToReady} s` : `not Ready after ${since()} s: ${node?.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? 'no Ready condition'}`);
    if (!res.ready) return res;

    // 3. capacity as the container shows it
    const facts = parseEnv(await readFile(path.join(o.ctlDir, 'facts.env'), 'utf8').catch(() => ''));
    const cap = node!.status!.capacity ?? {};
    const cpus = cpusetCount(facts.cpuset_effective ?? '');
    check('capacity cpu', cap.cpu === facts.nproc && Number(cap.cpu) === cpus, `node ${cap.cpu}, container nproc ${facts.nproc}, cpuset.cpus.effective ${facts.cpuset_effective} (${cpus})`);
    const memBytes = Number(facts.memtotal_kb) * 1024;
    check('capacity memory', quantityBytes(cap.memory ?? '') === memBytes, `node ${cap.memory}, container MemTotal ${facts.memtotal_kb} kB (lxcfs)`);
    check('capacity pods', cap.pods === '110', `node ${cap.pods}, kubelet maxPods 110`);

    // 4. a pod through the API, with limits; logs and exec through the apiserver; its cgroup.
    // Pods need the namespace's service account, which the controller-manager makes first.
    const saBy = Date.now() + L2_BUDGETS.serviceAccount * 1000;
    let sa = await kubectl(['get', 'serviceaccount', 'default', '-n', 'default', '-o', 'name']);
    while (sa.exitCode !== 0 && Date.now() < saBy && !stopped()) {
      await sleep(3000);
      sa = await kubectl(['get', 'serviceaccount', 'default', '-n', 'default', '-o', 'name']);
    }
    check('default service account (controller-manager)', sa.exitCode === 0, sa.exitCode === 0 ? `after ${since()} s` : `not made within ${L2_BUDGETS.serviceAccount} s: ${sa.stderr.trim()}`);
    await kubectl(['delete', 'pod', CHECK_POD, '--ignore-not-found', '--wait=true', '--timeout=60s']);
    const manifest = path.join(o.ctlDir, 'check-pod.json');
    await writeFile(manifest, checkPodManifest(busyboxImage));
    const created = await kubectl(['create', '-f', manifest]);
    check('pod created through the API', created.exitCode === 0, created.exitCode === 0 ? created.stdout.trim() : created.stderr.trim());
    const waited = await kubectl(['wait', '--for=condition=Ready', `pod/${CHECK_POD}`, `--timeout=${L2_BUDGETS.podRunning}s`], (L2_BUDGETS.podRunning + 30) * 1000);
    const podJson = await kubectl(['get', 'pod', CHECK_POD, '-o', 'json']);
    const pod = podJson.exitCode === 0 ? (JSON.parse(podJson.stdout) as { metadata: { uid: string }; status: { phase: string; qosClass?: string } }) : undefined;
    check('pod Running', waited.exitCode === 0 && pod?.status.phase === 'Running', `phase ${pod?.status.phase ?? '?'}${waited.exitCode === 0 ? '' : `: ${waited.stderr.trim() || waited.stdout.trim()}`}`);
    if (pod?.status.phase === 'Running') {
      const logs = await kubectl(['logs', CHECK_POD]);
      check('kubectl logs (apiserver -> kubelet)', logs.exitCode === 0 && logs.stdout.includes(CHECK_MARKER), logs.exitCode === 0 ? `"${logs.stdout.trim().slice(0, 80)}"` : logs.stderr.trim());
      const ex = await kubectl(['exec', CHECK_POD, '--', 'cat', '/sys/fs/cgroup/cpu.max', '/sys/fs/cgroup/memory.max']);
      const lines = ex.stdout.trim().split('\n').map((l) => l.trim());
      check('kubectl exec (apiserver -> kubelet)', ex.exitCode === 0, ex.exitCode === 0 ? `read ${lines.join(' | ')}` : ex.stderr.trim());
      check('limits in the container\'s cgroup files', lines[0] === CHECK_LIMITS.cpuMax && lines[1] === CHECK_LIMITS.memoryMax, `cpu.max "${lines[0] ?? ''}" (want "${CHECK_LIMITS.cpuMax}"), memory.max "${lines[1] ?? ''}" (want ${CHECK_LIMITS.memoryMax})`);
      const uid = pod.metadata.uid;
      const podCg = (await podCgroups(o.ctlDir, uid)).find((c) => c.path.endsWith(`pod${uid}`));
      check(
        'limits in the pod cgroup (seen from the LXC container)',
        !!podCg && podCg.cpuMax === CHECK_LIMITS.cpuMax && podCg.memoryMax === CHECK_LIMITS.memoryMax,
        podCg ? `${podCg.path}: cpu.max "${podCg.cpuMax}", memory.max ${podCg.memoryMax}` : `no cgroup pod${uid} under kubepods`,
      );
      const del = await kubectl(['delete', 'pod', CHECK_POD, '--wait=true', '--timeout=120s'], 150_000);
      const goneBy = Date.now() + L2_BUDGETS.cgroupGone * 1000;
      let left = await podCgroups(o.ctlDir, uid);
      while (left.length && Date.now() < goneBy && !stopped()) {
        await sleep(3000);
        left = await podCgroups(o.ctlDir, uid);
      }
      check('pod deleted and its cgroup gone', del.exitCode === 0 && left.length === 0, del.exitCode !== 0 ? del.stderr.trim() : left.length ? `still there: ${left.map((c) => c.path).join(', ')}` : `pod${uid} gone from kubepods`);
    }
    const nodeNow = await kubectl(['get', 'node', NODE_NAME, '-o', 'json']);
    if (nodeNow.exitCode === 0) res.nodeStatus = (JSON.parse(nodeNow.stdout) as { status: unknown }).status;

    // 5. the conformance tier
    if (o.conformance && o.conformance.tests.length) res.conformance = await runConformance(o, since);
    return res;
  } finally {
    await readKubeletRecord(o.ctlDir, res);
    res.passed = l2RunPassed(res);
    // the container winds down when it sees this; a run whose guest is gone has no container
    // (and a new boot may be doing the run again in the same folder)
    if (!ended) await writeFile(path.join(o.ctlDir, 'host-done'), `${new Date().toISOString()} ${res.passed ? 'passed' : 'failed'}\n`).catch(() => undefined);
  }
}

async function readKubeletRecord(ctlDir: string, res: L2RunResult): Promise<void> {
  res.kubeletStarts = (await readFile(path.join(ctlDir, 'kubelet-starts'), 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
  res.kubeletExits = (await readFile(path.join(ctlDir, 'kubelet-exits'), 'utf8').catch(() => '')).split('\n').filter(Boolean).map((l) => l.split(' ')[1] ?? '?');
}

async function podCgroups(ctlDir: string, uid: string): Promise<{ path: string; cpuMax: string; memoryMax: string }[]> {
  const text = await readFile(path.join(ctlDir, 'cgroups.txt'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.includes(`pod${uid}`) || l.includes(`pod${uid.replace(/-/g, '_')}`))
    .map((l) => {
      const [p, cpuMax, memoryMax] = l.split('\t');
      return { path: p ?? '', cpuMax: cpuMax ?? '', memoryMax: memoryMax ?? '' };
    })
    .filter((c) => c.path.endsWith(`pod${uid}`) || c.path.includes(`pod${uid}/`));
}

/** Node Ready, every check ok, and every conformance test passed (one held back for KVM under TCG is not a failure, and never a pass). */
export function l2RunPassed(res: Pick<L2RunResult, 'ready' | 'checks' | 'conformance'>): boolean {
  const tests = res.conformance?.results ?? [];
  return res.ready && res.checks.every((c) => c.ok) && (!res.conformance || (tests.some((r) => r.result === 'passed') && tests.every((r) => r.result === 'passed' || r.result === NEEDS_KVM)));
}

/**
 * Under TCG a test that fails gets one more attempt (ginkgo --flake-attempts=2). The whole
 * control plane, containerd and the kubelet share two emulated CPUs there, and the e2e
 * processes share the host's CPUs with qemu: a CI run saw the apiserver's TLS handshake to the
 * kubelet time out (10 s) while every component logged handler timeouts, and the same test
 * passed in the other runs. A pass on the second attempt is reported as such (the table, the
 * JUnit and the report name the attempt and the first failure); failing both is a failure.
 * Under KVM every test gets one attempt.
 */
export function flakeAttemptsArgs(accel: 'kvm' | 'tcg'): string[] {
  return accel === 'tcg' ? ['--flake-attempts=2'] : [];
}

/** e2e.test against the node, focused on the tier's exact names; JUnit in, a result per test out. */
/** The result of a test held back because this guest runs under TCG: never "passed". */
function heldBack(t: ConformanceTest): L2ConformanceResult {
  return { name: t.name, result: NEEDS_KVM, seconds: 0, message: t.needsKvm! };
}

async function runConformance(o: DriveL2Options, since: () => number): Promise<NonNullable<L2RunResult['conformance']>> {
  const c = o.conformance!;
  const held = o.accel === 'tcg' ? c.tests.filter((t) => t.needsKvm) : [];
  const tests = c.tests.filter((t) => !held.includes(t));
  const reportDir = path.join(o.outDir, 'conformance');
  await mkdir(reportDir, { recursive: true });
  const budget = L2_BUDGETS.e2eSetup + L2_BUDGETS.perConformanceTest * tests.length;
  const t0 = Date.now();
  o.log(`lab L2: ${o.id}: conformance tier ${c.tier}: ${tests.length} upstream tests (e2e.test, budget ${budget} s)`);
  for (const t of held) o.log(`lab L2: ${o.id}: held back, ${NEEDS_KVM} (this guest runs under TCG): ${t.name}: ${t.needsKvm}`);
  // an empty focus would select the whole suite
  if (!tests.length) return { tier: c.tier, results: held.map(heldBack), seconds: 0, junit: null, exitCode: null };
  // the suite's own flags; ginkgo's go to the ginkgo runner, which starts e2e.test once per
  // parallel process (specs that need the cluster alone are [Serial], and none is in the list)
  const suiteArgs = [
    `--kubeconfig=${o.kubeconfig}`,
    '--provider=skeleton',
    `--kubectl-path=${o.kubectl}`,
    `--report-dir=${reportDir}`,
    '--disable-log-dump',
  ];
  const ginkgoArgs = [`--focus=${focusRegex(tests.map((t) => t.name))}`, '--no-color', '-v', `--timeout=${budget}s`, ...flakeAttemptsArgs(o.accel)];
  const parallel = o.ginkgo && o.procs > 1;
  const [cmd, args] = parallel
    ? [o.ginkgo!, [`--procs=${o.procs}`, ...ginkgoArgs, o.e2eTest, '--', ...suiteArgs]]
    : [o.e2eTest, [...suiteArgs, ...ginkgoArgs.map((a) => a.replace(/^-{1,2}/, '--ginkgo.'))]];
  o.log(`lab L2: ${o.id}: ${parallel ? `ginkgo, ${o.procs} parallel processes` : 'e2e.test, one process'}`);
  const logFile = path.join(o.outDir, 'e2e.log');
  const lines: string[] = [];
  const child = spawnChild(cmd, args, { buffer: false, timeoutMs: (budget + 120) * 1000, forceKillAfterDelayMs: 10_000 });
  const onAbort = () => child.kill('SIGTERM');
  o.signal?.addEventListener('abort', onAbort, { once: true });
  // the guest went away under the run: nothing left to test
  void o.runEnded.then(onAbort);
  let buf = '';
  let done = 0;
  const progress = new SpecProgress((e) => {
    done++;
    o.log(`lab L2: ${o.id}: e2e ${e.result} (${Math.round(e.seconds)} s) ${e.name ?? '(spec name not printed)'}`);
  });
  const onData = (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    for (const l of parts) {
      lines.push(l);
      progress.line(l);
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  // a spec can take minutes under TCG: say the run is alive, and how far it is
  const beat = setInterval(() => o.log(`lab L2: ${o.id}: e2e running, ${done} of ${tests.length} done (${Math.round((Date.now() - t0) / 1000)} s)`), 60_000);
  beat.unref();
  const r = await child;
  clearInterval(beat);
  o.signal?.removeEventListener('abort', onAbort);
  await writeFile(logFile, lines.join('\n') + '\n');
  const junitFile = (await readdir(reportDir).catch(() => [] as string[])).find((f) => /^junit.*\.xml$/.test(f));
  let cases: JunitCase[] = [];
  if (junitFile) cases = parseJunit(await readFile(path.join(reportDir, junitFile), 'utf8'));
  const results: L2ConformanceResult[] = c.tests.map((t) => {
    if (held.includes(t)) return heldBack(t);
    const hit = cases.find((k) => k.name === t.name || k.name.startsWith(`${t.name} `));
    return hit ? { name: t.name, result: hit.status, seconds: hit.seconds, ...(hit.message ? { message: hit.message } : {}), ...(hit.attempts ? { attempts: hit.attempts } : {}) } : { name: t.name, result: 'not run', seconds: 0 };
  });
  const passed = results.filter((x) => x.result === 'passed').length;
  o.log(`lab L2: ${o.id}: conformance tier ${c.tier}: ${passed}/${results.length - held.length} passed${held.length ? ` (${held.length} held back: ${NEEDS_KVM})` : ''} in ${Math.round((Date.now() - t0) / 1000)} s (e2e.test exit ${r.exitCode ?? r.signal}; ${since()} s into the run)`);
  if (passed < results.length - held.length) {
    o.log(`lab L2: ${o.id}: e2e.test's last lines (${logFile}):`);
    for (const l of lines.filter((x) => x.trim()).slice(-25)) o.log(`lab L2:   | ${l.slice(0, 300)}`);
  }
  return { tier: c.tier, results, seconds: Math.round((Date.now() - t0) / 100) / 10, junit: junitFile ? path.join(reportDir, junitFile) : null, exitCode: r.exitCode ?? null };
}

export interface SpecDone {
  result: string;
  seconds: number;
  name?: string;
}

/**
 * Each spec's end, from verbose ginkgo output as it streams. One process prints a separator, the
 * spec's text, its steps, then "•" (passed) or "[FAILED]"; parallel processes print the
 * separator, the result line, then the spec's text.
 */
export class SpecProgress {
  private afterSeparator = false;
  private spec = '';
  private pending: { result: string; seconds: number } | undefined;
  constructor(private readonly onDone: (e: SpecDone) => void) {}

  line(l: string): void {
    const t = l.trim();
    if (t.startsWith('------------------------------')) {
      this.flush();
      this.afterSeparator = true;
      this.spec = '';
      return;
    }
    // "↺ [FLAKEY TEST - TOOK 2 ATTEMPTS TO PASS]": a pass on a later attempt (--flake-attempts)
    const done = /^(?:[•↺]\s*)?(•|\[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED)\]|\[FLAKEY TEST - TOOK (\d+) ATTEMPTS TO PASS\])\s*\[([\d.]+) seconds\]/.exec(t);
    if (done) {
      const result = done[1] === '•' ? 'passed' : done[3] ? passedOnAttempt(done[3]) : done[2]!.toLowerCase();
      const seconds = Number(done[4]);
      if (this.spec) this.onDone({ result, seconds, name: this.spec });
      else this.pending = { result, seconds };
      this.afterSeparator = false;
      return;
    }
    if (t.startsWith('[sig-') && (this.afterSeparator || this.pending)) {
      this.spec = t;
      this.afterSeparator = false;
      if (this.pending) {
        this.onDone({ ...this.pending, name: t });
        this.pending = undefined;
      }
    }
  }

  /** a result whose name never came */
  flush(): void {
    if (this.pending) this.onDone(this.pending);
    this.pending = undefined;
  }
}
