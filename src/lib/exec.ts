// The one seam to execa: every process runs from an argument array, never a shell string.
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
  const options: Options = {
    cwd: opts.cwd,
    env: opts.env,
    input: opts.input,
    all: true,
    reject: false,
    cancelSignal: opts.signal === null ? undefined : (opts.signal ?? processSignal),
    timeout: opts.timeoutMs,
    stripFinalNewline: true,
    encoding: 'utf8',
  };
  const child = execa(file, args, options);
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
  }
  const out: RunResult = {
    exitCode: result.exitCode ?? -1,
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    all: String(result.all ?? ''),
  };
  const cmd = maskSecrets([file, ...args].join(' '), opts.secrets);
  if ((result as { isCanceled?: boolean }).isCanceled) {
    throw new CommandError(`interrupted: ${cmd}`, cmd, out.exitCode, out.stdout, out.stderr);
  }
  if ((result as { code?: string }).code === 'ENOENT' || (result as { originalMessage?: string }).originalMessage?.includes('ENOENT')) {
    throw new CommandError(`command not found: ${file} (install it, or put it on PATH)`, cmd, undefined, '', '');
  }
  if ((result as { timedOut?: boolean }).timedOut) {
    throw new CommandError(`timed out after ${opts.timeoutMs} ms: ${cmd}`, cmd, out.exitCode, out.stdout, out.stderr);
  }
  if (out.exitCode !== 0 && opts.reject !== false) {
    const tail = maskSecrets(out.all, opts.secrets).split('\n').slice(-25).join('\n');
    throw new CommandError(`command failed (exit ${out.exitCode}): ${cmd}\n${tail}`, cmd, out.exitCode, out.stdout, out.stderr);
  }
  return out;
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
