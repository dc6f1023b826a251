// The one seam to the progress library (ora). Long steps show a spinner on a terminal and
// plain lines elsewhere (CI logs), each with the time elapsed since the command started, and
// a running step says every minute that it is still running, so a log is never silent for
// long; --json sends all of it to stderr.
import ora, { type Ora } from 'ora';

export interface Step {
  update(text: string): void;
  succeed(text?: string): void;
  fail(text?: string): void;
  skip(text: string): void;
}

export interface Logger {
  info(text: string): void;
  warn(text: string): void;
  step(text: string): Step;
  /** A line from a long-running child process (shown dimmed / throttled). */
  detail(text: string): void;
}

/** "[mm:ss]" (or "[h:mm:ss]") since start. */
export function elapsedLabel(ms: number): string {
  const s = Math.floor(ms / 1000);
  const mm = String(Math.floor(s / 60) % 60).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `[${Math.floor(s / 3600)}:${mm}:${ss}]` : `[${mm}:${ss}]`;
}

/** How often a running step says so in a non-interactive log. */
export const HEARTBEAT_MS = 60_000;

export function createLogger(opts: { json?: boolean; quiet?: boolean; heartbeatMs?: number } = {}): Logger {
  const stream = process.stderr;
  const interactive = Boolean(stream.isTTY) && !process.env.CI;
  const t0 = Date.now();
  const write = (s: string) => {
    if (opts.quiet) return;
    stream.write(interactive ? `${s}\n` : `${elapsedLabel(Date.now() - t0)} ${s}\n`);
  };
  let lastDetail = 0;
  return {
    info: (t) => write(t),
    warn: (t) => write(`warning: ${t}`),
    detail: (t) => {
      // Throttle child output in logs: enough to see it is alive, not a flood (steps have heartbeats too).
      const now = Date.now();
      if (interactive || now - lastDetail > 15_000) {
        lastDetail = now;
        if (!interactive) write(`    ${t.slice(0, 200)}`);
      }
    },
    step(text) {
      const started = Date.now();
      const took = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
      if (interactive && !opts.quiet) {
        const spinner: Ora = ora({ text, stream }).start();
        return {
          update: (t) => (spinner.text = `${text}: ${t}`),
          succeed: (t) => spinner.succeed(`${t ?? text} (${took()})`),
          fail: (t) => spinner.fail(`${t ?? text} (${took()})`),
          skip: (t) => spinner.info(t),
        };
      }
      write(`-> ${text}`);
      const beat = setInterval(() => write(`   … still ${text} (${took()})`), opts.heartbeatMs ?? HEARTBEAT_MS);
      beat.unref();
      return {
        update: (t) => write(`   ${t}`),
        succeed: (t) => {
          clearInterval(beat);
          write(`ok ${t ?? text} (${took()})`);
        },
        fail: (t) => {
          clearInterval(beat);
          write(`FAILED ${t ?? text} (${took()})`);
        },
        skip: (t) => {
          clearInterval(beat);
          write(`skip ${t}`);
        },
      };
    },
  };
}
