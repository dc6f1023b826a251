// The kubelet-path bundle and its two installers (Node and the POSIX script inside the bundle),
// run for real against temporary roots.
import { chmod, copyFile, lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { Platform } from '../src/manifest.js';
import { extractTar, listTar, writeDeterministicTar } from '../src/lib/tarball.js';
import {
  DROPIN_INSTALL_PATH,
  INSTALL_SCRIPT_PATH,
  KUBELET_DROPIN_NAME,
  LXC_KUBELET_ARGS,
  LXC_KUBE_PROXY_ARGS,
  ROLLBACK_STATE_DIR,
  buildKubeletPathBundle,
  bundleBaseName,
  installBundle,
  installedKubeletPath,
} from '../src/rke2/index.js';
import { HOST_ARCH, buildFakeKubelet, captureLogger, rawTarGz, requireTool, sha256 } from './helpers/rke2.js';

const VERSION = 'v1.36.4+rke2r1';
const RKE2 = 'v1.36.4+rke2r1';
const MTIME = new Date('2026-03-01T12:00:00Z');
const HOST_PLATFORM = `linux/${HOST_ARCH}` as Platform;
const OTHER_ARCH = HOST_ARCH === 'amd64' ? 'arm64' : 'amd64';

let tmp: string;
let kubelet: string; // patched, host arch
let stockKubelet: string; // same version, other bytes (stands for what was on the node)
let otherArchKubelet: string;
let doctor: string; // stands for kubelet-lxc-doctor (another ELF of the host arch)
let bundle: string;
let busyboxPath: string;

beforeAll(async () => {
  for (const t of ['go', 'dash', 'busybox', 'tar', 'sha256sum']) await requireTool(t, t === 'busybox' ? ['true'] : t === 'dash' ? ['-c', 'true'] : t === 'go' ? ['version'] : ['--version']);
  tmp = await mkdtemp(path.join(os.tmpdir(), 'rke2-bundle-'));
  kubelet = await buildFakeKubelet({ out: path.join(tmp, 'bin', 'kubelet'), arch: HOST_ARCH, version: VERSION });
  stockKubelet = await buildFakeKubelet({ out: path.join(tmp, 'bin', 'kubelet-stock'), arch: HOST_ARCH, version: VERSION, flavour: 'stock' });
  doctor = await buildFakeKubelet({ out: path.join(tmp, 'bin', 'kubelet-lxc-doctor'), arch: HOST_ARCH, version: VERSION, flavour: 'stock' });
  otherArchKubelet = await buildFakeKubelet({ out: path.join(tmp, 'bin', `kubelet-${OTHER_ARCH}`), arch: OTHER_ARCH, version: VERSION });
  const files = await buildKubeletPathBundle({ kubelet, doctor, platform: HOST_PLATFORM, version: VERSION, rke2Version: RKE2, outDir: path.join(tmp, 'dist'), mtime: MTIME });
  bundle = files[0]!.path;
  // A PATH with nothing but busybox applets, so the script is run with busybox's own tools.
  busyboxPath = path.join(tmp, 'busybox-bin');
  await mkdir(busyboxPath);
  const busybox = (await execa('sh', ['-c', 'command -v busybox'])).stdout.trim();
  for (const a of ['sh', 'tar', 'gzip', 'dd', 'tr', 'wc', 'sha256sum', 'cmp', 'mktemp', 'cp', 'mv', 'rm', 'mkdir', 'rmdir', 'chmod', 'sed', 'awk', 'sort', 'cut', 'dirname', 'cat', 'readlink', 'ln', 'date']) {
    await symlink(busybox, path.join(busyboxPath, a));
  }
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** Every file and folder under root: folder -> 'dir', file -> sha256:mode. */
async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(rel: string) {
    for (const e of await readdir(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const full = path.join(root, r);
      if (e.isDirectory()) {
        out[r] = 'dir';
        await walk(r);
      } else {
        const s = await lstat(full);
        out[r] = `${sha256(await readFile(full))}:${(s.mode & 0o7777).toString(8)}`;
      }
    }
  }
  await walk('');
  return out;
}

type Installer = 'node' | 'sh' | 'dash' | 'busybox';
const INSTALLERS: Installer[] = ['node', 'sh', 'dash', 'busybox'];

/** The install.sh shipped inside the bundle, taken out the way the README says. */
async function shippedScript(b: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmp, 'script-'));
  await extractTar(b, dir);
  return path.join(dir, bundleBaseName(VERSION, HOST_PLATFORM), 'install.sh');
}

async function runInstaller(kind: Installer, args: { bundle?: string; root: string; rollback?: boolean }): Promise<{ ok: boolean; out: string }> {
  if (kind === 'node') {
    const log = captureLogger();
    try {
      const report = await installBundle({ bundle: args.bundle, root: args.root, rollback: args.rollback, log });
      return { ok: true, out: `${log.lines.join('\n')}\n${JSON.stringify(report)}` };
    } catch (err) {
      return { ok: false, out: `${log.lines.join('\n')}\n${(err as Error).message}` };
    }
  }
  const script = await shippedScript(bundle);
  const scriptArgs = ['--root', args.root, ...(args.rollback ? ['--rollback'] : []), ...(args.bundle ? [args.bundle] : [])];
  const r =
    kind === 'busybox'
      ? await execa('sh', [script, ...scriptArgs], { reject: false, all: true, env: { PATH: busyboxPath }, extendEnv: false })
      : await execa(kind, [script, ...scriptArgs], { reject: false, all: true });
  return { ok: r.exitCode === 0, out: r.all ?? '' };
}

async function seededRoot(withKubelet: boolean): Promise<string> {
  const root = await mkdtemp(path.join(tmp, 'root-'));
  await mkdir(path.join(root, 'etc/rancher/rke2/config.yaml.d'), { recursive: true });
  await writeFile(path.join(root, 'etc/rancher/rke2/config.yaml'), 'token: operator-secret\nkubelet-arg:\n  - max-pods=200\n');
  await writeFile(path.join(root, DROPIN_INSTALL_PATH), '# an older drop-in the operator had here\nkubelet-path: /opt/old/kubelet\n', { mode: 0o600 });
  await chmod(path.join(root, DROPIN_INSTALL_PATH), 0o600);
  if (withKubelet) {
    const k = path.join(root, installedKubeletPath(VERSION));
    await mkdir(path.dirname(k), { recursive: true });
    await copyFile(stockKubelet, k);
    await chmod(k, 0o755);
  }
  return root;
}

describe('kubelet-path bundle', () => {
  it('holds the kubelet, the drop-in, a README, the installer and checksums, byte-for-byte reproducibly', async () => {
    const a = await buildKubeletPathBundle({ kubelet, doctor, platform: HOST_PLATFORM, version: VERSION, rke2Version: RKE2, outDir: path.join(tmp, 'repro-a'), mtime: MTIME });
    const b = await buildKubeletPathBundle({ kubelet, doctor, platform: HOST_PLATFORM, version: VERSION, rke2Version: RKE2, outDir: path.join(tmp, 'repro-b'), mtime: MTIME });
    expect(a.map((f) => f.name)).toEqual([`kubelet-lxc-v1.36.4-rke2r1-linux-${HOST_ARCH}.tar.gz`, `kubelet-lxc-v1.36.4-rke2r1-linux-${HOST_ARCH}.tar.gz.sha256`, KUBELET_DROPIN_NAME]);
    expect(a.map((f) => f.sha256)).toEqual(b.map((f) => f.sha256));
    expect(a.map((f) => f.kind)).toEqual(['kubelet-path-bundle', 'checksum', 'rke2-config-kubelet-path']);
    for (const f of a) {
      expect((await stat(f.path)).size).toBe(f.size);
      expect(sha256(await readFile(f.path))).toBe(f.sha256);
    }
    // The .sha256 works with sha256sum -c next to the bundle.
    expect(await readFile(a[1]!.path, 'utf8')).toBe(`${a[0]!.sha256}  ${a[0]!.name}\n`);
    const check = await execa('sha256sum', ['-c', a[1]!.name], { cwd: path.dirname(a[0]!.path) });
    expect(check.stdout).toBe(`${a[0]!.name}: OK`);

    const top = bundleBaseName(VERSION, HOST_PLATFORM);
    const members = await listTar(a[0]!.path);
    expect(members.map((m) => [m.path, m.type, (m.mode & 0o7777).toString(8)])).toEqual([
      [`${top}/`, 'Directory', '755'],
      [`${top}/INSTALL`, 'File', '644'],
      [`${top}/README.md`, 'File', '644'],
      [`${top}/SHA256SUMS`, 'File', '644'],
      [`${top}/install.sh`, 'File', '755'],
      [`${top}/kubelet`, 'File', '755'],
      [`${top}/kubelet-lxc-doctor`, 'File', '755'],
      [`${top}/${KUBELET_DROPIN_NAME}`, 'File', '644'],
    ]);

    const x = await mkdtemp(path.join(tmp, 'x-'));
    await extractTar(a[0]!.path, x);
    const dir = path.join(x, top);
    const sums = await execa('sha256sum', ['-c', 'SHA256SUMS'], { cwd: dir });
    expect(sums.stdout.split('\n').sort()).toEqual(['INSTALL: OK', 'README.md: OK', 'install.sh: OK', 'kubelet-lxc-doctor: OK', 'kubelet: OK', `${KUBELET_DROPIN_NAME}: OK`]);
    expect(sha256(await readFile(path.join(dir, 'kubelet')))).toBe(sha256(await readFile(kubelet)));
    expect(sha256(await readFile(path.join(dir, 'kubelet-lxc-doctor')))).toBe(sha256(await readFile(doctor)));
    expect(await readFile(path.join(dir, 'install.sh'), 'utf8')).toBe(await readFile(INSTALL_SCRIPT_PATH, 'utf8'));

    // The drop-in: kubelet-path at the versioned install path, the LXC flags, each with its reason.
    const dropIn = await readFile(path.join(dir, KUBELET_DROPIN_NAME), 'utf8');
    expect(await readFile(a[2]!.path, 'utf8')).toBe(dropIn);
    const cfg = parseYaml(dropIn) as Record<string, unknown>;
    expect(cfg['kubelet-path']).toBe(`/usr/local/lib/kubelet-lxc/${VERSION}/kubelet`);
    expect(cfg['kubelet-arg+']).toEqual(LXC_KUBELET_ARGS.filter((x) => x.active).map((x) => x.arg));
    expect(cfg['kubelet-arg+']).toContain('fail-swap-on=false');
    expect(cfg['kube-proxy-arg+']).toEqual(['conntrack-max-per-core=0']);
    const lines = dropIn.split('\n');
    for (const arg of [...LXC_KUBELET_ARGS, ...LXC_KUBE_PROXY_ARGS]) {
      const i = lines.findIndex((l) => l.endsWith(`- ${arg.arg}`));
      expect(i, arg.arg).toBeGreaterThan(0);
      expect(lines[i - 1], `comment before ${arg.arg}`).toMatch(/^ {2}# \S/);
      expect(lines[i]!.trimStart().startsWith('#'), `${arg.arg} commented out`).toBe(!arg.active);
    }
    expect(dropIn).toContain('lxc.mount.entry: /dev/kmsg dev/kmsg');

    const install = await readFile(path.join(dir, 'INSTALL'), 'utf8');
    expect(install).toContain(`kubelet_path=${installedKubeletPath(VERSION)}\n`);
    expect(install).toContain(`dropin_path=${DROPIN_INSTALL_PATH}\n`);
    const readme = await readFile(path.join(dir, 'README.md'), 'utf8');
    expect(readme).toContain(installedKubeletPath(VERSION));
    expect(readme).toContain('--rollback');
    expect(readme).toContain('rke2-uninstall.sh');
  });

  it('ships an installer that is plain POSIX sh (sh -n, dash -n, busybox sh -n)', async () => {
    const script = await shippedScript(bundle);
    for (const [cmd, args] of [
      ['sh', ['-n', script]],
      ['dash', ['-n', script]],
      ['busybox', ['sh', '-n', script]],
    ] as const) {
      const r = await execa(cmd, [...args], { reject: false, all: true });
      expect(r.exitCode, `${cmd} -n: ${r.all}`).toBe(0);
    }
  });

  it('refuses a kubelet built for another architecture', async () => {
    await expect(
      buildKubeletPathBundle({ kubelet: otherArchKubelet, doctor, platform: HOST_PLATFORM, version: VERSION, rke2Version: RKE2, outDir: path.join(tmp, 'wrong'), mtime: MTIME }),
    ).rejects.toThrow(`is a ${OTHER_ARCH} executable, but it is packaged for ${HOST_PLATFORM}`);
    // a script, and a file cut short inside the ELF header
    const script = path.join(tmp, 'bin', 'kubelet-script');
    await writeFile(script, '#!/bin/sh\necho kubelet\n');
    const cut = path.join(tmp, 'bin', 'kubelet-cut');
    await writeFile(cut, (await readFile(kubelet)).subarray(0, 40));
    for (const f of [script, cut]) {
      await expect(buildKubeletPathBundle({ kubelet: f, doctor, platform: HOST_PLATFORM, version: VERSION, rke2Version: RKE2, outDir: path.join(tmp, 'wrong2'), mtime: MTIME })).rejects.toThrow(`${f} is not an ELF executable`);
    }
    expect(existsSync(path.join(tmp, 'wrong2'))).toBe(false);
  });
});

describe.each(INSTALLERS)('install with %s', (kind) => {
  it('installs atomically, checks kubelet --version, is idempotent, and --rollback restores the original bytes', async () => {
    const root = await seededRoot(false);
    const before = await snapshot(root);

    const first = await runInstaller(kind, { bundle, root });
    expect(first.ok, first.out).toBe(true);
    expect(first.out).toMatch(/checksum ok: [0-9a-f]{64}/);
    expect(first.out).toContain(`--version: Kubernetes ${VERSION}`);
    expect(first.out).toContain('systemctl restart rke2-agent');
    const k = path.join(root, installedKubeletPath(VERSION));
    expect(sha256(await readFile(k))).toBe(sha256(await readFile(kubelet)));
    expect((await stat(k)).mode & 0o777).toBe(0o755);
    const dropIn = await readFile(path.join(root, DROPIN_INSTALL_PATH), 'utf8');
    expect(dropIn).toContain(`kubelet-path: ${installedKubeletPath(VERSION)}\n`);
    const entries = await readFile(path.join(root, ROLLBACK_STATE_DIR, 'entries'), 'utf8');
    expect(entries.split('\n').slice(0, 2)).toEqual([`dropin present ${DROPIN_INSTALL_PATH}`, `kubelet absent ${installedKubeletPath(VERSION)}`]);
    expect(entries).toContain(`dir dir /usr/local/lib/kubelet-lxc/${VERSION}\n`);
    // The operator's own config is left alone; no temp files are left behind.
    const after = await snapshot(root);
    expect(after['etc/rancher/rke2/config.yaml']).toBe(before['etc/rancher/rke2/config.yaml']);
    expect(Object.keys(after).filter((p) => p.includes('tmp') || p.includes('.new.') || p.includes('.old.'))).toEqual([]);

    const again = await runInstaller(kind, { bundle, root });
    expect(again.ok, again.out).toBe(true);
    expect(again.out).toContain('already installed; nothing changed');
    expect(await snapshot(root)).toEqual(after);

    const back = await runInstaller(kind, { root, rollback: true });
    expect(back.ok, back.out).toBe(true);
    expect(back.out).toContain('systemctl restart rke2-agent');
    expect(await snapshot(root)).toEqual(before);

    const none = await runInstaller(kind, { root, rollback: true });
    expect(none.ok).toBe(false);
    expect(none.out).toContain('nothing to roll back');
  });

  it('backs up a kubelet it replaces and puts those bytes back on --rollback', async () => {
    const root = await seededRoot(true);
    const before = await snapshot(root);
    const k = path.join(root, installedKubeletPath(VERSION));
    const r = await runInstaller(kind, { bundle, root });
    expect(r.ok, r.out).toBe(true);
    expect(sha256(await readFile(k))).toBe(sha256(await readFile(kubelet)));
    expect(sha256(await readFile(path.join(root, ROLLBACK_STATE_DIR, 'files/kubelet')))).toBe(sha256(await readFile(stockKubelet)));
    const back = await runInstaller(kind, { root, rollback: true });
    expect(back.ok, back.out).toBe(true);
    expect(sha256(await readFile(k))).toBe(sha256(await readFile(stockKubelet)));
    expect(await snapshot(root)).toEqual(before);
  });

  it('refuses a tampered bundle and one without its checksum file, changing nothing', async () => {
    const root = await seededRoot(false);
    const before = await snapshot(root);
    const dir = await mkdtemp(path.join(tmp, 'tampered-'));
    const bad = path.join(dir, path.basename(bundle));
    const bytes = await readFile(bundle);
    const mid = Math.floor(bytes.length / 2);
    bytes[mid] = bytes[mid]! ^ 0xff;
    await writeFile(bad, bytes);
    await copyFile(`${bundle}.sha256`, `${bad}.sha256`);
    const r = await runInstaller(kind, { bundle: bad, root });
    expect(r.ok).toBe(false);
    expect(r.out).toContain(`checksum mismatch for ${bad}: expected ${sha256(await readFile(bundle))}, got ${sha256(bytes)}`);

    const lone = path.join(dir, 'lone.tar.gz');
    await copyFile(bundle, lone);
    const r2 = await runInstaller(kind, { bundle: lone, root });
    expect(r2.ok).toBe(false);
    expect(r2.out).toContain(`checksum file ${lone}.sha256 is missing`);
    expect(await snapshot(root)).toEqual(before);
  });

  it('refuses archives with ../, absolute or link entries, naming the entry, before extracting anything', async () => {
    const root = await seededRoot(false);
    const before = await snapshot(root);
    const top = bundleBaseName(VERSION, HOST_PLATFORM);
    const cases: { name: string; entries: Parameters<typeof rawTarGz>[0]; want: string }[] = [
      { name: 'dotdot', entries: [{ name: `${top}/INSTALL`, body: 'format=1\n' }, { name: '../evil-dotdot', body: 'x' }], want: '../evil-dotdot' },
      { name: 'nested-dotdot', entries: [{ name: `${top}/../../evil-nested`, body: 'x' }], want: `${top}/../../evil-nested` },
      { name: 'absolute', entries: [{ name: `${top}/INSTALL`, body: 'format=1\n' }, { name: '/tmp/evil-absolute', body: 'x' }], want: '/tmp/evil-absolute' },
      { name: 'symlink', entries: [{ name: `${top}/kubelet`, type: 'symlink', linkname: '/etc/shadow' }], want: `${top}/kubelet` },
    ];
    for (const c of cases) {
      const dir = await mkdtemp(path.join(tmp, `evil-${c.name}-`));
      const b = path.join(dir, 'sub', `${c.name}.tar.gz`);
      await mkdir(path.dirname(b));
      const data = rawTarGz(c.entries);
      await writeFile(b, data);
      await writeFile(`${b}.sha256`, `${sha256(data)}  ${path.basename(b)}\n`);
      const r = await runInstaller(kind, { bundle: b, root });
      expect(r.ok, `${c.name}: ${r.out}`).toBe(false);
      expect(r.out).toContain(`refusing ${b}`);
      expect(r.out).toContain(c.want);
      expect(await readdir(dir)).toEqual(['sub']);
      expect((await readdir(path.join(dir, 'sub'))).sort()).toEqual([`${c.name}.tar.gz`, `${c.name}.tar.gz.sha256`]);
    }
    await expect(stat('/tmp/evil-absolute')).rejects.toThrow();
    expect(await snapshot(root)).toEqual(before);
  });

  it('refuses a bundle whose contents do not match its SHA256SUMS even when the outer checksum was redone', async () => {
    const root = await seededRoot(false);
    const before = await snapshot(root);
    const x = await mkdtemp(path.join(tmp, 'inner-'));
    await extractTar(bundle, x);
    const top = bundleBaseName(VERSION, HOST_PLATFORM);
    await copyFile(stockKubelet, path.join(x, top, 'kubelet'));
    const names = ['INSTALL', 'README.md', 'SHA256SUMS', 'install.sh', 'kubelet', KUBELET_DROPIN_NAME];
    const b = path.join(x, 'repacked.tar.gz');
    await writeDeterministicTar(b, names.map((n) => ({ name: `${top}/${n}`, source: path.join(x, top, n) })), { mtime: MTIME, gzip: true });
    await writeFile(`${b}.sha256`, `${sha256(await readFile(b))}  repacked.tar.gz\n`);
    const r = await runInstaller(kind, { bundle: b, root });
    expect(r.ok).toBe(false);
    expect(r.out).toContain('kubelet does not match SHA256SUMS');
    expect(await snapshot(root)).toEqual(before);
  });
});

describe('the two installers share one rollback state', () => {
  it('sh rolls back what Node installed, and Node rolls back what sh installed', async () => {
    for (const [installer, roller] of [
      ['node', 'dash'],
      ['busybox', 'node'],
    ] as const) {
      const root = await seededRoot(true);
      const before = await snapshot(root);
      const i = await runInstaller(installer, { bundle, root });
      expect(i.ok, i.out).toBe(true);
      expect(await snapshot(root)).not.toEqual(before);
      const r = await runInstaller(roller, { root, rollback: true });
      expect(r.ok, r.out).toBe(true);
      expect(await snapshot(root)).toEqual(before);
    }
  });
});
