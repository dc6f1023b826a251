// kubelet-lxc upstream-watch (the scheduled workflow's logic) on a local module proxy (file://)
// serving fixture releases: the newest patch release served completely is found (one listed
// without its staging modules is passed over and said so, one served but not listed is found), a new minor is named, and --apply
// rebases the series there and writes the pull request body, or an issue body naming the patch,
// file and hunk when the series conflicts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { FIXTURE_DIR, FIXTURE_VERSION, cleanup, makeUpstreamRepo, runCli, tempDir } from './helpers/fixture.js';
import { FIXTURE_KINE_VERSION, removeModCache, serveFixtureRelease } from './helpers/goproxy.js';
import { exists } from '../src/lib/fsutil.js';

const CPUS = 'pkg/kubelet/cm/cpus.go';
let root: string;
let checkout: string;
let upstreamUrl: string;
const goEnv = () => ({ GOMODCACHE: path.join(root, 'modcache'), GOSUMDB: 'off', GOFLAGS: '-mod=mod', GONOSUMDB: '*' });
const proxyUrl = (name: string) => `file://${path.join(root, name)}`;

/** A proxy serving v1.99.0 and the given releases; a project with releases/v1.99.0.json and patches/v1.99. */
async function setup(name: string, releases: [string, (t: string) => Promise<void>][]): Promise<{ releases: string; series: string; proxy: string; out: string }> {
  const proxyDir = path.join(root, `proxy-${name}`);
  await serveFixtureRelease(checkout, proxyDir, FIXTURE_VERSION, FIXTURE_VERSION, async () => {});
  for (const [v, change] of releases) await serveFixtureRelease(checkout, proxyDir, FIXTURE_VERSION, v, change);
  const dir = path.join(root, name);
  const releasesDir = path.join(dir, 'releases');
  const pin = await runCli(['pin', FIXTURE_VERSION, '--kine', FIXTURE_KINE_VERSION, '--goproxy', proxyUrl(`proxy-${name}`), '--source-url', upstreamUrl, '--releases-dir', releasesDir, '--json'], goEnv());
  expect(pin.exitCode, pin.stderr).toBe(0);
  const file = path.join(releasesDir, `${FIXTURE_VERSION}.json`);
  await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), patches: '../patches/v1.99' }, null, 2));
  await cp(path.join(FIXTURE_DIR, 'patches'), path.join(dir, 'patches', 'v1.99'), { recursive: true });
  return { releases: releasesDir, series: path.join(dir, 'patches', 'v1.99'), proxy: proxyUrl(`proxy-${name}`), out: path.join(dir, 'watch-out') };
}

function watch(p: { releases: string; proxy: string; out: string }, extra: string[] = []) {
  return runCli(['upstream-watch', '--releases-dir', p.releases, '--goproxy', p.proxy, '--source', 'goproxy', '--workdir', path.join(root, 'work'), '--out', p.out, '--json', ...extra], goEnv());
}

const appendConst = async (t: string) => writeFile(path.join(t, CPUS), `${await readFile(path.join(t, CPUS), 'utf8')}\nconst MaxCPUs = 8192\n`);

beforeAll(async () => {
  root = await tempDir('watch');
  const upstream = await makeUpstreamRepo(root);
  upstreamUrl = upstream.url;
  checkout = path.join(root, 'checkout');
  await execa('git', ['clone', '-q', upstream.bare, checkout]);
}, 120_000);

afterAll(async () => {
  if (!root) return;
  await removeModCache(path.join(root, 'modcache'));
  await cleanup(root);
});

describe('kubelet-lxc upstream-watch', () => {
  it('plans the newest completely served patch release per minor and names a new minor; --apply rebases and writes the pull request', async () => {
    const p = await setup('clean', [
      ['v1.99.2', appendConst],
      ['v1.99.3', appendConst],
      ['v1.100.0', appendConst],
    ]);
    // v1.99.3 is listed, but its staging modules are not served: not complete
    for (const mod of ['client-go', 'component-base']) await rm(path.join(root, 'proxy-clean', 'k8s.io', mod, '@v', 'v0.99.3.zip'));
    // v1.99.2 is served but not listed (a caching proxy lists only what it holds): found by asking for it
    const list = path.join(root, 'proxy-clean', 'k8s.io', 'kubernetes', '@v', 'list');
    await writeFile(list, (await readFile(list, 'utf8')).replace('v1.99.2\n', ''));
    expect(await readFile(list, 'utf8')).not.toContain('v1.99.2');
    const plan = await watch(p);
    expect(plan.exitCode, plan.stderr).toBe(0);
    const planned = JSON.parse(plan.stdout);
    expect(planned.minors).toHaveLength(1);
    expect(planned.minors[0]).toMatchObject({ minor: 'v1.99', current: FIXTURE_VERSION, next: 'v1.99.2' });
    expect(planned.minors[0].incomplete.map((i: { version: string }) => i.version)).toEqual(['v1.99.3']);
    expect(planned.minors[0].incomplete[0].reason).toMatch(/staging modules not served at v0\.99\.3/);
    expect(planned.newMinor).toBe('v1.100.0');
    // the plan alone writes nothing
    expect(await exists(p.out)).toBe(false);
    expect((await readdir(p.releases)).sort()).toEqual([`${FIXTURE_VERSION}.json`]);

    const applied = await watch(p, ['--apply', '--no-matrix']);
    expect(applied.exitCode, applied.stderr).toBe(0);
    const out = JSON.parse(applied.stdout);
    expect(out.rebases).toEqual([expect.objectContaining({ minor: 'v1.99', from: FIXTURE_VERSION, to: 'v1.99.2', ok: true, written: true })]);
    // the minor's series now belongs to v1.99.2: its old manifest goes
    expect((await readdir(p.releases)).sort()).toEqual(['v1.99.2.json']);
    expect(out.pullRequest).toMatchObject({ title: 'Kubernetes v1.99.2: series rebased, matrix passed', branch: 'upstream-watch/v1.99.2' });
    const body = await readFile(out.pullRequest.bodyFile, 'utf8');
    expect(body).toMatch(/## v1\.99: v1\.99\.0 -> v1\.99\.2/);
    expect(body).toMatch(/\| 0001-Default-an-empty-CPU-list-instead-of-failing\.patch \| applied \|/);
    expect(out.issues).toEqual([]);
    expect(await readFile(path.join(p.out, 'new-minor.md'), 'utf8')).toMatch(/Kubernetes v1\.100\.0.*kubelet-lxc rebase <newest release> v1\.100\.0/);
    expect(JSON.parse(await readFile(path.join(p.out, 'watch.json'), 'utf8')).pullRequest.branch).toBe('upstream-watch/v1.99.2');
    // up to date afterwards
    const again = JSON.parse((await watch(p)).stdout);
    expect(again.minors[0]).toMatchObject({ current: 'v1.99.2', next: null });
  });

  it('a conflict becomes an issue body naming the patch, file and hunk; nothing is written', async () => {
    const p = await setup('conflict', [
      ['v1.99.5', (t) => writeFile(path.join(t, CPUS), '')],
    ]);
    const before = await readFile(path.join(p.series, 'series'), 'utf8');
    const res = await watch(p, ['--apply', '--no-matrix']);
    expect(res.exitCode, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(out.pullRequest).toBeNull();
    expect(out.issues).toHaveLength(1);
    expect(out.issues[0].title).toBe('Kubernetes v1.99.5: the v1.99 series does not carry over (0001-Default-an-empty-CPU-list-instead-of-failing.patch conflict)');
    const body = await readFile(out.issues[0].bodyFile, 'utf8');
    expect(body).toMatch(/\| 0001-Default-an-empty-CPU-list-instead-of-failing\.patch \| conflict \| pkg\/kubelet\/cm\/cpus\.go/);
    expect((await readdir(p.releases)).sort()).toEqual([`${FIXTURE_VERSION}.json`]);
    expect(await readFile(path.join(p.series, 'series'), 'utf8')).toBe(before);
  });
});
