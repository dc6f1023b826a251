// The product on the real thing: the default manifest's kubelet, from the Go module proxy
// (GitHub is not reachable here), built in the container for every platform, the patch
// series' stock-vs-patched matrix, and the L1 LXC lab with the stock kubelet failing beside it.
import { describe, expect, it } from 'vitest';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { PROJECT_ROOT, resolveManifest } from '../src/manifest.js';
import { runCli } from './helpers/fixture.js';
import { fileHash } from '../src/lib/fsutil.js';
import { runLab } from '../src/lab/index.js';
import { labCacheDir } from '../src/stages/smoke.js';
import { conformanceKey, loadConformanceList, testsOfTier } from '../src/lab/l2/conformance.js';
import type { LabReport } from '../src/lab/types.js';

/** pids of this process's lab guests (qemu's 9p share lies in <lab cache>/work/run-<our pid>-...). */
async function ourQemuPids(): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmd.startsWith('qemu-system-x86_64\0') && cmd.includes(`/run-${process.pid}-`)) pids.push(Number(name));
  }
  return pids;
}

const manifest = resolveManifest(undefined);
const workdir = process.env.KUBELET_LXC_REAL_WORKDIR ?? path.join(PROJECT_ROOT, 'work');
const stamp = manifest.data.stamp.version;

interface BuildJson {
  source: { kind: string; verification: string[] };
  binaries: { program: string; variant: string; platform: string; path: string; sha256: string }[];
  dist: { name: string; path: string; size: number }[];
  smoke: { level: string; name: string; ok: boolean; detail: string }[];
}

describe(`real kubelet ${manifest.id}`, () => {
  let out: BuildJson;

  it('npm run build-kubelet (default release, default source) builds, packages and proves the series', async () => {
    // progress streams into the test log as it happens (a cold run takes tens of minutes)
    const res = await runCli(['build', '--workdir', workdir, '--patch-tests', '--lab', 'L1,L2', '--conformance', 'ci', '--json'], {}, { stream: true });
    expect(res.exitCode).toBe(0);
    // GitHub is not reachable here: the default build says it used the module proxy instead.
    expect(res.stderr).toMatch(/source: .*(Go module proxy|not reachable)/);
    out = JSON.parse(res.stdout);
    expect(out.source.kind).toBe('goproxy');
    expect(out.source.verification.join('\n')).toMatch(/\d+ modules verified against the h1: hashes pinned in the manifest/);
  });

  it('ships a stamped, static kubelet per platform with the intended build settings', async () => {
    const patched = out.binaries.filter((b) => b.variant === 'patched' && b.program === 'kubelet');
    // the stock kubelet is the lab's negative control: built only for the platform the lab runs
    expect(out.binaries.filter((b) => b.variant === 'stock').map((b) => b.platform)).toEqual(['linux/amd64']);
    // kubelet-lxc-doctor beside every patched kubelet, built from the same tree and stamped alike
    const doctors = out.binaries.filter((b) => b.program === 'doctor');
    expect(doctors.map((b) => `${b.variant} ${b.platform}`).sort()).toEqual(patched.map((b) => `patched ${b.platform}`).sort());
    const doctorAmd64 = doctors.find((b) => b.platform === 'linux/amd64')!;
    expect((await execa(doctorAmd64.path, ['--version'])).stdout).toBe(`kubelet-lxc-doctor ${stamp}`);
    for (const d of doctors) expect((await execa('file', ['-b', d.path])).stdout).toMatch(/statically linked/);
    expect(patched.map((b) => b.platform).sort()).toEqual([...manifest.data.platforms].sort());
    const amd64 = patched.find((b) => b.platform === 'linux/amd64')!;
    expect((await execa(amd64.path, ['--version'])).stdout).toBe(`Kubernetes ${stamp}`);
    for (const b of patched) {
      const m = (await execa('go', ['version', '-m', b.path], { env: { ...process.env, GOTOOLCHAIN: 'local' } })).stdout;
      expect(m).toContain(`go${manifest.data.go.version}`);
      expect(m).toMatch(/build\s+-trimpath=true/);
      expect(m).toMatch(/build\s+CGO_ENABLED=0/);
      expect(m).toMatch(new RegExp(`build\\s+GOARCH=${b.platform.split('/')[1]}`));
      // -trimpath keeps -ldflags out of the build info: look for the stamped strings in the binary itself.
      const bytes = await readFile(b.path);
      expect(bytes.includes(Buffer.from(stamp)), `${b.platform} carries ${stamp}`).toBe(true);
      // file(1) from Debian (.ci/run installs it), independent of the product's own ELF reader
      expect((await execa('file', ['-b', b.path])).stdout).toMatch(/statically linked/);
    }
    const l0 = out.smoke.filter((c) => c.level === 'L0');
    expect(l0.length).toBeGreaterThanOrEqual(8);
    expect(l0.filter((c) => !c.ok)).toEqual([]);
  });

  it('kubelet-lxc doctor runs the built doctor here: a normal host reads no value empty, and stock and patched agree', async () => {
    const res = await runCli(['doctor', '--workdir', workdir, '--json']);
    expect([0, 1], res.stderr).toContain(res.exitCode);
    const rep = JSON.parse(res.stdout);
    expect(rep.doctor).toBe(stamp);
    expect(res.exitCode).toBe(rep.verdict.patched.starts ? 0 : 1);
    // the neutrality rule seen from the doctor: no default fired on this machine, so no site
    expect(rep.findings.filter((f: { check: string }) => /^[A-J]$/.test(f.check))).toEqual([]);
    expect(rep.verdict.stock.starts).toBe(rep.verdict.patched.starts);
    expect(rep.environment.cgroupV2).toBe((await readFile('/sys/fs/cgroup/cgroup.controllers', 'utf8').catch(() => null)) !== null);
    const text = await runCli(['doctor', '--workdir', workdir]);
    expect(text.stdout).toMatch(/^verdict:$/m);
    expect(text.stdout).toMatch(/^ {2}stock {3}kubelet: (starts|FAILS at \[\S+\] with .+)$/m);
  });

  it('proves every patch: site tests fail on stock and pass on patched', async () => {
    const report = JSON.parse(await readFile(path.join(workdir, 'out', manifest.id, 'reports', 'patch-tests.json'), 'utf8'));
    expect(report.ok).toBe(true);
    const sites = new Set(report.rows.map((r: { site: string }) => r.site));
    for (const s of ['A', 'B', 'C', 'H', 'I', 'F', 'G', 'J']) expect(sites.has(s), `site ${s}`).toBe(true);
    for (const r of report.rows) expect([r.stock, r.patched], `${r.site} ${r.test}`).toEqual(['FAIL', 'PASS']);
    expect(report.upstream.every((u: { ok: boolean }) => u.ok)).toBe(true);
  });

  it('starts in the LXC lab where the stock kubelet dies', async () => {
    const report = JSON.parse(await readFile(path.join(workdir, 'out', manifest.id, 'reports', 'lab', 'lab-report.json'), 'utf8'));
    expect(report.verdict.ok).toBe(true);
    // the accelerator is on record: KVM that booted the guest, or TCG with the reason (a failed
    // KVM trial, or KVM not there / switched off)
    if (report.accel === 'kvm') expect(report.accelFallback).toBeNull();
    else expect(report.accelFallback?.reason ?? report.accelNote).toBeTruthy();
    // kubelet-lxc-doctor ran in every container before its kubelet and said what that kubelet then did
    for (const r of report.runs as LabReport['runs']) {
      expect(r.doctor?.problem, `${r.id}: doctor`).toBeNull();
      expect(r.kubelet === 'stock' ? r.doctor!.stockStarts : r.doctor!.patchedStarts, `${r.id}: the doctor's prediction`).toBe(r.passed);
    }
    const text = await readFile(path.join(workdir, 'out', manifest.id, 'reports', 'lab', 'lab-report.txt'), 'utf8');
    expect(text).toMatch(/^profile\s+kubelet\s+expected\s+result\s+doctor said/m);
    expect(text).toMatch(/^accelerator: (KVM \(the guest booted under it\)|TCG after a failed KVM trial .+|TCG \(.+\))$/m);
    const l1 = out.smoke.filter((c) => c.level === 'L1');
    expect(l1).toHaveLength(1);
    expect(l1[0]!.ok).toBe(true);
    const l2 = out.smoke.filter((c) => c.level === 'L2');
    expect(l2).toHaveLength(1);
    expect(l2[0]!.ok, l2[0]!.detail).toBe(true);
  });

  it('L2: the node registers with the SQLite-backed control plane in the LXC container and passes the checks and the conformance CI tier; stock under all never gets Ready', async () => {
    const report = JSON.parse(await readFile(path.join(workdir, 'out', manifest.id, 'reports', 'lab-l2', 'lab-report.json'), 'utf8')) as LabReport;
    expect(report.level).toBe('L2');
    expect(report.l2?.datastore).toMatch(/^sqlite:\/\/\/var\/lib\/rancher\/rke2\/server\/db\/state\.db\?/);
    const run = (profile: string, kubelet: string) => report.runs.find((r) => r.profile === profile && r.kubelet === kubelet)!;
    // the run spells each test as the release's tree does (1.37 orders the bracketed tags
    // differently from the list), so tests are compared by name with their tags in one order
    const ciTier = testsOfTier(loadConformanceList(), 'ci', manifest.data.kubernetes.version).map((t) => conformanceKey(t.name)).sort();
    for (const profile of ['lxc-default', 'all']) {
      const p = run(profile, 'patched');
      expect(p.l2?.ready, `${profile} patched Ready`).toBe(true);
      expect(p.l2?.checks.filter((c) => !c.ok), `${profile} patched checks`).toEqual([]);
      expect(p.l2?.checks.map((c) => c.name)).toEqual(expect.arrayContaining(['capacity cpu', 'capacity memory', 'pod Running', 'kubectl logs (apiserver -> kubelet)', 'kubectl exec (apiserver -> kubelet)', 'pod deleted and its cgroup gone']));
      expect(p.l2?.kubeletExits).toEqual([]);
      expect(p.l2?.conformance?.results.map((r) => conformanceKey(r.name)).sort()).toEqual(ciTier);
      expect(p.l2?.conformance?.results.filter((r) => r.result !== 'passed').map((r) => `${r.name}: ${r.result} ${r.message ?? ''}`)).toEqual([]);
    }
    // the harness is not rigged: the stock kubelet passes every check where nothing is broken
    expect(run('lxc-default', 'stock').l2?.checks.filter((c) => !c.ok)).toEqual([]);
    expect(run('lxc-default', 'stock').l2?.ready).toBe(true);
    // the negative control: under every fault the stock kubelet's node never gets Ready, with the upstream error
    const neg = run('all', 'stock');
    expect(neg.l2?.ready).toBe(false);
    expect(neg.l2?.kubeletExits.length).toBeGreaterThan(0);
    expect(neg.expectedErrorsMissing).toEqual([]);
    expect(report.verdict.problems).toEqual([]);
  });

  it('recovers in the same run when KVM cannot run the guest and when the guest dies mid-run, and the report says both', async () => {
    const bin = (variant: string, program = 'kubelet') => out.binaries.find((b) => b.program === program && b.variant === variant && b.platform === 'linux/amd64')!.path;
    const outDir = await mkdtemp(path.join(os.tmpdir(), 'lab-restart-'));
    // The KVM failure this test controls: asked for KVM, this qemu prints what qemu printed on
    // machines whose KVM cannot run the guest, and stays alive as qemu did; under TCG it is qemu.
    const qemu = path.join(outDir, 'qemu-kvm-broken');
    await writeFile(
      qemu,
      [
        '#!/bin/sh',
        'for a in "$@"; do case "$a" in *accel=kvm*)',
        '  echo "KVM internal error. Suberror: 1" >&2; echo "emulation failure" >&2; exec sleep 600;;',
        'esac; done',
        'exec qemu-system-x86_64 "$@"',
        '',
      ].join('\n'),
    );
    await chmod(qemu, 0o755);
    const kvmDevice = path.join(outDir, 'kvm-device'); // stands for /dev/kvm, so the trial happens on any host
    await writeFile(kvmDevice, '');
    const lines: string[] = [];
    let killed: number[] = [];
    try {
      const report = await runLab({
        kubelets: { stock: bin('stock'), patched: bin('patched') },
        doctor: bin('patched', 'doctor'),
        cacheDir: labCacheDir(),
        outDir,
        profiles: ['lxc-default'],
        kvm: 'auto',
        kvmDevice,
        qemu,
        log: (l) => {
          lines.push(l);
          process.stderr.write(`  | lab (restart test) ${l}\n`);
          // qemu ends (exit 0 on SIGTERM) while the first run's container is starting
          if (l.includes('[1/2] profile lxc-default, stock kubelet') && !killed.length) {
            setTimeout(() => {
              void ourQemuPids().then((pids) => {
                killed = pids;
                for (const p of pids) process.kill(p, 'SIGTERM');
              });
            }, 3000);
          }
        },
      });
      // KVM: tried, failed on qemu's own words, abandoned at once, the same lab went on under TCG
      expect(report.accel).toBe('tcg');
      expect(report.accelFallback).toMatchObject({ from: 'kvm', to: 'tcg', reason: 'qemu said "KVM internal error. Suberror: 1"' });
      expect(report.accelFallback!.seconds).toBeLessThan(15);
      expect(report.accelFallback!.consoleTail).toContain('emulation failure');
      expect(lines.join('\n')).toMatch(/KVM cannot run the guest \(qemu said "KVM internal error\. Suberror: 1", after [\d.]+ s\): falling back to TCG in this run/);
      expect(await readFile(path.join(outDir, 'lab-report.txt'), 'utf8')).toMatch(/^accelerator: TCG after a failed KVM trial \([\d.]+ s\): qemu said "KVM internal error\. Suberror: 1"/m);
      // the guest killed in the middle of run 01: booted again, the runs left done, on record
      expect(killed).toHaveLength(1);
      expect(report.guestRestarts).toHaveLength(1);
      expect(report.guestRestarts[0]).toMatchObject({ boot: 1, duringRun: '01-lxc-default-stock', qemuExit: '0' });
      expect(report.guestRestarts[0]!.consoleTail.join('\n')).toMatch(/terminating on signal 15/);
      expect(lines.join('\n')).toMatch(/the guest ended during run 01-lxc-default-stock \(qemu exit 0\), 2 runs left/);
      expect(report.runs.map((r) => [r.id, r.completed, r.passed])).toEqual([
        ['01-lxc-default-stock', true, true],
        ['02-lxc-default-patched', true, true],
      ]);
      expect(report.verdict.ok).toBe(true);
      expect(await readFile(path.join(outDir, 'lab-report.txt'), 'utf8')).toMatch(/guest restart: boot 1 ended during run 01-lxc-default-stock \(qemu exit 0\)/);
      expect((await readdir(outDir)).sort()).toEqual(expect.arrayContaining(['console.kvm.log', 'console.log', 'console.boot2.log', 'guest.log', 'guest.boot2.log']));
    } finally {
      await rm(outDir, { recursive: true, force: true });
    }
  });

  it('packages the RKE2 bundle, runtime images (plain and zstd), config snippets, SBOMs and sums', async () => {
    const names = out.dist.map((f) => f.name);
    for (const p of manifest.data.platforms) {
      const arch = p.split('/')[1];
      expect(names).toContain(`kubelet-linux-${arch}.tar.gz`);
      expect(names).toContain(`kubelet-linux-${arch}.spdx.json`);
      expect(names).toContain(`artifacts-linux-${arch}.json`);
      expect(names).toContain(`kubelet-lxc-doctor-linux-${arch}`);
      expect(names.some((n) => n.startsWith('kubelet-lxc-') && n.endsWith(`-linux-${arch}.tar.gz`))).toBe(true);
      expect(names.some((n) => n.startsWith('rke2-runtime-') && n.endsWith(`.linux-${arch}.tar`))).toBe(true);
      expect(names.some((n) => n.startsWith('rke2-runtime-') && n.endsWith(`.linux-${arch}.tar.zst`))).toBe(true);
    }
    expect(names).toContain('SHA256SUMS');
    const dist = path.dirname(out.dist[0]!.path);
    expect((await execa('sha256sum', ['-c', 'SHA256SUMS'], { cwd: dist })).exitCode).toBe(0);
  });

  it('rebuilds bit-identical kubelets in another work directory', async () => {
    const other = path.join(workdir, 'rebuild-check');
    const res = await runCli(['build', '--workdir', other, '--cache-dir', path.join(other, 'cache'), '--to', 'build', '--json'], {}, { stream: true });
    expect(res.exitCode).toBe(0);
    const again: BuildJson = JSON.parse(res.stdout);
    for (const b of out.binaries.filter((x) => x.variant === 'patched')) {
      const twin = again.binaries.find((x) => x.program === b.program && x.variant === 'patched' && x.platform === b.platform)!;
      expect(twin.path).not.toBe(b.path);
      expect(await fileHash(twin.path)).toBe(b.sha256);
    }
  });
});
