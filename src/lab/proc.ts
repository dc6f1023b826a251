// Running host commands for the lab: argument arrays only (never a shell string).
// A timeout or an abort ends the command's whole process tree (debootstrap runs dpkg,
// chroot, wget below it). Commands stay in the lab's process group, so a Ctrl-C in the
// terminal reaches them too, and run under `setpriv --pdeathsig TERM` so that a lab
// process killed outright does not leave them running.
import { readFileSync, readdirSync } from 'node:fs';
import { spawnChild } from '../lib/exec.js';

export interface RunOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  cwd?: string;
  env?: Record<string, string>;
  /** called with every output line (stdout and stderr) */
  onLine?: (line: string) => void;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export class LabAbortError extends Error {
  constructor(message = 'lab aborted') {
    super(message);
    this.name = 'LabAbortError';
  }
}

export class LabStepTimeout extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabStepTimeout';
  }
}

/** pid and its descendants (from /proc), children before parents. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) walk(c);
    out.push(p);
  };
  walk(pid);
  return out;
}

function killTree(pid: number | undefined, sig: NodeJS.Signals): void {
  if (!pid) return;
  for (const p of processTree(pid)) {
    try {
      process.kill(p, sig);
    } catch {
      // already gone
    }
  }
}

/** Runs a command; rejects on non-zero exit, timeout or abort (after the process group is gone). */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  if (opts.signal?.aborted) throw new LabAbortError();
  const child = spawnChild('setpriv', ['--pdeathsig', 'TERM', '--', cmd, ...args], { cwd: opts.cwd, env: opts.env });
  let why: 'abort' | 'timeout' | undefined;
  const stop = (reason: 'abort' | 'timeout'): void => {
    why ??= reason;
    killTree(child.pid, 'SIGTERM');
    setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) killTree(child.pid, 'SIGKILL');
    }, 5000).unref();
  };
  const onAbort = (): void => stop('abort');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const timer = opts.timeoutMs ? setTimeout(() => stop('timeout'), opts.timeoutMs) : undefined;
  if (opts.onLine) {
    const emit = (chunk: Buffer | string): void => {
      for (const l of chunk.toString().split('\n')) if (l.trim()) opts.onLine?.(l);
    };
    child.stdout?.on('data', emit);
    child.stderr?.on('data', emit);
  }
  try {
    const r = await child;
    if (why === 'abort') throw new LabAbortError();
    if (why === 'timeout') throw new LabStepTimeout(`${cmd} did not finish within ${Math.round((opts.timeoutMs ?? 0) / 1000)} s`);
    const res: RunResult = {
      exitCode: r.exitCode ?? -1,
      stdout: String(r.stdout ?? ''),
      stderr: String(r.stderr ?? ''),
    };
    if (res.exitCode !== 0) {
      const tail = (res.stderr || res.stdout).split('\n').slice(-15).join('\n');
      throw new Error(`${cmd} ${args.join(' ')} exited ${res.exitCode}${r.signal ? ` (${r.signal})` : ''}:\n${tail}`);
    }
    return res;
  } finally {
    if (timer) clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** Whether a command is on the PATH. */
export async function have(cmd: string): Promise<boolean> {
  const r = await spawnChild('sh', ['-c', 'command -v "$1"', 'sh', cmd]);
  return r.exitCode === 0;
}
