// The goproxy source on a small multi-module fixture served by a local module proxy (file://):
// pin fills the hashes, the assembler lays out a tree like a git checkout and builds from it,
// and a tampered module is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { FIXTURE_DIR, FIXTURE_VERSION, cleanup, makeUpstreamRepo, runCli, tempDir, type UpstreamRepo } from './helpers/fixture.js';
import { FIXTURE_KINE_VERSION, makeLocalProxy, removeModCache, tamperZip, type LocalProxy } from './helpers/goproxy.js';
import { hashModuleDir } from '../src/lib/gomod.js';
import { exists } from '../src/lib/fsutil.js';
import { cp, writeFile } from 'node:fs/promises';

let root: string;
let upstream: UpstreamRepo;
let proxy: LocalProxy;
let manifestFile: string;
const goEnv = (modcache: string) => ({ GOMODCACHE: modcache, GOSUMDB: 'off', GOFLAGS: '-mod=mod', GONOSUMDB: '*' });

beforeAll(async () => {
  root = await tempDir('goproxy');
  upstream = await makeUpstreamRepo(root);
  const checkout = path.join(root, 'checkout');
  await execa('git', ['clone', '-q', '--branch', FIXTURE_VERSION, upstream.bare, checkout]);
  proxy = await makeLocalProxy(checkout, path.join(root, 'proxy'), FIXTURE_VERSION, 'v0.99.0');
});

afterAll(async () => {
  if (!root) return;
  for (const d of ['modcache', 'modcache-tampered', 'modcache-cachetamper']) await removeModCache(path.join(root, d));
  await cleanup(root);
});

describe('goproxy source', () => {
  it('pin writes a manifest with every module hash, the Go version and the tag commit', async () => {
    const releases = path.join(root, 'releases');
    const res = await runCli(['pin', FIXTURE_VERSION, '--kine', FIXTURE_KINE_VERSION, '--goproxy', proxy.url, '--source-url', upstream.url, '--releases-dir', releases, '--json'], goEnv(path.join(root, 'modcache')));
    expect(res.stderr).not.toMatch(/^error:/m);
    expect(res.exitCode).toBe(0);
    manifestFile = path.join(releases, `${FIXTURE_VERSION}.json`);
    const m = JSON.parse(await readFile(manifestFile, 'utf8'));
    expect(m.kubernetes).toEqual({ version: FIXTURE_VERSION, commit: upstream.commits[FIXTURE_VERSION], commitTime: '2026-03-01T12:00:00Z' });
    expect(m.go.version).toBe(upstream.goVersion);
    expect(m.stamp.version).toBe(`${FIXTURE_VERSION}+rke2r1`);
    expect(m.rke2.runtimeImage).toBe(`rancher/rke2-runtime:${FIXTURE_VERSION}-rke2r1`);
    expect(m.source.goproxy.staging.map((s: { path: string }) => s.path).sort()).toEqual(['k8s.io/client-go', 'k8s.io/component-base']);
    // The pinned hash is the Hash1 of exactly the files the proxy serves.
    const dir = path.join(root, 'modcache', 'k8s.io', `component-base@v0.99.0`);
    const cb = m.source.goproxy.staging.find((s: { path: string }) => s.path === 'k8s.io/component-base');
    expect(cb.h1).toBe(await hashModuleDir(dir, 'k8s.io/component-base', 'v0.99.0'));
    // kine, the L2 lab's datastore shim, pinned the same way
    expect(m.kine.version).toBe(FIXTURE_KINE_VERSION);
    expect(m.kine.h1).toBe(await hashModuleDir(path.join(root, 'modcache', 'github.com', 'k3s-io', `kine@${FIXTURE_KINE_VERSION}`), 'github.com/k3s-io/kine', FIXTURE_KINE_VERSION));
    // Point the manifest at the fixture's patch series, as a maintainer would for a new minor.
    m.patches = path.relative(releases, path.join(FIXTURE_DIR, 'patches'));
    await writeFile(manifestFile, `${JSON.stringify(m, null, 2)}\n`);
  });

  it("pin takes the commit time from the proxy, not from a .info the shared module cache had rewritten", async () => {
    // What a go command run inside a git checkout of the tag leaves behind: a VCS origin and that day's time.
    const info = path.join(root, 'modcache', 'cache', 'download', 'k8s.io', 'kubernetes', '@v', `${FIXTURE_VERSION}.info`);
    await execa('chmod', ['u+w', info]);
    await writeFile(info, JSON.stringify({ Version: FIXTURE_VERSION, Time: '2031-01-02T03:04:05Z', Origin: { VCS: 'git', URL: 'file:///x', Ref: `refs/tags/${FIXTURE_VERSION}` } }));
    const releases = path.join(root, 'releases-again');
    const res = await runCli(['pin', FIXTURE_VERSION, '--kine', FIXTURE_KINE_VERSION, '--goproxy', proxy.url, '--source-url', upstream.url, '--releases-dir', releases, '--json'], goEnv(path.join(root, 'modcache')));
    expect(res.exitCode, res.stderr).toBe(0);
    const m = JSON.parse(await readFile(path.join(releases, `${FIXTURE_VERSION}.json`), 'utf8'));
    expect(m.kubernetes.commitTime).toBe('2026-03-01T12:00:00Z');
    expect(JSON.parse(await readFile(info, 'utf8')).Time).toBe('2031-01-02T03:04:05Z');
  });

  it('assembles a tree laid out like a git checkout of the tag and builds a stamped kubelet from it', async () => {
    const workdir = path.join(root, 'w');
    const res = await runCli(['build', '--release', manifestFile, '--source', 'goproxy', '--goproxy', proxy.url, '--workdir', workdir, '--builder-base', 'local', '--json'], goEnv(path.join(root, 'modcache')));
    expect(res.stderr).not.toMatch(/^error:/m);
    expect(res.exitCode).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(out.source.kind).toBe('goproxy');
    expect(out.source.verification[0]).toMatch(/3 modules verified against the h1: hashes pinned in the manifest/);
    expect(out.source.verification[1]).toMatch(/checksum database: disabled/);
    const tree = path.join(workdir, 'cache', 'source', 'goproxy');
    const [treeDir] = (await execa('ls', [tree])).stdout.split('\n').filter((n) => !n.endsWith('.json'));
    const t = path.join(tree, treeDir!);
    for (const f of ['go.mod', 'go.work', '.go-version', 'cmd/kubelet/main.go', 'staging/src/k8s.io/component-base/version/base.go', 'staging/src/k8s.io/client-go/pkg/version/base.go', 'vendor/modules.txt']) {
      expect(await exists(path.join(t, f)), f).toBe(true);
    }
    const log = await execa('git', ['log', '--format=%H %aI %cI', '--all'], { cwd: t });
    const lines = log.stdout.split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^[0-9a-f]{40} 2026-03-01T12:00:00(Z|\+00:00) 2026-03-01T12:00:00(Z|\+00:00)$/);
    expect(lines[0]!.split(' ')[0]).toBe(out.source.treeCommit);
    expect((await execa('git', ['status', '--porcelain'], { cwd: t })).stdout).toBe('');
    // The same series applied; the stamp is the pinned one.
    expect(out.patch.applied).toEqual(['0001-Default-an-empty-CPU-list-instead-of-failing.patch']);
    const amd64 = out.binaries.find((b: { program: string; platform: string }) => b.program === 'kubelet' && b.platform === 'linux/amd64');
    expect((await execa(amd64.path, ['--version'])).stdout).toBe(`Kubernetes ${FIXTURE_VERSION}+rke2r1`);
    expect(out.binaries.filter((b: { program: string }) => b.program === 'kubelet').map((b: { platform: string }) => b.platform).sort()).toEqual(['linux/amd64', 'linux/arm64']);
    // Assembling again elsewhere gives the same commit: the tree is reproducible.
    const again = await runCli(['source', '--release', manifestFile, '--source', 'goproxy', '--goproxy', proxy.url, '--workdir', path.join(root, 'w-again'), '--json'], goEnv(path.join(root, 'modcache')));
    expect(again.exitCode).toBe(0);
    expect(JSON.parse(again.stdout).source.treeCommit).toBe(out.source.treeCommit);
  });

  it('refuses a tampered module zip served by the proxy', async () => {
    const bad = path.join(root, 'proxy-tampered');
    await cp(proxy.dir, bad, { recursive: true });
    await tamperZip(bad, 'k8s.io/component-base', 'v0.99.0', 'version/base.go', 'package version\n\nvar gitVersion = "evil"\n');
    const workdir = path.join(root, 'w-tampered');
    const res = await runCli(['source', '--release', manifestFile, '--source', 'goproxy', '--goproxy', `file://${bad}`, '--workdir', workdir], goEnv(path.join(root, 'modcache-tampered')));
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toContain('module k8s.io/component-base@v0.99.0 does not match its pinned hash');
    expect(await exists(path.join(workdir, 'cache', 'source', 'goproxy'))).toBe(false);
  });

  it('refuses a module whose extracted files in the module cache were altered', async () => {
    const modcache = path.join(root, 'modcache-cachetamper');
    const first = await runCli(['source', '--release', manifestFile, '--source', 'goproxy', '--goproxy', proxy.url, '--workdir', path.join(root, 'w-ct1')], goEnv(modcache));
    expect(first.exitCode).toBe(0);
    const file = path.join(modcache, 'k8s.io', 'client-go@v0.99.0', 'pkg', 'version', 'base.go');
    await execa('chmod', ['u+w', file, path.dirname(file)]);
    await writeFile(file, (await readFile(file, 'utf8')).replace('buildDate    = "1970-01-01T00:00:00Z"', 'buildDate = "tampered"'));
    const res = await runCli(['source', '--release', manifestFile, '--source', 'goproxy', '--goproxy', proxy.url, '--workdir', path.join(root, 'w-ct2')], goEnv(modcache));
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toMatch(/module k8s\.io\/client-go@v0\.99\.0 in .* hashes to h1:.*, pinned h1:/);
  });
});
