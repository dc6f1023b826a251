// kubelet-lxc rebase on fixture releases served by a local module proxy (file://): the fixture's
// one-patch series of v1.99.0 carried to a release where it applies as it is, one where its
// context moved (3-way), one that already has the change (dropped) and one that changed the very
// lines it patches (conflict: nothing written). Each written series is then applied by the
// product's patch stage (plain git am, no 3-way), as a build would.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { FIXTURE_DIR, FIXTURE_VERSION, cleanup, makeUpstreamRepo, runCli, tempDir } from './helpers/fixture.js';
import { FIXTURE_KINE_VERSION, removeModCache, serveFixtureRelease, type LocalProxy } from './helpers/goproxy.js';
import { exists, fileHash } from '../src/lib/fsutil.js';

const PATCH = '0001-Default-an-empty-CPU-list-instead-of-failing.patch';
const CPUS = 'pkg/kubelet/cm/cpus.go';

let root: string;
let proxy: LocalProxy;
const goEnv = () => ({ GOMODCACHE: path.join(root, 'modcache'), GOSUMDB: 'off', GOFLAGS: '-mod=mod', GONOSUMDB: '*' });

/** A release of the fixture: v1.99.0's tree changed by `change`, served by the proxy at `version`. */
const release = (checkout: string, version: string, change: (tree: string) => Promise<void>) => serveFixtureRelease(checkout, path.join(root, 'proxy'), FIXTURE_VERSION, version, change);

async function editFile(file: string, from: string, to: string): Promise<void> {
  const text = await readFile(file, 'utf8');
  expect(text.includes(from), `${file} has ${from}`).toBe(true);
  await writeFile(file, text.replace(from, to));
}

/** A maintainer's checkout: releases/v1.99.0.json and patches/v1.99 (the fixture series). */
async function project(name: string): Promise<{ releases: string; series: string }> {
  const dir = path.join(root, name);
  await cp(path.join(root, 'releases'), path.join(dir, 'releases'), { recursive: true });
  await cp(path.join(FIXTURE_DIR, 'patches'), path.join(dir, 'patches', 'v1.99'), { recursive: true });
  return { releases: path.join(dir, 'releases'), series: path.join(dir, 'patches', 'v1.99') };
}

async function rebase(p: { releases: string }, version: string, extra: string[] = []) {
  const res = await runCli(['rebase', FIXTURE_VERSION, version, '--releases-dir', p.releases, '--source', 'goproxy', '--goproxy', proxy.url, '--workdir', path.join(root, 'work'), '--no-matrix', '--json', ...extra], goEnv());
  return { res, report: res.stdout ? JSON.parse(res.stdout) : undefined };
}

/** The product's patch stage on the written manifest: the series must apply with plain git am. */
async function patchStage(p: { releases: string }, version: string) {
  return runCli(['patch', '--release', path.join(p.releases, `${version}.json`), '--source', 'goproxy', '--goproxy', proxy.url, '--workdir', path.join(root, 'work'), '--json'], goEnv());
}

beforeAll(async () => {
  root = await tempDir('rebase');
  const upstream = await makeUpstreamRepo(root);
  const checkout = path.join(root, 'checkout');
  await execa('git', ['clone', '-q', upstream.bare, checkout]);
  await release(checkout, FIXTURE_VERSION, async () => {});
  // clean: a change far from the patch
  await release(checkout, 'v1.99.2', async (t) => {
    await writeFile(path.join(t, CPUS), `${await readFile(path.join(t, CPUS), 'utf8')}\n// MaxCPUs is the most CPUs a list may name.\nconst MaxCPUs = 8192\n`);
  });
  // 3-way: the doc comment in the patch's context was reworded
  await release(checkout, 'v1.99.3', (t) => editFile(path.join(t, CPUS), '// CountCPUs parses a CPU list such as "0-3"', '// CountCPUs counts the CPUs of a list such as "0-3"'));
  // already upstream: the release carries the patch's change itself
  await release(checkout, 'v1.99.4', async (t) => {
    await execa('git', ['apply', path.join(FIXTURE_DIR, 'patches', PATCH)], { cwd: t });
  });
  // conflict: upstream rewrote the lines the patch goes between
  await release(checkout, 'v1.99.5', async (t) => {
    await editFile(path.join(t, CPUS), 'func CountCPUs(list string) (int, error) {\n\tfirst, last, found := strings.Cut(list, "-")', 'func CountCPUs(cpuList string) (int, error) {\n\tfirst, last, found := strings.Cut(cpuList, "-")\n\tlist := cpuList');
  });
  proxy = { dir: path.join(root, 'proxy'), url: `file://${path.join(root, 'proxy')}` };
  const pin = await runCli(['pin', FIXTURE_VERSION, '--kine', FIXTURE_KINE_VERSION, '--goproxy', proxy.url, '--source-url', upstream.url, '--releases-dir', path.join(root, 'releases'), '--json'], goEnv());
  expect(pin.exitCode, pin.stderr).toBe(0);
  const file = path.join(root, 'releases', `${FIXTURE_VERSION}.json`);
  const m = JSON.parse(await readFile(file, 'utf8'));
  m.patches = '../patches/v1.99';
  await writeFile(file, `${JSON.stringify(m, null, 2)}\n`);
}, 300_000);

afterAll(async () => {
  if (!root) return;
  await removeModCache(path.join(root, 'modcache'));
  await cleanup(root);
});

describe('kubelet-lxc rebase', () => {
  it('clean: the series applies as it is; the new manifest and series are written and build from plain git am', async () => {
    const p = await project('clean');
    const { res, report } = await rebase(p, 'v1.99.2');
    expect(res.exitCode, res.stderr).toBe(0);
    expect(report.patches).toEqual([{ patch: PATCH, outcome: 'applied' }]);
    expect(report.written).toBe(true);
    const m = JSON.parse(await readFile(path.join(p.releases, 'v1.99.2.json'), 'utf8'));
    expect(m.kubernetes.version).toBe('v1.99.2');
    expect(m.patches).toBe('../patches/v1.99');
    expect(m.kine.version).toBe(FIXTURE_KINE_VERSION);
    expect(m.source.goproxy.staging.map((s: { version: string }) => s.version)).toEqual(['v0.99.2', 'v0.99.2']);
    expect((await readFile(path.join(p.series, 'series'), 'utf8')).split('\n').filter((l) => l && !l.startsWith('#'))).toEqual([PATCH]);
    expect(await readFile(path.join(p.series, 'series'), 'utf8')).toMatch(/^# kubelet-lxc patch series for Kubernetes v1\.99\.2/);
    // the series folder's other files came along (the doctor)
    expect(await exists(path.join(p.series, 'doctor', 'cmd', 'kubelet-lxc-doctor', 'main.go'))).toBe(true);
    // nothing half-written beside it
    expect((await readdir(path.dirname(p.series))).sort()).toEqual(['v1.99']);
    const applied = await patchStage(p, 'v1.99.2');
    expect(applied.exitCode, applied.stderr).toBe(0);
    expect(JSON.parse(applied.stdout).patch.applied).toEqual([PATCH]);
    // the report is kept beside the run's other reports
    expect(await readFile(report.reportFile.replace(/\.json$/, '.md'), 'utf8')).toMatch(/\| 0001-Default-an-empty-CPU-list-instead-of-failing\.patch \| applied \|/);
  });

  it('3-way: a moved context merges; the refreshed patch applies to the new release without a 3-way merge', async () => {
    const p = await project('three-way');
    const before = await readFile(path.join(p.series, PATCH), 'utf8');
    const { res, report } = await rebase(p, 'v1.99.3');
    expect(res.exitCode, res.stderr).toBe(0);
    // 3-way: plain git am of the old patch failed on v1.99.3, the merge with v1.99.0's blobs did not
    expect(report.patches).toEqual([{ patch: PATCH, outcome: '3-way' }]);
    const after = await readFile(path.join(p.series, PATCH), 'utf8');
    expect(after).not.toBe(before);
    expect(after).toContain(' // CountCPUs counts the CPUs of a list such as "0-3"');
    const applied = await patchStage(p, 'v1.99.3');
    expect(applied.exitCode, applied.stderr).toBe(0);
  });

  it('already upstream: the patch is dropped from the series and said so', async () => {
    const p = await project('upstream');
    const { res, report } = await rebase(p, 'v1.99.4');
    expect(res.exitCode, res.stderr).toBe(0);
    expect(report.patches).toEqual([{ patch: PATCH, outcome: 'upstream' }]);
    expect(report.notes.join('\n')).toMatch(/0001-Default-an-empty-CPU-list-instead-of-failing\.patch is already upstream in v1\.99\.4: dropped/);
    expect(await exists(path.join(p.series, PATCH))).toBe(false);
    expect((await readFile(path.join(p.series, 'series'), 'utf8')).split('\n').filter((l) => l && !l.startsWith('#'))).toEqual([]);
    const applied = await patchStage(p, 'v1.99.4');
    expect(applied.exitCode, applied.stderr).toBe(0);
    expect(JSON.parse(applied.stdout).patch.applied).toEqual([]);
  });

  it('conflict: names the patch, file and hunk, exits 1 and writes nothing', async () => {
    const p = await project('conflict');
    const seriesBefore = await fileHash(path.join(p.series, PATCH));
    const { res, report } = await rebase(p, 'v1.99.5');
    expect(res.exitCode).toBe(1);
    expect(report.written).toBe(false);
    expect(report.patches).toEqual([{ patch: PATCH, outcome: 'conflict', conflicts: [{ file: CPUS, hunks: ['@@ -9,6 +9,7 @@ import ('] }] }]);
    expect(await exists(path.join(p.releases, 'v1.99.5.json'))).toBe(false);
    expect(await fileHash(path.join(p.series, PATCH))).toBe(seriesBefore);
    expect(await readFile(report.reportFile.replace(/\.json$/, '.md'), 'utf8')).toMatch(/conflict \| pkg\/kubelet\/cm\/cpus\.go: @@ -9,6 \+9,7 @@ import \(/);
    // text output says the same for a person
    const text = await runCli(['rebase', FIXTURE_VERSION, 'v1.99.5', '--releases-dir', p.releases, '--source', 'goproxy', '--goproxy', proxy.url, '--workdir', path.join(root, 'work'), '--no-matrix'], goEnv());
    expect(text.exitCode).toBe(1);
    expect(text.stdout).toMatch(/Nothing written: 1 patch\(es\) conflict/);
  });

  it('refuses a version that is not one, and an existing manifest without --replace', async () => {
    const p = await project('refuse');
    const bad = await rebase(p, '1.99');
    expect(bad.res.exitCode).toBe(1);
    expect(bad.res.stderr).toMatch(/"1\.99" is not a Kubernetes version such as v1\.37\.1/);
    const m = JSON.parse(await readFile(path.join(p.releases, `${FIXTURE_VERSION}.json`), 'utf8'));
    await writeFile(path.join(p.releases, 'v1.99.2.json'), JSON.stringify({ ...m, kubernetes: { ...m.kubernetes, version: 'v1.99.2' }, stamp: { version: 'v1.99.2+rke2r1' } }));
    const again = await rebase(p, 'v1.99.2');
    expect(again.res.exitCode).toBe(1);
    expect(again.res.stderr).toMatch(/v1\.99\.2\.json exists; pass --replace/);
  });
});
