// One run per work directory and one install per root: a second run stops at once and says who
// holds the lock (pid, host, since when, which command); a lock left by a process that is gone
// is taken over, saying so. Real CLI runs, a real live process as the holder.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { FIXTURE_DIR, FIXTURE_VERSION, cleanup, makeUpstreamRepo, runCli, tempDir, writeFixtureManifest, type UpstreamRepo } from './helpers/fixture.js';
import { INSTALL_SCRIPT_PATH, buildKubeletPathBundle } from '../src/rke2/index.js';
import { HOST_ARCH, buildFakeKubelet } from './helpers/rke2.js';
import { exists } from '../src/lib/fsutil.js';
import type { Platform } from '../src/manifest.js';

let root: string;
let upstream: UpstreamRepo;
let manifest: string;
let holder: ResultPromise;

/** The lock file format both installers and the pipeline read: key=value lines. */
function lockText(pid: number, command: string): string {
  return `pid=${pid}\nhost=${os.hostname()}\nsince=2026-11-30T10:00:00.000Z\ncommand=${command}\n`;
}

async function deadPid(): Promise<number> {
  const p = execa('true');
  await p;
  return p.pid!;
}

beforeAll(async () => {
  root = await tempDir('lock');
  upstream = await makeUpstreamRepo(root);
  manifest = await writeFixtureManifest(path.join(root, 'releases'), { commit: upstream.commits[FIXTURE_VERSION]!, goVersion: upstream.goVersion, patches: path.join(FIXTURE_DIR, 'patches') });
  // a live process that stands for the first run
  holder = execa('sleep', ['600'], { reject: false });
});

afterAll(async () => {
  holder?.kill();
  await holder;
  if (root) await cleanup(root);
});

function source(workdir: string): string[] {
  return ['source', '--release', manifest, '--source', 'git', '--source-url', upstream.url, '--workdir', workdir, '--cache-dir', path.join(root, 'cache')];
}

describe('work directory lock', () => {
  it('a second run on a work directory in use says who holds it and does no work', async () => {
    const workdir = path.join(root, 'w-held');
    await mkdir(workdir, { recursive: true });
    await writeFile(path.join(workdir, '.kubelet-lxc.lock'), lockText(holder.pid!, 'kubelet-lxc build --release v1.99.0'));
    const res = await runCli(source(workdir));
    expect(res.exitCode, res.stderr).toBe(1);
    expect(res.stderr).toContain(
      `error: cli: work directory ${workdir} is in use by pid ${holder.pid} on ${os.hostname()} since 2026-11-30T10:00:00.000Z (kubelet-lxc build --release v1.99.0)`,
    );
    expect(res.stderr).toMatch(/wait for it to finish, or use another --workdir/);
    expect(await exists(path.join(workdir, 'state'))).toBe(false);
  });

  it('takes over a lock whose process is gone, says so, and releases its own at the end', async () => {
    const workdir = path.join(root, 'w-stale');
    await mkdir(workdir, { recursive: true });
    const dead = await deadPid();
    await writeFile(path.join(workdir, '.kubelet-lxc.lock'), lockText(dead, 'kubelet-lxc build'));
    const res = await runCli(source(workdir));
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.stderr).toContain(`removing a stale lock of pid ${dead} on ${os.hostname()} (the process is gone)`);
    expect(await exists(path.join(workdir, 'state'))).toBe(true);
    expect(await exists(path.join(workdir, '.kubelet-lxc.lock'))).toBe(false);
  });
});

describe('install lock', () => {
  it('a second install into one root says who holds it, for both installers', async () => {
    const tmp = await mkdtemp(path.join(root, 'install-'));
    const kubelet = await buildFakeKubelet({ out: path.join(tmp, 'kubelet'), arch: HOST_ARCH, version: 'v1.36.4+rke2r1' });
    const bundle = (await buildKubeletPathBundle({ kubelet, doctor: kubelet, platform: `linux/${HOST_ARCH}` as Platform, version: 'v1.36.4+rke2r1', rke2Version: 'v1.36.4+rke2r1', outDir: path.join(tmp, 'dist'), mtime: new Date(0) }))[0]!.path;
    const nodeRoot = path.join(tmp, 'root');
    const lock = path.join(nodeRoot, 'var/lib/kubelet-lxc/install.lock');
    await mkdir(path.dirname(lock), { recursive: true });
    await writeFile(lock, lockText(holder.pid!, 'sh install.sh kubelet-lxc-v1.36.4-rke2r1-linux-amd64.tar.gz'));
    const want = `${nodeRoot} is in use by pid ${holder.pid} on ${os.hostname()} since 2026-11-30T10:00:00.000Z (sh install.sh kubelet-lxc-v1.36.4-rke2r1-linux-amd64.tar.gz)`;
    const cli = await runCli(['install', '--root', nodeRoot, bundle]);
    expect(cli.exitCode, cli.stderr).toBe(1);
    expect(cli.stderr).toContain(want);
    const sh = await execa('dash', [INSTALL_SCRIPT_PATH, '--root', nodeRoot, bundle], { reject: false, all: true });
    expect(sh.exitCode, sh.all).toBe(1);
    expect(sh.all).toContain(want);
    expect(await exists(path.join(nodeRoot, 'usr'))).toBe(false);
    // the holder's lock is untouched
    expect(await readFile(lock, 'utf8')).toContain(`pid=${holder.pid}\n`);
    await rm(lock);
    const ok = await runCli(['install', '--root', nodeRoot, bundle]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(await exists(lock)).toBe(false);
  });
});
