// The one seam to the progress library (ora). Long steps show a spinner on a terminal and
// plain timestamped lines elsewhere (CI logs); --json sends all of it to stderr.
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

export function createLogger(opts: { json?: boolean; quiet?: boolean } = {}): Logger {
  const stream = process.stderr;
  const interactive = Boolean(stream.isTTY) && !process.env.CI;
  const write = (s: string) => {
    if (!opts.quiet) stream.write(`${s}\n`);
  };
  let lastDetail = 0;
  return {
    info: (t) => write(t),
    warn: (t) => write(`warning: ${t}`),
    detail: (t) => {
      // Throttle child output in logs: enough to see it is alive, not a flood.
      const now = Date.now();
      if (interactive || now - lastDetail > 2000) {
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
      return {
        update: (t) => write(`   ${t}`),
        succeed: (t) => write(`ok ${t ?? text} (${took()})`),
        fail: (t) => write(`FAILED ${t ?? text} (${took()})`),
        skip: (t) => write(`skip ${t}`),
      };
    },
  };
}
