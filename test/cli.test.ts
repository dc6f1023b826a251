// CLI behaviours an operator or maintainer meets first: install without a bundle, rollback
// alone, and a lab dry run that plans without building or booting anything.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from './helpers/fixture.js';

describe('cli', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('install --rollback needs no bundle, and says when there is nothing to undo', async () => {
    const res = await runCli(['install', '--rollback', '--root', dir]);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toMatch(/^error: nothing to roll back: .*no install recorded/m);
  });

  it('install without a bundle names what to give', async () => {
    const res = await runCli(['install', '--root', dir]);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toMatch(/^error: give the bundle to install \(kubelet-lxc-<version>-linux-<arch>\.tar\.gz\), or --rollback/m);
  });

  it('lab --dry-run plans the stages and the lab, and builds nothing', async () => {
    const work = path.join(dir, 'work');
    const res = await runCli(['lab', '--dry-run', '--source', 'goproxy', '--workdir', work, '--profile', 'A', 'H']);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/would run source: /);
    expect(res.stderr).toMatch(/would run the lab L1: profiles A, H, stock and patched linux\/amd64 kubelets/);
    expect(() => readdirSync(path.join(work, 'out'))).toThrow();
  });
});
