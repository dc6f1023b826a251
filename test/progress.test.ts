// The CLI's progress in a non-interactive log (CI): every line carries the elapsed time, and a
// step that runs long says so on its own, so a log is never silent while work goes on.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, elapsedLabel } from '../src/lib/progress.js';

describe('progress in a log', () => {
  afterEach(() => vi.restoreAllMocks());

  it('labels elapsed time as [mm:ss], and [h:mm:ss] past an hour', () => {
    expect(elapsedLabel(0)).toBe('[00:00]');
    expect(elapsedLabel(61_999)).toBe('[01:01]');
    expect(elapsedLabel(3_725_000)).toBe('[1:02:05]');
  });

  it('prefixes every line and repeats a running step until it ends', async () => {
    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    const prevCi = process.env.CI;
    process.env.CI = '1';
    try {
      const log = createLogger({ heartbeatMs: 40 });
      log.info('hello');
      const step = log.step('compiling patched kubelet for linux/amd64');
      await new Promise((r) => setTimeout(r, 150));
      step.succeed('built');
      const count = lines.length;
      await new Promise((r) => setTimeout(r, 120));
      expect(lines.length).toBe(count); // no heartbeat after the step ended
    } finally {
      process.env.CI = prevCi;
    }
    expect(lines[0]).toBe('[00:00] hello\n');
    expect(lines[1]).toBe('[00:00] -> compiling patched kubelet for linux/amd64\n');
    const beats = lines.filter((l) => l.includes('… still compiling patched kubelet for linux/amd64 ('));
    expect(beats.length).toBeGreaterThanOrEqual(2);
    expect(lines.at(-1)).toMatch(/^\[00:00\] ok built \(0\.\ds\)\n$/);
  });
});
