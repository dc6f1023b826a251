// Turns what one run left in its output directory into a LabRun. Pure functions over
// file contents (the unit tests feed them recorded outputs).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DoctorPrediction, KubeletKind, LabRun } from './types.js';
import type { L2RunResult } from './l2/driver.js';

/** Logged by the eviction manager, which the kubelet starts right after ContainerManager.Start returned. */
export const CM_STARTED_MARKER = 'Eviction manager: starting control loop';
export const CM_FAILED_MARKER = 'Failed to start ContainerManager';
/** Lines that end a kubelet: the decisive error of a failed start. */
const FATAL = /Failed to start ContainerManager|failed to run Kubelet|"command failed"|^panic: |Failed to start cAdvisor|Kubelet failed to get node info|^F\d{4} /;
/** klog error / fatal lines, Go panics. */
const ERROR = /^[EF]\d{4} |^panic: |"command failed"/;

export interface RunFiles {
  resultEnv?: string;
  events?: string;
  guestEvents?: string;
  kubeletLog?: string;
  podsFinal?: string;
  healthz?: string;
  emptied?: string;
  /** kubelet-lxc-doctor --json, run in the container before the kubelet */
  doctor?: string;
}

export function parseEnv(text: string | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of (text ?? '').split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) m.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return m;
}

/** "<epoch.ms> <event...>" lines: first time of each event. */
export function parseEvents(text: string | undefined): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of (text ?? '').split('\n')) {
    const sp = line.indexOf(' ');
    if (sp <= 0) continue;
    const t = Number(line.slice(0, sp));
    const ev = line.slice(sp + 1).trim();
    if (Number.isFinite(t) && ev && !m.has(ev)) m.set(ev, t);
  }
  return m;
}

/** Whether the kubelet's /pods answer shows the lab's static pod Running with every container running. */
export function staticPodRunning(podsJson: string | undefined): boolean {
  if (!podsJson?.trim()) return false;
  let doc: unknown;
  try {
    doc = JSON.parse(podsJson);
  } catch {
    return false;
  }
  const items = (doc as { items?: unknown[] })?.items;
  if (!Array.isArray(items)) return false;
  return items.some((it) => {
    const pod = it as {
      metadata?: { name?: string };
      status?: { phase?: string; containerStatuses?: { state?: { running?: unknown } }[] };
    };
    const cs = pod.status?.containerStatuses ?? [];
    return (
      (pod.metadata?.name ?? '').startsWith('lab-static') &&
      pod.status?.phase === 'Running' &&
      cs.length > 0 &&
      cs.every((c) => c.state?.running !== undefined)
    );
  });
}

/** Error lines of a kubelet log, shortened for the report. */
export function kubeletErrorLines(log: string | undefined, max = 25): string[] {
  const out: string[] = [];
  for (const line of (log ?? '').split('\n')) {
    if (ERROR.test(line)) out.push(line.length > 600 ? line.slice(0, 600) + '…' : line);
    if (out.length >= max) break;
  }
  return out;
}

/**
 * Error lines every standalone kubelet logs while it starts (containerd 1.7 and 2), fault or
 * not: not chosen as the "first error" of a run (they stay in errorLines).
 */
export const STARTUP_NOISE: readonly RegExp[] = Object.freeze([
  /RuntimeConfig from runtime service failed.*Unimplemented/,
  /"Skipping pod synchronization"/,
  /"Failed to read data from checkpoint" err="checkpoint is not found"/,
  /"Image garbage collection failed once/,
  /eviction manager: failed to check if we have separate container filesystem/,
]);

/** The decisive error of a kubelet log: the fatal line when there is one, else the first error line that is not startup noise. */
export function decisiveError(log: string | undefined): string | null {
  const lines = (log ?? '').split('\n');
  const fatal = lines.find((l) => FATAL.test(l));
  const pick = fatal ?? lines.find((l) => ERROR.test(l) && !STARTUP_NOISE.some((n) => n.test(l)));
  if (!pick) return null;
  // for a panic, the message line is more telling than "goroutine N [running]"
  return pick.length > 600 ? pick.slice(0, 600) + '…' : pick;
}

/** Whether the log contains the text, also where klog's structured output escaped its quotes (err="parsing \\"\\"..."). */
export function logContains(log: string, text: string): boolean {
  return log.includes(text) || log.replace(/\\"/g, '"').includes(text);
}

export interface RunIdentity {
  id: string;
  profile: string;
  kubelet: KubeletKind;
  logDir: string;
  /** upstream error texts to look for in the kubelet log */
  expectedErrors?: string[];
}

/** The facts of cAdvisor's "Machine:" line a normal host's kubelet must report the same, patched or not. */
export const MACHINE_FACTS = ['CPUVendorID', 'NumCores', 'NumPhysicalCores', 'NumSockets', 'CpuFrequency', 'MemoryCapacity', 'SwapCapacity', 'MemoryByType', 'HugePages', 'Topology'] as const;

/** Reads the facts of the kubelet's first "Machine: {...}" line (Go's %+v of cAdvisor's MachineInfo). */
export function machineFacts(log: string | undefined): Record<string, string> | null {
  const line = (log ?? '').split('\n').find((l) => l.includes('] Machine: {'));
  if (!line) return null;
  const body = line.slice(line.indexOf('Machine: {') + 'Machine: '.length);
  const facts: Record<string, string> = {};
  for (const key of MACHINE_FACTS) {
    const at = body.search(new RegExp(`[{ ]${key}:`));
    if (at < 0) continue;
    let i = at + key.length + 2;
    let depth = 0;
    let v = '';
    // a value runs to the next top-level space; brackets and braces nest
    for (; i < body.length; i++) {
      const c = body[i]!;
      if ((c === ' ' || c === '}') && depth === 0) break;
      if (c === '[' || c === '{') depth++;
      if (c === ']' || c === '}') depth--;
      v += c;
    }
    facts[key] = v;
  }
  return facts;
}

/** A klog line's message without its header (severity, time, pid, source), for comparing two kubelets' errors. */
export function klogMessage(line: string | null): string | null {
  if (!line) return null;
  const m = /^[IWEF]\d{4} [\d:.]+\s+\d+ [^\]]+\] (.*)$/.exec(line);
  return (m?.[1] ?? line).trim();
}

export function interpretRun(who: RunIdentity, f: RunFiles): LabRun {
  const env = parseEnv(f.resultEnv);
  const ev = parseEvents(f.events);
  const gev = parseEvents(f.guestEvents);
  const log = f.kubeletLog ?? '';
  const completed = env.has('end_reason');
  const exitRaw = env.get('kubelet_exit');
  const exitCode = exitRaw !== undefined && exitRaw !== '' && Number.isFinite(Number(exitRaw)) ? Number(exitRaw) : null;
  const alive = env.get('kubelet_alive_at_end') === '1';
  const cmStarted = log.includes(CM_STARTED_MARKER);
  const cmFailed = log.includes(CM_FAILED_MARKER);
  const healthz = alive && (f.healthz ?? '').trim() === 'ok';
  const podRunning = alive && staticPodRunning(f.podsFinal);
  const profileApplied = env.get('profile_applied') === '1';
  const kStart = ev.get('kubelet-started');
  const since = (name: string): number | null => {
    const t = ev.get(name);
    return t !== undefined && kStart !== undefined ? Math.round((t - kStart) * 10) / 10 : null;
  };
  const cStart = gev.get('container-start');
  const cStop = gev.get('container-stopped');
  return {
    id: who.id,
    profile: who.profile,
    kubelet: who.kubelet,
    completed,
    profileApplied,
    endReason: env.get('end_reason') ?? 'missing',
    containerManagerStarted: cmStarted && !cmFailed,
    containerManagerFailed: cmFailed,
    healthz,
    healthzEverOk: ev.has('healthz-ok'),
    podRunning,
    kubeletExited: exitCode !== null,
    kubeletExitCode: exitCode,
    panicked: /^panic: /m.test(log),
    firstError: decisiveError(log),
    errorLines: kubeletErrorLines(log),
    expectedErrorsMissing: who.expectedErrors?.length ? who.expectedErrors.filter((t) => !logContains(log, t)) : null,
    passed: completed && profileApplied && cmStarted && !cmFailed && healthz && podRunning && alive,
    secondsToHealthz: since('healthz-ok'),
    secondsToRunning: since('pod-running'),
    seconds: cStart !== undefined && cStop !== undefined ? Math.round((cStop - cStart) * 10) / 10 : null,
    emptied: (f.emptied ?? '').split('\n').filter((l) => l.trim()),
    logDir: who.logDir,
    machine: machineFacts(log),
    doctor: doctorPrediction(f.doctor, log),
  };
}

/**
 * What kubelet-lxc-doctor, run in the container before the kubelet, predicted; with the stock
 * error texts it named that this run's kubelet log lacks (read by the verdict for stock runs).
 */
export function doctorPrediction(json: string | undefined, log: string): DoctorPrediction | null {
  if (json === undefined) return null;
  let d: unknown;
  try {
    d = JSON.parse(json);
  } catch {
    return { problem: `doctor.json is not JSON: ${json.slice(0, 200)}`, stockStarts: null, patchedStarts: null, stockErrors: [], firstCheck: null, checks: [], stockErrorsMissing: [] };
  }
  const v = (d as { verdict?: { stock?: { starts?: unknown; firstErrors?: unknown; firstCheck?: unknown }; patched?: { starts?: unknown } } }).verdict;
  const findings = (d as { findings?: { check?: unknown; stock?: { fails?: unknown } }[] }).findings ?? [];
  if (typeof v?.stock?.starts !== 'boolean' || typeof v.patched?.starts !== 'boolean') {
    return { problem: 'doctor.json has no verdict', stockStarts: null, patchedStarts: null, stockErrors: [], firstCheck: null, checks: [], stockErrorsMissing: [] };
  }
  const stockErrors = Array.isArray(v.stock.firstErrors) ? v.stock.firstErrors.map(String) : [];
  return {
    problem: null,
    stockStarts: v.stock.starts,
    patchedStarts: v.patched.starts,
    stockErrors,
    firstCheck: typeof v.stock.firstCheck === 'string' ? v.stock.firstCheck : null,
    checks: [...new Set(findings.filter((f) => f.stock?.fails === true).map((f) => String(f.check)))],
    stockErrorsMissing: stockErrors.filter((t) => !logContains(log, t)),
  };
}

async function readMaybe(p: string): Promise<string | undefined> {
  try {
    return await readFile(p, 'utf8');
  } catch {
    return undefined;
  }
}

/** Reads a run's output directory (as copied back from the guest). */
export async function readRunDir(who: RunIdentity, dir: string): Promise<LabRun> {
  const files: RunFiles = {
    resultEnv: await readMaybe(join(dir, 'result.env')),
    events: await readMaybe(join(dir, 'events')),
    guestEvents: await readMaybe(join(dir, 'guest-events')),
    kubeletLog: await readMaybe(join(dir, 'kubelet.log')),
    podsFinal: await readMaybe(join(dir, 'pods-final.json')),
    healthz: await readMaybe(join(dir, 'healthz.txt')),
    emptied: await readMaybe(join(dir, 'emptied.txt')),
    doctor: await readMaybe(join(dir, 'doctor.json')),
  };
  return interpretRun(who, files);
}

/**
 * An L2 run: judged by what the host saw through the apiserver (node Ready, every check, every
 * conformance test), not by L1's static pod; the kubelet log still says whether ContainerManager
 * started and which error stopped it. No driver result (it never started): not passed.
 */
export function withL2(run: LabRun, l2: L2RunResult | undefined): LabRun {
  if (!l2) return { ...run, passed: false };
  const exitedEarly = l2.kubeletExits.length > 0;
  return {
    ...run,
    l2,
    healthz: l2.ready,
    podRunning: l2.checks.some((c) => c.name === 'pod Running' && c.ok),
    kubeletExited: exitedEarly || run.kubeletExited,
    passed: run.completed && run.profileApplied && run.containerManagerStarted && l2.passed && !exitedEarly,
  };
}
