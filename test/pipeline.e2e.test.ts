// The spine end to end on the upstream-shaped fixture, through the real CLI, with real git,
// Go and a real container engine: source -> patch -> build -> package -> smoke.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import {
  CLI_ENTRY, FIXTURE_DIR, FIXTURE_MOVED_VERSION, FIXTURE_VERSION, cleanup, makeUpstreamRepo, runCli, tempDir, writeFixtureManifest, type UpstreamRepo,
} from './helpers/fixture.js';
import { fileHash, exists } from '../src/lib/fsutil.js';

let root: string;
let upstream: UpstreamRepo;
let manifest: string;
const cache = () => path.join(root, 'cache');

function buildArgs(workdir: string, extra: string[] = []): string[] {
  return ['build', '--release', manifest, '--source', 'git', '--source-url', upstream.url, '--workdir', workdir, '--cache-dir', cache(), '--engine', 'auto', '--builder-base', 'local', '--json', ...extra];
}

async function engineReady(): Promise<void> {
  const docker = await execa('docker', ['info'], { reject: false }).catch(() => undefined);
  if (docker?.exitCode === 0) return;
  const podman = await execa('podman', ['info'], { reject: false }).catch(() => undefined);
  if (podman?.exitCode === 0) return;
  throw new Error(
    `these tests need a running container engine and none answers (docker: ${docker ? docker.stderr.split('\n')[0] : 'not installed'}). ` +
      'Install and start one: apt-get install -y docker.io && (dockerd > /var/log/dockerd.log 2>&1 &)',
  );
}

beforeAll(async () => {
  await engineReady();
  root = await tempDir('pipeline');
  upstream = await makeUpstreamRepo(root);
  manifest = await writeFixtureManifest(path.join(root, 'releases'), {
    commit: upstream.commits[FIXTURE_VERSION]!,
    goVersion: upstream.goVersion,
    patches: path.join(FIXTURE_DIR, 'patches'),
  });
});

afterAll(async () => {
  if (root) await cleanup(root);
});

describe('build pipeline on the fixture', () => {
  let first: { binaries: { program: string; variant: string; platform: string; path: string; sha256: string; version: string }[]; dist: { name: string; path: string; sha256: string; kind: string }[]; stages: { stage: string; status: string }[] };

  it('builds both platforms, stamped, packaged and smoke-tested', async () => {
    const res = await runCli(buildArgs(path.join(root, 'w1')));
    expect(res.stderr + res.stdout).not.toMatch(/^error:/m);
    expect(res.exitCode).toBe(0);
    first = JSON.parse(res.stdout);
    expect(first.stages.map((s) => `${s.stage}=${s.status}`)).toEqual(['source=ran', 'patch=ran', 'build=ran', 'package=ran', 'smoke=ran']);
    expect(first.binaries.filter((b) => b.program === 'kubelet').map((b) => b.platform).sort()).toEqual(['linux/amd64', 'linux/arm64']);
    // the series' doctor, built from the patched tree with its overlay-only files, stamped alike
    const doctors = first.binaries.filter((b) => b.program === 'doctor');
    expect(doctors.map((b) => `${b.variant} ${b.platform}`).sort()).toEqual(['patched linux/amd64', 'patched linux/arm64']);
    const doctor = doctors.find((b) => b.platform === 'linux/amd64')!;
    expect((await execa(doctor.path, ['--version'])).stdout).toBe(`kubelet-lxc-doctor ${FIXTURE_VERSION}+rke2r1`);
    // it calls the patched code through the overlay's export: an empty list gets the series' default
    expect(JSON.parse((await execa(doctor.path, ['--json', ''])).stdout).patchedList).toBe('0');
    const amd64 = first.binaries.find((b) => b.program === 'kubelet' && b.platform === 'linux/amd64')!;
    const version = await execa(amd64.path, ['--version']);
    expect(version.stdout).toBe(`Kubernetes ${FIXTURE_VERSION}+rke2r1`);
    // Both version packages are stamped, with a clean tree state and the source date.
    const raw = await execa(amd64.path, ['--version=raw']);
    const lines = raw.stdout.split('\n');
    expect(lines).toHaveLength(2);
    for (const l of lines) {
      expect(l).toContain(`GitVersion:${FIXTURE_VERSION}+rke2r1`);
      expect(l).toContain('Major:1 Minor:99');
      expect(l).toContain('GitTreeState:clean');
      expect(l).toContain('BuildDate:2026-03-01T12:00:00Z');
      expect(l).toMatch(/GitCommit:[0-9a-f]{40}/);
    }
    // The patch is in: an empty CPU list no longer fails.
    const started = await execa(amd64.path, [], { reject: false });
    expect(started.exitCode).toBe(0);
    expect(started.stdout).toContain('ContainerManager started');
    // Packaged: per arch a tarball, its sums and an artifact list; aggregate sums that check out.
    const names = first.dist.map((f) => f.name).sort();
    const perArch = (a: string) => [
      `kubelet-linux-${a}.spdx.json`, `kubelet-linux-${a}.tar.gz`, `kubelet-lxc-doctor-linux-${a}`,
      `kubelet-lxc-v1.99.0-rke2r1-linux-${a}.tar.gz`, `kubelet-lxc-v1.99.0-rke2r1-linux-${a}.tar.gz.sha256`,
      `rke2-runtime-v1.99.0-rke2r1-lxc1.linux-${a}.tar`, `rke2-runtime-v1.99.0-rke2r1-lxc1.linux-${a}.tar.zst`,
      `sha256sum-${a}.txt`, `sha512sum-${a}.txt`, `artifacts-linux-${a}.json`,
    ];
    expect(names).toEqual(['SHA256SUMS', 'SHA512SUMS', ...perArch('amd64'), ...perArch('arm64'), 'rke2-kubelet-lxc.yaml', 'rke2-runtime-image-lxc.yaml'].sort());
    // No registry here: the runtime image is built on a labelled stand-in base, and says so.
    expect(first.dist.find((f) => f.name.endsWith('linux-amd64.tar') && f.name.startsWith('rke2-runtime'))!).toMatchObject({ kind: expect.stringMatching(/stand-in/), standIn: true, platform: 'linux/amd64' });
    expect(first.dist.find((f) => f.name === 'kubelet-linux-arm64.tar.gz')!).toMatchObject({ kind: 'kubelet-tarball', standIn: false, platform: 'linux/arm64', sha512: expect.stringMatching(/^[0-9a-f]{128}$/) });
    const doctorAsset = first.dist.find((f) => f.name === 'kubelet-lxc-doctor-linux-arm64')!;
    expect(doctorAsset).toMatchObject({ kind: 'doctor', platform: 'linux/arm64' });
    expect(doctorAsset.sha256).toBe(first.binaries.find((b) => b.program === 'doctor' && b.platform === 'linux/arm64')!.sha256);
    const distDir = path.dirname(first.dist[0]!.path);
    const check = await execa('sha256sum', ['-c', 'SHA256SUMS'], { cwd: distDir });
    expect(check.stdout).toContain('kubelet-linux-arm64.tar.gz: OK');
    const listing = await execa('tar', ['-tvzf', path.join(distDir, 'kubelet-linux-arm64.tar.gz'), '--numeric-owner']);
    expect(listing.stdout).toMatch(/^-rwxr-xr-x 0\/0 .* 2026-03-01 12:00 kubelet$/m);
  });

  it('skips every stage on a second run', async () => {
    const res = await runCli(buildArgs(path.join(root, 'w1')));
    expect(res.exitCode).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(out.stages.map((s: { stage: string; status: string }) => `${s.stage}=${s.status}`)).toEqual([
      'source=skipped', 'patch=skipped', 'build=skipped', 'package=skipped', 'smoke=skipped',
    ]);
    expect(res.stderr).toContain('inputs unchanged');
  });

  it('gives bit-identical binaries and tarballs in another work directory', async () => {
    const res = await runCli(buildArgs(path.join(root, 'w2')));
    expect(res.exitCode).toBe(0);
    const second = JSON.parse(res.stdout);
    for (const b of first.binaries) {
      const twin = second.binaries.find((x: { program: string; platform: string; variant: string }) => x.program === b.program && x.platform === b.platform && x.variant === b.variant);
      expect(twin.path).not.toBe(b.path);
      expect(await fileHash(twin.path)).toBe(b.sha256);
    }
    for (const f of first.dist) {
      const twin = second.dist.find((x: { name: string }) => x.name === f.name);
      expect(await fileHash(twin.path)).toBe(f.sha256);
    }
  });

  it('reruns patch, build and package (not source) when one patch changes', async () => {
    const patches = path.join(root, 'patches-changed');
    await cp(path.join(FIXTURE_DIR, 'patches'), patches, { recursive: true });
    const [patchFile] = (await readdir(patches)).filter((f) => f.endsWith('.patch'));
    const p = path.join(patches, patchFile!);
    await writeFile(p, (await readFile(p, 'utf8')).replace('default it to "0" with a warning.', 'default it to "0" with a warning (reworded).'));
    const changed = await writeFixtureManifest(path.join(root, 'releases-changed'), {
      commit: upstream.commits[FIXTURE_VERSION]!,
      goVersion: upstream.goVersion,
      patches,
    });
    // Same manifest id, same workdir: only the patch differs from the recorded run.
    const res = await runCli(['build', '--release', changed, '--source', 'git', '--source-url', upstream.url, '--workdir', path.join(root, 'w1'), '--cache-dir', cache(), '--builder-base', 'local', '--json']);
    expect(res.exitCode).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(out.stages.map((s: { stage: string; status: string }) => `${s.stage}=${s.status}`)).toEqual(['source=skipped', 'patch=ran', 'build=ran', 'package=ran', 'smoke=ran']);
  });

  it('stops on Ctrl-C in the middle of a run with exit 130, records nothing unfinished, and the rerun completes', async () => {
    const workdir = path.join(root, 'w-int');
    const child = execa(process.execPath, [CLI_ENTRY, ...buildArgs(workdir, ['--force'])], {
      reject: false,
      env: { ...process.env, CI: '1' },
    });
    let sent = false;
    child.stderr?.on('data', (chunk: Buffer) => {
      // the build stage has started: interrupt it
      if (!sent && /build: compile/.test(chunk.toString())) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    const res = await child;
    expect(sent, String(res.stderr)).toBe(true);
    expect(res.exitCode, String(res.stderr)).toBe(130);
    expect(String(res.stderr)).toMatch(/^interrupted$/m);
    const release = path.basename(manifest, '.json');
    // source and patch finished and keep their records; build and everything after it do not
    const records = await readdir(path.join(workdir, 'state', release));
    expect(records).toEqual(expect.arrayContaining(['source.json', 'patch.json']));
    for (const r of ['build.json', 'package.json', 'smoke.json']) expect(records).not.toContain(r);
    expect(await exists(path.join(workdir, 'out', release, 'dist'))).toBe(false);
    const again = await runCli(buildArgs(workdir));
    expect(again.exitCode, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as typeof first).stages.map((s) => `${s.stage}=${s.status}`)).toEqual(['source=skipped', 'patch=skipped', 'build=ran', 'package=ran', 'smoke=ran']);
  });

  it('says the disk is full, and leaves no half-written artifact', async () => {
    if (process.getuid?.() !== 0) throw new Error('this test mounts a small tmpfs as the full disk: run it as root (CI does)');
    const full = path.join(root, 'full');
    await execa('mkdir', ['-p', full]);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'kubelet-lxc-full', full]);
    try {
      const workdir = path.join(full, 'w');
      const res = await runCli(['build', '--release', manifest, '--source', 'git', '--source-url', upstream.url, '--workdir', workdir, '--cache-dir', path.join(full, 'cache'), '--engine', 'auto', '--builder-base', 'local']);
      expect(res.exitCode, res.stderr).toBe(1);
      expect(res.stderr).toMatch(/^error: .*the disk is full.*(free space|rerun)/m);
      expect(res.stderr).not.toMatch(/^\s+at /m);
      const release = path.basename(manifest, '.json');
      expect(await exists(path.join(workdir, 'out', release, 'dist'))).toBe(false);
      const records = await readdir(path.join(workdir, 'state', release)).catch(() => [] as string[]);
      expect(records).not.toContain('build.json');
    } finally {
      await execa('umount', ['-l', full], { reject: false });
    }
  });

  it('refuses a wrong commit SHA and prints both', async () => {
    const wrong = 'f'.repeat(40);
    const bad = await writeFixtureManifest(path.join(root, 'releases-wrong'), { commit: wrong, goVersion: upstream.goVersion, patches: path.join(FIXTURE_DIR, 'patches') });
    const workdir = path.join(root, 'w-wrong');
    const res = await runCli(['build', '--release', bad, '--source', 'git', '--source-url', upstream.url, '--workdir', workdir, '--cache-dir', path.join(root, 'cache-wrong')]);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toContain('refusing to build');
    expect(res.stderr).toContain(wrong);
    expect(res.stderr).toContain(upstream.commits[FIXTURE_VERSION]!);
    expect(await exists(path.join(root, 'cache-wrong', 'source', 'git', wrong))).toBe(false);
    expect(await exists(path.join(workdir, 'out'))).toBe(false);
  });

  it('says clearly that a tag does not exist', async () => {
    const missing = await writeFixtureManifest(path.join(root, 'releases-missing'), { version: 'v1.98.7', commit: 'a'.repeat(40), goVersion: upstream.goVersion, patches: path.join(FIXTURE_DIR, 'patches') });
    const res = await runCli(['build', '--release', missing, '--source', 'git', '--source-url', upstream.url, '--workdir', path.join(root, 'w-missing'), '--cache-dir', cache()]);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toContain(`tag v1.98.7 does not exist in ${upstream.url}`);
  });

  it('stops on a patch that no longer applies, naming patch, file and hunk, and builds nothing', async () => {
    const moved = await writeFixtureManifest(path.join(root, 'releases-moved'), {
      version: FIXTURE_MOVED_VERSION,
      commit: upstream.commits[FIXTURE_MOVED_VERSION]!,
      goVersion: upstream.goVersion,
      patches: path.join(FIXTURE_DIR, 'patches'),
    });
    const workdir = path.join(root, 'w-moved');
    const res = await runCli(['build', '--release', moved, '--source', 'git', '--source-url', upstream.url, '--workdir', workdir, '--cache-dir', cache(), '--builder-base', 'local']);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toContain('patch 0001-Default-an-empty-CPU-list-instead-of-failing.patch does not apply');
    expect(res.stderr).toContain('pkg/kubelet/cm/cpus.go');
    expect(res.stderr).toMatch(/hunk\(s\) rejected #1/);
    expect(res.stderr).toMatch(/@@ -\d+,\d+ \+\d+,\d+ @@/);
    const report = /Reject report: (\S+)/.exec(res.stderr)![1]!;
    expect(await readFile(report, 'utf8')).toContain('func CountCPUs(list string) (int, error) {');
    expect(await exists(path.join(workdir, 'out', FIXTURE_MOVED_VERSION, 'bin'))).toBe(false);
    expect(await exists(path.join(workdir, 'trees', FIXTURE_MOVED_VERSION, 'patched'))).toBe(false);
  });
});
