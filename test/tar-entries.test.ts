// Synthetic tar entries (image layers): modes with setuid and sticky bits, owners, links and long
// names come out as GNU tar reads them, and the same entries give the same bytes.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTarEntries, type SyntheticEntry } from '../src/lib/tarball.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tar-entries-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const long = `deep/${'d'.repeat(60)}/${'e'.repeat(60)}/file-with-a-long-name.txt`;
const entries: SyntheticEntry[] = [
  { type: 'dir', name: 'bin', mode: 0o755 },
  { type: 'file', name: 'bin/prog', mode: 0o4755, uid: 1000, gid: 50000, data: Buffer.from('#!/bin/sh\necho hi\n') },
  { type: 'symlink', name: 'bin/sh', target: 'prog' },
  { type: 'dir', name: 'tmp', mode: 0o1777 },
  { type: 'file', name: long, mode: 0o644, data: Buffer.alloc(1000, 'x') },
];

describe('writeTarEntries', () => {
  it('writes what GNU tar lists: setuid, sticky, owners, links, long names', async () => {
    const f = path.join(dir, 'layer.tar');
    await writeTarEntries(f, entries, { mtime: new Date(0) });
    const list = (await execa('tar', ['--numeric-owner', '-tvf', f])).stdout.split('\n');
    expect(list[0]).toMatch(/^drwxr-xr-x 0\/0\s+0 1970-01-01 00:00 bin\/$/);
    expect(list[1]).toMatch(/^-rwsr-xr-x 1000\/50000\s+18 1970-01-01 00:00 bin\/prog$/);
    expect(list[2]).toMatch(/^lrwxrwxrwx 0\/0\s+0 1970-01-01 00:00 bin\/sh -> prog$/);
    expect(list[3]).toMatch(/^drwxrwxrwt 0\/0\s+0 1970-01-01 00:00 tmp\/$/);
    expect(list[4]).toMatch(new RegExp(`^-rw-r--r-- 0/0\\s+1000 1970-01-01 00:00 ${long}$`));
    const x = path.join(dir, 'x');
    await execa('mkdir', ['-p', x]);
    await execa('tar', ['-xf', f, '-C', x]);
    expect(await readFile(path.join(x, long), 'utf8')).toBe('x'.repeat(1000));
  });

  it('is deterministic, refuses unsafe or duplicate names, and leaves nothing behind on failure', async () => {
    const a = path.join(dir, 'a.tar');
    const b = path.join(dir, 'b.tar');
    await writeTarEntries(a, entries, { mtime: new Date(0) });
    await writeTarEntries(b, entries, { mtime: new Date(0) });
    expect((await readFile(a)).equals(await readFile(b))).toBe(true);
    const bad = path.join(dir, 'bad.tar');
    await expect(writeTarEntries(bad, [{ type: 'dir', name: '../up', mode: 0o755 }], { mtime: new Date(0) })).rejects.toThrow('unsafe archive entry name: ../up/');
    await expect(writeTarEntries(bad, [entries[0]!, entries[0]!], { mtime: new Date(0) })).rejects.toThrow('duplicate archive entry bin/');
    expect((await execa('ls', ['-A', dir])).stdout.split('\n').filter((n) => n.startsWith('bad') || n.includes('.tmp'))).toEqual([]);
  });
});
