// The process seam: credentials in URLs never reach a message.
import { describe, expect, it } from 'vitest';
import { CommandError, redactUrls, run } from '../src/lib/exec.js';

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
});
