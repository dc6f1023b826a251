// The process seam: credentials in URLs never reach a message.
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cancelCommandsOn, CommandError, processTree, redactUrls, run } from '../src/lib/exec.js';

/** Whether pid runs (a zombie waiting for its reaper counts as ended). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function until(ok: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!ok() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  return ok();
}

/** Starts `sh` with a grandchild `sleep 300` below it; resolves with the grandchild's pid and the run's outcome. */
async function shWithGrandchild(dir: string, opts: Parameters<typeof run>[2]): Promise<{ grandchild: number; outcome: Promise<unknown> }> {
  const pidFile = path.join(dir, `sleep-${Math.random()}.pid`);
  const outcome = run('sh', ['-c', 'sleep 300 >/dev/null 2>&1 & echo $! > "$0"; wait', pidFile], opts).catch((e: unknown) => e);
  if (!(await until(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'), 10_000))) throw new Error('the test command did not start');
  return { grandchild: Number((await readFile(pidFile, 'utf8')).trim()), outcome };
}

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

  it('wholeTree: a cancel or a timeout ends the command and every process below it; without it the grandchild lives on', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'exec-tree-'));
    const orphans: number[] = [];
    try {
      // the negative control: execa alone ends only the direct child
      const plainCtrl = new AbortController();
      const plain = await shWithGrandchild(dir, { signal: plainCtrl.signal });
      orphans.push(plain.grandchild);
      plainCtrl.abort();
      expect(((await plain.outcome) as Error).message).toMatch(/^interrupted: sh -c/);
      expect(await until(() => !alive(plain.grandchild), 1000)).toBe(false);

      const ctrl = new AbortController();
      const tree = await shWithGrandchild(dir, { signal: ctrl.signal, wholeTree: true });
      orphans.push(tree.grandchild);
      ctrl.abort();
      expect(((await tree.outcome) as Error).message).toMatch(/^interrupted: sh -c/);
      expect(await until(() => !alive(tree.grandchild), 5000)).toBe(true);

      const timed = await shWithGrandchild(dir, { wholeTree: true, timeoutMs: 1500 });
      orphans.push(timed.grandchild);
      expect(((await timed.outcome) as Error).message).toMatch(/^timed out after 1500 ms: sh -c/);
      expect(await until(() => !alive(timed.grandchild), 5000)).toBe(true);
    } finally {
      for (const pid of orphans) for (const p of processTree(pid)) if (alive(p)) process.kill(p, 'SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('wholeTree: output, exit codes and a missing command read as without it', async () => {
    const ok = await run('sh', ['-c', 'echo out; echo err >&2'], { wholeTree: true });
    expect([ok.exitCode, ok.stdout, ok.stderr]).toEqual([0, 'out', 'err']);
    // a tool that reads its input gets end-of-file at once, instead of waiting on an open pipe
    const reader = await run('sh', ['-c', 'cat; echo read-to-eof'], { wholeTree: true, timeoutMs: 10_000 });
    expect(reader.stdout).toBe('read-to-eof');
    const failed = await run('sh', ['-c', 'exit 5'], { wholeTree: true }).catch((e: unknown) => e);
    expect((failed as Error).message).toMatch(/^command failed \(exit 5\): sh -c exit 5/);
    const missing = await run('no-such-command-kubelet-lxc', ['x'], { wholeTree: true }).catch((e: unknown) => e);
    expect((missing as Error).message).toBe('command not found: no-such-command-kubelet-lxc (install it, or put it on PATH)');
  });
});
