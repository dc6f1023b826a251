// The one seam to execa: every process runs from an argument array, never a shell string.
import { readFileSync, readdirSync } from 'node:fs';
import { execa, ExecaError, type Options, type ResultPromise } from 'execa';

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: string | Buffer;
  /** Called with each line of stdout/stderr as it arrives (progress of long work). */
  onLine?: (line: string) => void;
  /** cancels the command; default: the process-wide signal (see cancelCommandsOn); null: never (cleanup commands) */
  signal?: AbortSignal | null;
  /** Do not throw on a non-zero exit; the caller reads exitCode. */
  reject?: boolean;
  timeoutMs?: number;
  /** Strings to mask in any error message (tokens). */
  secrets?: string[];
  /**
   * For commands that start children of their own (debootstrap runs dpkg and chroot): a cancel
   * or timeout ends the whole process tree, children first, and the command runs under
   * `setpriv --pdeathsig TERM`, so it ends with this process however that ends.
   */
  wholeTree?: boolean;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved as they came. */
  all: string;
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly command: string,
    readonly exitCode: number | undefined,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

/** Hides the user:password of every URL in text (a token in --source-url or GOPROXY never reaches a log). */
export function redactUrls(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/@\s,|]+@/gi, '$1***@');
}

/** The one masking of secrets: the credentials of every URL, and each secret as given, URL-encoded and in base64 (as it appears in a Basic auth header). */
export function maskSecrets(text: string, secrets: readonly string[] = []): string {
  let out = redactUrls(text);
  for (const s of secrets) {
    if (!s || s.length < 4) continue;
    for (const form of new Set([s, encodeURIComponent(s), Buffer.from(s).toString('base64')])) out = out.split(form).join('***');
  }
  return out;
}

let processSignal: AbortSignal | undefined;

/** Commands started without a signal of their own are cancelled by this one (the CLI's Ctrl-C): none runs on to its end. */
export function cancelCommandsOn(signal: AbortSignal): void {
  processSignal = signal;
}

export async function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const signal = opts.signal === null ? undefined : (opts.signal ?? processSignal);
  const cmd = maskSecrets([file, ...args].join(' '), opts.secrets);
  if (opts.wholeTree && signal?.aborted) throw new CommandError(`interrupted: ${cmd}`, cmd, undefined, '', '');
  const options: Options = {
    cwd: opts.cwd,
    env: opts.env,
    input: opts.input,
    all: true,
    reject: false,
    // wholeTree: this function ends the tree itself (execa would end only the direct child,
    // and its children, reparented, could no longer be found)
    cancelSignal: opts.wholeTree ? undefined : signal,
    timeout: opts.wholeTree ? undefined : opts.timeoutMs,
    // a tree of tools (debootstrap, dpkg in a chroot) reads end-of-file, never waits on a pipe
    ...(opts.wholeTree && opts.input === undefined ? { stdin: 'ignore' as const } : {}),
    stripFinalNewline: true,
    encoding: 'utf8',
  };
  const child = opts.wholeTree ? execa('setpriv', ['--pdeathsig', 'TERM', '--', file, ...args], options) : execa(file, args, options);
  const treeStop = opts.wholeTree ? stopTreeOn(child, signal, opts.timeoutMs) : undefined;
  if (opts.onLine) {
    let buf = '';
    child.all?.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) opts.onLine!(l);
    });
  }
  let result;
  try {
    result = await child;
  } catch (err) {
    if (err instanceof ExecaError) result = err;
    else throw err;
  } finally {
    treeStop?.done();
  }
  const out: RunResult = {
    exitCode: result.exitCode ?? -1,
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    all: String(result.all ?? ''),
  };
  if ((result as { isCanceled?: boolean }).isCanceled || treeStop?.why() === 'abort') {
    throw new CommandError(`interrupted: ${cmd}`, cmd, out.exitCode, out.stdout, out.stderr);
  }
  const enoent = (result as { code?: string }).code === 'ENOENT' || (result as { originalMessage?: string }).originalMessage?.includes('ENOENT');
  // under setpriv, a missing command is setpriv's exit 127
  const missing = enoent ? (opts.wholeTree ? 'setpriv' : file) : opts.wholeTree && out.exitCode === 127 && /setpriv: failed to execute/.test(out.stderr) ? file : undefined;
  if (missing) throw new CommandError(`command not found: ${missing} (install it, or put it on PATH)`, cmd, undefined, '', '');
  if ((result as { timedOut?: boolean }).timedOut || treeStop?.why() === 'timeout') {
    throw new CommandError(`timed out after ${opts.timeoutMs} ms: ${cmd}`, cmd, out.exitCode, out.stdout, out.stderr);
  }
  if (out.exitCode !== 0 && opts.reject !== false) {
    const tail = maskSecrets(out.all, opts.secrets).split('\n').slice(-25).join('\n');
    throw new CommandError(`command failed (exit ${out.exitCode}): ${cmd}\n${tail}`, cmd, out.exitCode, out.stdout, out.stderr);
  }
  return out;
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
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
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

/** Ends child's whole tree on signal or after timeoutMs (SIGTERM, then SIGKILL 5 s later); why() says which came. */
function stopTreeOn(child: ResultPromise, signal: AbortSignal | undefined, timeoutMs: number | undefined): { why: () => 'abort' | 'timeout' | undefined; done: () => void } {
  let why: 'abort' | 'timeout' | undefined;
  const stop = (reason: 'abort' | 'timeout'): void => {
    why ??= reason;
    killTree(child.pid, 'SIGTERM');
    setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) killTree(child.pid, 'SIGKILL');
    }, 5000).unref();
  };
  const onAbort = (): void => stop('abort');
  signal?.addEventListener('abort', onAbort, { once: true });
  const timer = timeoutMs ? setTimeout(() => stop('timeout'), timeoutMs) : undefined;
  return {
    why: () => why,
    done: () => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    },
  };
}

/** Whether a program can be run at all (on PATH). */
export async function hasCommand(file: string, versionArgs: string[] = ['--version']): Promise<boolean> {
  try {
    await run(file, versionArgs, { reject: false, timeoutMs: 20_000 });
    return true;
  } catch {
    return false;
  }
}

/** Options of a child the caller manages itself (see spawnChild). */
export interface ChildOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** keep output in memory for the result (default true); false for endless output read from child.stdout */
  buffer?: boolean;
  timeoutMs?: number;
  /** SIGKILL this long after a kill() that did not end it */
  forceKillAfterDelayMs?: number;
}

/** A running child process: its streams, pid, kill(); awaiting it gives the result and never rejects. */
export type ChildProcess = ResultPromise;

/**
 * A child the caller watches and ends itself (the lab's qemu, commands whose whole process
 * tree must go on abort): stdin is /dev/null, a non-zero exit is a result, not an error.
 */
export function spawnChild(file: string, args: readonly string[], opts: ChildOptions = {}): ChildProcess {
  return execa(file, args, {
    cwd: opts.cwd,
    env: opts.env,
    reject: false,
    stdin: 'ignore',
    buffer: opts.buffer ?? true,
    timeout: opts.timeoutMs,
    forceKillAfterDelay: opts.forceKillAfterDelayMs ?? true,
    // killed with this process, however it ends
    cleanup: true,
    stripFinalNewline: true,
  });
}

/** What a kubelet (or any binary) says to --version: never throws; ok is false when it cannot run. */
export async function binaryVersion(binary: string): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await run(binary, ['--version'], { reject: false, timeoutMs: 60_000 });
    return { ok: r.exitCode === 0, out: r.all.trim() };
  } catch (err) {
    return { ok: false, out: (err as Error).message };
  }
}
