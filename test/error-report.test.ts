// What the CLI says when a tool it runs hits the full disk: a real git writing its objects into a
// 1 MB tmpfs (the way CI's source stage once failed, "unable to write loose object file"), and
// a real ENOSPC from Node. Both read as the disk being full, naming the command and the fix.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { execa } from 'execa';
import { cleanup, tempDir } from './helpers/fixture.js';
import { CommandError, run } from '../src/lib/exec.js';
import { describeError } from '../src/error-report.js';

let root: string;
let full: string;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('this test mounts a 1 MB tmpfs as the full disk: run it as root (CI does)');
  root = await tempDir('error-report');
  full = path.join(root, 'full');
  await mkdir(full);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'kubelet-lxc-full', full]);
});

afterAll(async () => {
  if (full) await execa('umount', ['-l', full], { reject: false });
  if (root) await cleanup(root);
});

describe('a full disk', () => {
  it('git failing to write an object reads as the disk being full, with the command and git\'s line', async () => {
    const tree = path.join(root, 'tree');
    await mkdir(tree);
    await writeFile(path.join(tree, 'blob'), randomBytes(3 * 1024 * 1024));
    await run('git', ['init', '-q', '--bare', path.join(full, 'r.git')]);
    const err = await run('git', ['--git-dir', path.join(full, 'r.git'), '--work-tree', tree, 'add', '-A']).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CommandError);
    const report = describeError(err);
    expect(report.error).toMatch(/^the disk is full \(git --git-dir \S+ --work-tree \S+ add -A: .*No space left on device\): free space .* and rerun/);
    expect(report.hint).toBe('free disk space and rerun');
  });

  it('a write Node makes (ENOSPC, which carries no path for write(2)) reads the same', async () => {
    const file = path.join(full, 'big');
    const err = await writeFile(file, randomBytes(2 * 1024 * 1024)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    expect(describeError(err).error).toBe(
      `the disk is full: free space (work/ and its cache hold the trees and builds; docker system df shows the engine's share) and rerun; finished artifacts are intact, unfinished ones were not kept`,
    );
  });

  it('a command that failed for another reason keeps its own message', async () => {
    const err = await run('git', ['--git-dir', path.join(root, 'missing.git'), 'log']).then(
      () => undefined,
      (e: unknown) => e,
    );
    const report = describeError(err);
    expect(report.error).toMatch(/^command failed \(exit 128\): git --git-dir \S+ log\n.*not a git repository/s);
    expect(report.hint).toBeNull();
  });
});
