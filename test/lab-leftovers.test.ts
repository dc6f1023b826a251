// Leftover work directories in the shared lab cache: a pid says whether its owner is gone
// only within the PID namespace that claimed the directory.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { claimDir, ownerGone } from '../src/lab/guest.js';

describe('lab leftovers', () => {
  const root = mkdtempSync(join(tmpdir(), 'lab-leftovers-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  // a pid that existed and is gone: a finished child's
  const deadPid = spawnSync('true').pid!;

  it('in its own PID namespace, the pid decides', async () => {
    const mine = join(root, 'mine');
    mkdirSync(mine);
    await claimDir(mine);
    expect(await ownerGone(mine, process.pid)).toBe(false);
    expect(await ownerGone(mine, deadPid)).toBe(true);
  });

  it("another namespace's directory is left alone until it is a day old", async () => {
    const ns = await readlink('/proc/self/ns/pid');
    expect(ns).toMatch(/^pid:\[\d+\]$/);
    const foreign = join(root, 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, '.owner'), 'pid:[1]\n');
    expect(await ownerGone(foreign, deadPid)).toBe(false);
    const old = new Date(Date.now() - 25 * 3600_000);
    utimesSync(foreign, old, old);
    expect(await ownerGone(foreign, deadPid)).toBe(true);
    // a directory without an owner record (an older kubelet-lxc) counts as foreign
    const unclaimed = join(root, 'unclaimed');
    mkdirSync(unclaimed);
    expect(await ownerGone(unclaimed, deadPid)).toBe(false);
  });
});
