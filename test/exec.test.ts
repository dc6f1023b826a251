// The process seam: credentials in URLs never reach a message.
import { describe, expect, it } from 'vitest';
import { cancelCommandsOn, CommandError, redactUrls, run } from '../src/lib/exec.js';

describe('exec seam', () => {
  it('redacts the user:password of every URL, in lists too', () => {
    expect(redactUrls('fetch https://x-access-token:ghs_abc123@github.com/k/k.git failed')).toBe('fetch https://***@github.com/k/k.git failed');
    expect(redactUrls('GOPROXY=https://u:p@proxy.example/go,direct')).toBe('GOPROXY=https://***@proxy.example/go,direct');
    expect(redactUrls('git@github.com:k/k.git and https://github.com/k/k.git')).toBe('git@github.com:k/k.git and https://github.com/k/k.git');
  });

  it('a failing command with a token in its arguments or output is reported without it', async () => {
    const err = await run('sh', ['-c', 'echo "cannot reach $0" >&2; exit 3', 'https://bot:ghp_SECRET@example.invalid/r.git']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/exit 3/);
    expect(msg).toContain('https://***@example.invalid/r.git');
    expect(msg).not.toContain('ghp_SECRET');
  });

  it('masks a given secret in the command and its output, also URL-encoded and in base64', async () => {
    const secret = 'tok/en+with=chars';
    const err = await run('sh', ['-c', 'echo "$1 $2 $3" >&2; exit 4', 'x', secret, encodeURIComponent(secret), Buffer.from(secret).toString('base64')], { secrets: [secret] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/exit 4/);
    for (const form of [secret, encodeURIComponent(secret), Buffer.from(secret).toString('base64')]) expect(msg).not.toContain(form);
    expect(msg).toContain('*** *** ***');
  });

  it("Ctrl-C cancels every command started without a signal of its own; cleanup commands (signal: null) run to their end", async () => {
    const ctrl = new AbortController();
    cancelCommandsOn(ctrl.signal);
    try {
      const started = Date.now();
      const long = run('sleep', ['30']).catch((e: unknown) => e);
      const cleanup = run('sh', ['-c', 'sleep 0.5; echo cleaned'], { signal: null });
      setTimeout(() => ctrl.abort(), 200);
      const err = await long;
      expect(err).toBeInstanceOf(CommandError);
      expect((err as Error).message).toMatch(/^interrupted: sleep 30/);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect((await cleanup).stdout).toBe('cleaned');
    } finally {
      cancelCommandsOn(new AbortController().signal);
    }
  });
});
