// The release manifest: schema errors name the field; the newest manifest is the default.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ManifestError, listManifests, parseManifest, resolveManifest } from '../src/manifest.js';
import { runCli } from './helpers/fixture.js';
import { minorAtLeast } from '../src/lib/version.js';

// folders of test manifests, removed at the end
const scratch: string[] = [];
async function scratchDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}
afterAll(async () => {
  for (const d of scratch) await rm(d, { recursive: true, force: true });
});

const valid = {
  schema: 1,
  kubernetes: { version: 'v1.36.4', commit: null, commitTime: '2026-08-20T11:51:43Z' },
  source: { default: 'git', git: { url: 'https://example.invalid/k.git' } },
  go: { version: '1.26.5' },
  patches: '../patches/v1.36',
  stamp: { version: 'v1.36.4+rke2r1' },
  rke2: { version: 'v1.36.4+rke2r1', runtimeImage: 'rancher/rke2-runtime:v1.36.4-rke2r1' },
  platforms: ['linux/amd64'],
};

describe('release manifest', () => {
  it('accepts a valid manifest and resolves the patches folder relative to it', () => {
    const m = parseManifest('/x/releases/v1.36.4.json', valid);
    expect(m.patchesDir).toBe('/x/patches/v1.36');
    expect(m.data.target).toBe('./cmd/kubelet');
  });

  it('refuses a git URL that git could read as an option', () => {
    const bad = { ...valid, source: { ...valid.source, git: { url: '--upload-pack=touch /tmp/pwned' } } };
    expect(() => parseManifest('/x/releases/bad.json', bad)).toThrow(/source\.git\.url: a git URL \(https:\/\/, ssh:\/\/, git:\/\/, file:\/\/, user@host:path\) or an absolute path/);
    for (const url of ['https://github.com/kubernetes/kubernetes.git', 'file:///srv/k.git', 'git@github.com:kubernetes/kubernetes.git', '/srv/mirror/k.git']) {
      expect(parseManifest('/x/releases/ok.json', { ...valid, source: { ...valid.source, git: { url } } }).data.source.git.url).toBe(url);
    }
  });

  it('names each invalid field', () => {
    const bad = { ...valid, kubernetes: { ...valid.kubernetes, commit: 'abc' }, platforms: ['linux/s390x'] };
    let msg = '';
    try {
      parseManifest('/x/releases/bad.json', bad);
    } catch (e) {
      expect(e).toBeInstanceOf(ManifestError);
      msg = (e as Error).message;
    }
    expect(msg).toContain('/x/releases/bad.json');
    expect(msg).toContain('kubernetes.commit: a 40-hex-digit commit SHA');
    expect(msg).toMatch(/platforms\.0: /);
  });

  it('refuses a stamp whose version is not the Kubernetes version (RKE2 expects a matching kubelet)', () => {
    expect(() => parseManifest('/x/releases/v1.36.4.json', { ...valid, stamp: { version: 'v1.35.0+lxc.1' } })).toThrow(
      /stamp\.version: must have the Kubernetes version v1\.36\.4 as its core/,
    );
  });

  it('picks the newest release as the default and lists them', async () => {
    const dir = await scratchDir('kubelet-lxc-releases-');
    await writeFile(path.join(dir, 'v1.36.4.json'), JSON.stringify(valid));
    await writeFile(path.join(dir, 'v1.36.10.json'), JSON.stringify({ ...valid, kubernetes: { ...valid.kubernetes, version: 'v1.36.10' }, stamp: { version: 'v1.36.10+rke2r1' }, rke2: { version: 'v1.36.10+rke2r1', runtimeImage: 'r:x' } }));
    expect(listManifests(dir).map((m) => m.id)).toEqual(['v1.36.10', 'v1.36.4']);
    expect(resolveManifest(undefined, dir).id).toBe('v1.36.10');
    expect(resolveManifest('v1.36.4', dir).id).toBe('v1.36.4');
    expect(() => resolveManifest('v9.9.9', dir)).toThrow(/no release manifest "v9.9.9".*known: v1.36.10, v1.36.4/);
  });

  it('an exact id wins over a copy of the same version, the copy is never the default, and an ambiguous version is an error', async () => {
    const dir = await scratchDir('kubelet-lxc-releases-copy-');
    await writeFile(path.join(dir, 'v1.36.4.json'), JSON.stringify(valid));
    await writeFile(path.join(dir, 'v1.36.4-copy.json'), JSON.stringify(valid));
    expect(resolveManifest('v1.36.4', dir).id).toBe('v1.36.4');
    expect(resolveManifest('v1.36.4-copy', dir).id).toBe('v1.36.4-copy');
    expect(resolveManifest(undefined, dir).id).toBe('v1.36.4');
    expect(listManifests(dir).map((m) => m.id)).toEqual(['v1.36.4', 'v1.36.4-copy']);
    // the stamp version matches both, and is no manifest's id
    expect(() => resolveManifest('v1.36.4+rke2r1', dir)).toThrow(/"v1\.36\.4\+rke2r1" matches 2 release manifests in .*: v1\.36\.4, v1\.36\.4-copy; give one of these ids with --release/);
    // without a manifest named after the version, the newest version is ambiguous too
    const two = await scratchDir('kubelet-lxc-releases-two-');
    await writeFile(path.join(two, 'a.json'), JSON.stringify(valid));
    await writeFile(path.join(two, 'b.json'), JSON.stringify(valid));
    expect(() => resolveManifest(undefined, two)).toThrow(/the newest version v1\.36\.4 has 2 release manifests in .*: a, b; give one of these ids with --release/);
  });

  it('kubelet-lxc releases lists the shipped manifests with the default first', async () => {
    const res = await runCli(['releases', '--json']);
    expect(res.exitCode).toBe(0);
    const list = JSON.parse(res.stdout);
    // one release per supported minor, the newest first and the default
    expect(list.map((m: { kubernetes: { version: string } }) => m.kubernetes.version.split('.').slice(0, 2).join('.'))).toEqual(['v1.37', 'v1.36', 'v1.35']);
    expect(list.map((m: { default: boolean }) => m.default)).toEqual([true, false, false]);
    expect(list[0].kubernetes.version).toMatch(/^v1\.37\.\d+$/);
    expect(list.map((m: { patches: string }) => m.patches)).toEqual(['../patches/v1.37', '../patches/v1.36', '../patches/v1.35']);
  });

  it('a bad manifest file is a clear CLI error', async () => {
    const dir = await scratchDir('kubelet-lxc-badmanifest-');
    const f = path.join(dir, 'v1.36.4.json');
    await writeFile(f, JSON.stringify({ ...valid, go: { version: 'latest' } }));
    const res = await runCli(['build', '--release', f, '--dry-run']);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toContain('go.version: a Go version such as 1.26.5');
    expect(res.stderr).not.toMatch(/at .*\.ts:\d+/);
  });
});

describe('kine version for pin', () => {
  it('takes --kine, else the version the RKE2 release runs, and names the flag for an unknown release', async () => {
    const { kineVersionFor } = await import('../src/rke2/kine.js');
    expect(kineVersionFor('v1.36.4+rke2r1', undefined)).toBe('v0.16.4');
    expect(kineVersionFor('v1.99.0+rke2r1', 'v0.99.0')).toBe('v0.99.0');
    expect(() => kineVersionFor('v1.99.0+rke2r1', undefined)).toThrow(/which kine RKE2 v1\.99\.0\+rke2r1 runs is not known here: pass --kine <version>/);
    expect(() => kineVersionFor('v1.36.4+rke2r1', '0.16')).toThrow('--kine must be a kine release such as v0.16.4, got "0.16"');
  });
});

describe('Go versions', () => {
  it('compare by minor: a newer or equal minor is enough, whatever its patch or pre-release', () => {
    expect(minorAtLeast('1.26.5', '1.26.7')).toBe(true);
    expect(minorAtLeast('1.26', '1.26.7')).toBe(true);
    expect(minorAtLeast('1.27rc1', '1.26.7')).toBe(true);
    expect(minorAtLeast('2.0.0', '1.26.7')).toBe(true);
    expect(minorAtLeast('1.25.9', '1.26.0')).toBe(false);
    expect(minorAtLeast('1.9', '1.26')).toBe(false);
    expect(minorAtLeast('devel', '1.26')).toBe(false);
    expect(minorAtLeast('v1.37.1', '1.37')).toBe(true);
    expect(minorAtLeast('v1.36.4', '1.37')).toBe(false);
  });
});
