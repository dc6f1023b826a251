// Both installers (`kubelet-lxc install` and the bundle's install.sh under dash) against hostile
// bundles and roots: targets confined to the kubelet-lxc folder and RKE2's config.yaml.d/, no
// symlink followed out of --root, an existing kubelet symlink restored by --rollback; and the
// CLI's install messages for a report without a kubelet, a non-gzip file, a folder, and a bundle
// given with --rollback.
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Platform } from '../src/manifest.js';
import { writeDeterministicTar } from '../src/lib/tarball.js';
import {
  DROPIN_INSTALL_PATH,
  INSTALL_SCRIPT_PATH,
  KUBELET_DROPIN_NAME,
  ROLLBACK_STATE_DIR,
  buildKubeletPathBundle,
  bundleBaseName,
  installedKubeletPath,
  renderBundleReadme,
  renderInstallFile,
  renderKubeletPathDropIn,
} from '../src/rke2/index.js';
import { HOST_ARCH, buildFakeKubelet, requireTool, sha256 } from './helpers/rke2.js';
import { runCli } from './helpers/fixture.js';

const VERSION = 'v1.36.4+rke2r1';
const MTIME = new Date('2026-03-01T12:00:00Z');
const PLATFORM = `linux/${HOST_ARCH}` as Platform;

let tmp: string;
let kubelet: string;
let bundle: string;

beforeAll(async () => {
  for (const t of ['go', 'dash', 'tar', 'sha256sum']) await requireTool(t, t === 'dash' ? ['-c', 'true'] : t === 'go' ? ['version'] : ['--version']);
  tmp = await mkdtemp(path.join(os.tmpdir(), 'install-safety-'));
  kubelet = await buildFakeKubelet({ out: path.join(tmp, 'bin', 'kubelet'), arch: HOST_ARCH, version: VERSION });
  bundle = (await buildKubeletPathBundle({ kubelet, doctor: kubelet, platform: PLATFORM, version: VERSION, rke2Version: VERSION, outDir: path.join(tmp, 'dist'), mtime: MTIME }))[0]!.path;
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** A well-formed bundle (every checksum right) whose INSTALL says what the caller wants. */
async function bundleWithInstall(name: string, edit: (install: string) => string): Promise<string> {
  const dir = await mkdtemp(path.join(tmp, `b-${name}-`));
  const top = bundleBaseName(VERSION, PLATFORM);
  const texts: Record<string, string> = {
    INSTALL: edit(renderInstallFile({ version: VERSION, rke2Version: VERSION, platform: PLATFORM })),
    'README.md': renderBundleReadme({ version: VERSION, rke2Version: VERSION, platform: PLATFORM }),
    [KUBELET_DROPIN_NAME]: renderKubeletPathDropIn({ version: VERSION, rke2Version: VERSION, kubeletPath: installedKubeletPath(VERSION) }),
  };
  const sources: Record<string, string> = { 'install.sh': INSTALL_SCRIPT_PATH, kubelet };
  for (const [n, t] of Object.entries(texts)) {
    sources[n] = path.join(dir, n);
    await writeFile(sources[n]!, t);
  }
  const sums = (await Promise.all(Object.keys(sources).sort().map(async (n) => `${sha256(await readFile(sources[n]!))}  ${n}`))).join('\n');
  sources.SHA256SUMS = path.join(dir, 'SHA256SUMS');
  await writeFile(sources.SHA256SUMS, `${sums}\n`);
  const out = path.join(dir, `${top}.tar.gz`);
  await writeDeterministicTar(out, Object.entries(sources).map(([n, s]) => ({ name: `${top}/${n}`, source: s })), { mtime: MTIME, gzip: true });
  await writeFile(`${out}.sha256`, `${sha256(await readFile(out))}  ${path.basename(out)}\n`);
  return out;
}

type Installer = 'cli' | 'dash';

async function install(kind: Installer, args: string[]): Promise<{ ok: boolean; out: string }> {
  if (kind === 'cli') {
    const r = await runCli(['install', ...args]);
    return { ok: r.exitCode === 0, out: `${r.stdout}\n${r.stderr}` };
  }
  const r = await execa('dash', [INSTALL_SCRIPT_PATH, ...args], { reject: false, all: true });
  return { ok: r.exitCode === 0, out: r.all ?? '' };
}

async function freshRoot(): Promise<string> {
  const root = await mkdtemp(path.join(tmp, 'root-'));
  await mkdir(path.join(root, 'etc/rancher/rke2/config.yaml.d'), { recursive: true });
  return root;
}

/** Every path below dir (links not followed). */
async function listAll(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) out.push(path.relative(dir, path.join(e.parentPath, e.name)));
  return out.sort();
}

describe.each(['cli', 'dash'] as Installer[])('install targets with %s', (kind) => {
  it('refuses INSTALL targets outside the kubelet-lxc folder and config.yaml.d/, writing nothing', async () => {
    const cases: { name: string; edit: (s: string) => string; want: RegExp }[] = [
      { name: 'passwd', edit: (s) => s.replace(/^kubelet_path=.*$/m, 'kubelet_path=/etc/passwd'), want: /kubelet_path '\/etc\/passwd' in INSTALL is not under \/usr\/local\/lib\/kubelet-lxc\// },
      { name: 'sudoers', edit: (s) => s.replace(/^dropin_path=.*$/m, 'dropin_path=/etc/sudoers.d/x'), want: /dropin_path '\/etc\/sudoers\.d\/x' in INSTALL is not a \.yaml file in \/etc\/rancher\/rke2\/config\.yaml\.d\// },
      { name: 'root-folder', edit: (s) => s.replace(/^kubelet_path=.*$/m, 'kubelet_path=/usr/local/lib/kubelet-lxc'), want: /kubelet_path '\/usr\/local\/lib\/kubelet-lxc' in INSTALL is not under/ },
    ];
    for (const c of cases) {
      const root = await freshRoot();
      const before = await listAll(root);
      const b = await bundleWithInstall(c.name, c.edit);
      const r = await install(kind, ['--root', root, b]);
      expect(r.ok, `${c.name}: ${r.out}`).toBe(false);
      expect(r.out, c.name).toMatch(c.want);
      expect(await listAll(root), c.name).toEqual(before);
    }
  });

  it('refuses to follow a symlink inside --root out of the root', async () => {
    const root = await freshRoot();
    const outside = await mkdtemp(path.join(tmp, 'outside-'));
    await mkdir(path.join(root, 'usr/local'), { recursive: true });
    await symlink(outside, path.join(root, 'usr/local/lib'));
    const r = await install(kind, ['--root', root, bundle]);
    expect(r.ok, r.out).toBe(false);
    expect(r.out).toMatch(/\/usr\/local\/lib\/kubelet-lxc\/v1\.36\.4\+rke2r1 leads out of --root .* through a symbolic link/);
    expect(await readdir(outside)).toEqual([]);
    expect(await listAll(path.join(root, 'etc'))).toEqual(['rancher', 'rancher/rke2', 'rancher/rke2/config.yaml.d']);
  });

  it('keeps an existing kubelet symlink in the backup, and --rollback puts the link back', async () => {
    const root = await freshRoot();
    const k = path.join(root, installedKubeletPath(VERSION));
    await mkdir(path.dirname(k), { recursive: true });
    await writeFile(path.join(path.dirname(k), 'kubelet.real'), 'the operator\'s own kubelet\n');
    await symlink('/opt/operator/kubelet', k);
    const i = await install(kind, ['--root', root, bundle]);
    expect(i.ok, i.out).toBe(true);
    expect((await lstat(k)).isFile()).toBe(true);
    expect(await readFile(path.join(root, ROLLBACK_STATE_DIR, 'entries'), 'utf8')).toContain(`kubelet link ${installedKubeletPath(VERSION)}\n`);
    const back = await install(kind, ['--root', root, '--rollback']);
    expect(back.ok, back.out).toBe(true);
    expect((await lstat(k)).isSymbolicLink()).toBe(true);
    expect(await readlink(k)).toBe('/opt/operator/kubelet');
    expect(await readFile(path.join(root, DROPIN_INSTALL_PATH), 'utf8').catch(() => 'absent')).toBe('absent');
  });
});

describe('install messages', () => {
  it('rollback reports what it restored and removed, never "undefined"', async () => {
    const root = await freshRoot();
    const i = await runCli(['install', '--root', root, bundle]);
    expect(i.exitCode, i.stderr).toBe(0);
    const back = await runCli(['install', '--root', root, '--rollback']);
    expect(back.exitCode, back.stderr).toBe(0);
    expect(back.stdout).not.toContain('undefined');
    expect(back.stdout).toMatch(/^rolled-back: removed \/etc\/rancher\/rke2\/config\.yaml\.d\/90-kubelet-lxc\.yaml, removed \/usr\/local\/lib\/kubelet-lxc\/v1\.36\.4\+rke2r1\/kubelet$/m);
  });

  it('says what is wrong with a non-gzip file, a folder, and a bundle given with --rollback', async () => {
    const root = await freshRoot();
    const text = path.join(tmp, 'notes.tar.gz');
    await writeFile(text, 'these are not the bytes of a bundle\n');
    await writeFile(`${text}.sha256`, `${sha256(await readFile(text))}  notes.tar.gz\n`);
    const folder = path.join(tmp, 'folder.tar.gz');
    await mkdir(folder);
    const cases: { args: string[]; want: RegExp }[] = [
      { args: [text], want: /^error: .*notes\.tar\.gz is not a gzip file \(a bundle is the kubelet-lxc-<version>-linux-<arch>\.tar\.gz of a release\)/m },
      { args: [folder], want: /^error: .*folder\.tar\.gz is a folder, not a bundle file/m },
      { args: [bundle, '--rollback'], want: /^error: --rollback takes no bundle: run kubelet-lxc install --rollback alone to undo the last install/m },
    ];
    for (const c of cases) {
      const r = await runCli(['install', '--root', root, ...c.args]);
      expect(r.exitCode, r.stderr).toBe(1);
      expect(r.stderr).toMatch(c.want);
    }
    expect(await listAll(root)).toEqual(['etc', 'etc/rancher', 'etc/rancher/rke2', 'etc/rancher/rke2/config.yaml.d']);
  });
});
