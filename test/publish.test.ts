// `kubelet-lxc publish` through the real CLI against a local server speaking GitHub's release
// endpoints: first publish, idempotent rerun, digest-less servers, conflicts and --replace,
// dry runs, and the token never showing in output.
import { randomBytes } from 'node:crypto';
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addArtifacts, writeChecksums } from '../src/stages/package/artifacts.js';
import { startFakeGitHub, type FakeGitHub } from './helpers/fake-github.js';
import { expectNoToken, expectReleaseMatches, makeFixture, newToken, OWNER, parseReport, publishCli, relist, REPO, TAG, type Fixture } from './publish-harness.js';

let fx: Fixture;
let gh: FakeGitHub;
let token: string;

async function setup(opts: { digests?: boolean } = {}) {
  token = newToken();
  fx = await makeFixture();
  gh = await startFakeGitHub({ token, owner: OWNER, repo: REPO, digests: opts.digests });
}

afterEach(async () => {
  await gh?.close();
  await fx?.cleanup();
});

describe('publish: first run and reruns', () => {
  beforeEach(() => setup());

  it('creates a draft, uploads every asset once, verifies, then publishes', async () => {
    const r = await publishCli(fx, gh, token, ['--json']);
    expect(r.exitCode, r.all).toBe(0);
    expectNoToken(r, token);
    const report = parseReport(r);
    expect(report.published).toBe(true);
    expect(report.release.origin).toBe('created');
    expect(report.assets.map((a) => a.action)).toEqual(report.assets.map(() => 'uploaded'));
    // kinds come from the package stage's artifact lists
    expect(report.assets.find((a) => a.name === 'kubelet-linux-amd64.tar.gz')?.kind).toBe('kubelet-tarball');
    expect(report.assets.find((a) => a.name === 'artifacts-linux-amd64.json')?.kind).toBe('artifact-list');
    expect(report.assets.find((a) => a.name === 'SHA256SUMS')?.kind).toBe('checksums');
    // SHA256SUMS and SHA512SUMS go up after everything they cover.
    expect(report.assets.slice(-2).map((a) => a.name)).toEqual(['SHA256SUMS', 'SHA512SUMS']);

    const rel = await expectReleaseMatches(gh, fx.dist, true);
    expect(rel.prerelease).toBe(false);
    expect(rel.body).toContain('Kubernetes v1.36.4');
    expect(rel.body).toContain(`gh attestation verify <asset> --repo ${OWNER}/${REPO}`);
    // Created as a draft, and published only after the last upload.
    const create = gh.requests.findIndex((q) => q.method === 'POST' && q.path.endsWith('/releases'));
    const publish = gh.requests.findIndex((q) => q.method === 'PATCH');
    const lastUpload = gh.requests.map((q) => q.method === 'POST' && q.path.startsWith('/api/uploads/')).lastIndexOf(true);
    expect(create).toBeGreaterThanOrEqual(0);
    expect(lastUpload).toBeGreaterThan(create);
    expect(publish).toBeGreaterThan(lastUpload);
    expect(gh.uploads()).toHaveLength(rel.assets.length);
    // Every API request carried the token; none went without.
    expect(gh.requests.filter((q) => q.path.startsWith('/api/')).every((q) => q.authorization === `token ${token}`)).toBe(true);
  });

  it('a rerun uploads nothing, deletes nothing, and keeps the release published', async () => {
    expect((await publishCli(fx, gh, token, [])).exitCode).toBe(0);
    const before = gh.requests.length;
    const r = await publishCli(fx, gh, token, ['--json']);
    expect(r.exitCode, r.all).toBe(0);
    expectNoToken(r, token);
    const report = parseReport(r);
    expect(report.release.origin).toBe('existing');
    expect(report.assets.map((a) => a.action)).toEqual(report.assets.map(() => 'skipped'));
    const rerun = gh.requests.slice(before);
    expect(rerun.filter((q) => q.method !== 'GET')).toEqual([]);
    // The digest field answers "same bytes?": no downloads.
    expect(rerun.filter((q) => q.path.startsWith('/storage/'))).toEqual([]);
    await expectReleaseMatches(gh, fx.dist, true);
  });

  it('refuses an asset that differs, changing nothing; --replace replaces it and deletes strays', async () => {
    expect((await publishCli(fx, gh, token, [])).exitCode).toBe(0);
    const rel = gh.release(TAG)!;
    // Someone attached a file by hand, and the build now gives a different arm64 tarball.
    rel.assets.push({ ...rel.assets[0]!, id: 99_999, name: 'notes.txt', bytes: Buffer.from('hand-made\n'), size: 10 });
    await writeFile(path.join(fx.dist, 'kubelet-linux-arm64.tar.gz'), randomBytes(1024 * 1024));
    await relist(fx.dist);

    const before = gh.requests.length;
    const refused = await publishCli(fx, gh, token, []);
    expect(refused.exitCode).toBe(1);
    expectNoToken(refused, token);
    expect(refused.stderr).toContain('kubelet-linux-arm64.tar.gz: the release has');
    expect(refused.stderr).toContain('notes.txt: on the release but not in dist');
    expect(refused.stderr).toContain('--replace');
    expect(gh.requests.slice(before).filter((q) => q.method !== 'GET')).toEqual([]);

    const r = await publishCli(fx, gh, token, ['--replace', '--json']);
    expect(r.exitCode, r.all).toBe(0);
    const report = parseReport(r);
    const action = Object.fromEntries(report.assets.map((a) => [a.name, a.action]));
    expect(action['kubelet-linux-arm64.tar.gz']).toBe('replaced');
    for (const n of ['sha256sum-arm64.txt', 'sha512sum-arm64.txt', 'artifacts-linux-arm64.json', 'SHA256SUMS', 'SHA512SUMS']) expect(action[n], n).toBe('replaced');
    expect(action['kubelet-linux-amd64.tar.gz']).toBe('skipped');
    await expectReleaseMatches(gh, fx.dist, true);
  });

  it('a dry run prints the plan and changes nothing, before and after a publish', async () => {
    const plan = await publishCli(fx, gh, token, ['--dry-run']);
    expect(plan.exitCode, plan.all).toBe(0);
    expectNoToken(plan, token);
    expect(plan.stdout).toContain(`would create release "kubelet-lxc ${TAG}" (tag ${TAG}) in ${OWNER}/${REPO}`);
    expect(plan.stdout).toMatch(/^ {2}upload +kubelet-linux-amd64\.tar\.gz +3\.0 MiB +sha256:[0-9a-f]{64} +kubelet-tarball$/m);
    expect(plan.stdout).toMatch(/^ {2}upload +SHA256SUMS .* checksums$/m);
    expect(plan.stdout).toContain('then publish the release');
    expect(gh.requests.filter((q) => q.method !== 'GET')).toEqual([]);
    expect(gh.releases).toEqual([]);

    expect((await publishCli(fx, gh, token, [])).exitCode).toBe(0);
    const again = await publishCli(fx, gh, token, ['--dry-run', '--json']);
    expect(again.exitCode, again.all).toBe(0);
    const report = parseReport(again);
    expect(report.dryRun).toBe(true);
    expect(report.assets.map((a) => `${a.action}/${a.plan}`)).toEqual(report.assets.map(() => 'planned/skip'));
    expect(report.wouldPublish).toBe(false);
    expect(report.published).toBe(true);
  });

  it('a dry run without a token plans from dist/ alone; a real run without one is refused', async () => {
    const plan = await publishCli(fx, gh, undefined, ['--dry-run']);
    expect(plan.exitCode, plan.all).toBe(0);
    expect(plan.stdout).toContain('no token: the release was not read');
    expect(plan.stdout).toMatch(/^ {2}upload +rke2-runtime-arm64\.tar /m);
    expect(gh.requests).toEqual([]);

    const refused = await publishCli(fx, gh, undefined, []);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain('set GITHUB_TOKEN (or GH_TOKEN)');
    expect(gh.requests).toEqual([]);
  });

  it('finds its draft on a later page of the release list (the tags endpoint does not show drafts)', async () => {
    for (let i = 0; i < 140; i++) {
      gh.releases.push({ id: i + 1, tag_name: `v0.0.${i}`, target_commitish: 'main', name: null, body: null, draft: false, prerelease: false, created_at: '2025-01-01T00:00:00Z', published_at: '2025-01-01T00:00:00Z', assets: [] });
    }
    // An earlier run's draft, older than everything else: the last page of the list.
    gh.releases.push({ id: 0, tag_name: TAG, target_commitish: 'main', name: `kubelet-lxc ${TAG}`, body: '', draft: true, prerelease: false, created_at: '2024-12-01T00:00:00Z', published_at: null, assets: [] });
    const r = await publishCli(fx, gh, token, ['--json']);
    expect(r.exitCode, r.all).toBe(0);
    const report = parseReport(r);
    expect(report.release).toMatchObject({ id: 0, origin: 'existing', draft: false });
    expect(gh.requests.filter((q) => q.method === 'GET' && q.path.endsWith('/releases')).map((q) => q.query)).toEqual(['?per_page=100&page=1', '?per_page=100&page=2']);
    expect(gh.requests.filter((q) => q.method === 'POST' && q.path.endsWith('/releases'))).toEqual([]);
    await expectReleaseMatches(gh, fx.dist, true);
  });

  it('takes the token from GH_TOKEN too', async () => {
    const r = await publishCli(fx, gh, undefined, ['--json'], { GH_TOKEN: token });
    expect(r.exitCode, r.all).toBe(0);
    expectNoToken(r, token);
    expect(parseReport(r).published).toBe(true);
    await expectReleaseMatches(gh, fx.dist, true);
  });

  it('refuses a missing or empty dist with a message saying to run the build first', async () => {
    await rm(fx.dist, { recursive: true, force: true });
    const missing = await publishCli(fx, gh, token, ['--dry-run']);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/does not exist\. Run the build first: kubelet-lxc build --release v1\.36\.4/);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(fx.dist, { recursive: true });
    const empty = await publishCli(fx, gh, token, []);
    expect(empty.exitCode).toBe(1);
    expect(empty.stderr).toContain('has no files. Run the build first');
    expect(gh.requests).toEqual([]);
  });

  it('publishes the checksum files written from the artifact lists as they are, and refuses stale ones', async () => {
    const sums = await readFile(path.join(fx.dist, 'SHA256SUMS'));
    const r = await publishCli(fx, gh, token, ['--json']);
    expect(r.exitCode, r.all).toBe(0);
    const rel = await expectReleaseMatches(gh, fx.dist, true);
    expect(rel.assets.find((a) => a.name === 'SHA256SUMS')!.bytes.equals(sums)).toBe(true);
    for (const [tool, file] of [['sha512sum', 'SHA512SUMS'], ['sha256sum', 'sha256sum-amd64.txt'], ['sha512sum', 'sha512sum-arm64.txt']] as const) {
      const check = await execa(tool, ['-c', file], { cwd: fx.dist, reject: false });
      expect(check.exitCode, check.stdout).toBe(0);
    }

    // A file put into dist/ by hand: in no list, so nothing says what it is.
    const extra = path.join(fx.root, 'kubelet-lxc-config.yaml');
    await writeFile(extra, 'kubelet-arg: []\n');
    await copyFile(extra, path.join(fx.dist, 'kubelet-lxc-config.yaml'));
    const unlisted = await publishCli(fx, gh, token, []);
    expect(unlisted.exitCode).toBe(1);
    expect(unlisted.stderr).toContain('kubelet-lxc-config.yaml: in dist/, but in no artifact list');
    expect(unlisted.stderr).toContain('kubelet-lxc artifacts add');
    // Listed, but the checksum files not rewritten: both aggregate files are now stale.
    await addArtifacts(fx.dist, 'linux/amd64', [extra], 'rke2-config');
    const stale = await publishCli(fx, gh, token, []);
    expect(stale.exitCode).toBe(1);
    expect(stale.stderr).toContain('SHA256SUMS does not match the files');
    expect(stale.stderr).toContain('does not list kubelet-lxc-config.yaml');
    expect(stale.stderr).toContain('kubelet-lxc artifacts sums');
    await writeChecksums(fx.dist);
    await writeFile(path.join(fx.dist, 'SHA512SUMS'), (await readFile(path.join(fx.dist, 'SHA512SUMS'), 'utf8')).replace(/^[0-9a-f]{8}/, '00000000'));
    const bad512 = await publishCli(fx, gh, token, []);
    expect(bad512.exitCode).toBe(1);
    expect(bad512.stderr).toMatch(/SHA512SUMS does not match the files[^]*wrong hash for /);
    await writeChecksums(fx.dist);
    // the release is out already: the new list and sums replace the old ones
    const again = await publishCli(fx, gh, token, ['--replace', '--json']);
    expect(again.exitCode, again.all).toBe(0);
    expect(parseReport(again).assets.find((a) => a.name === 'kubelet-lxc-config.yaml')).toMatchObject({ kind: 'rke2-config', action: 'uploaded' });
  });

  it('refuses a dist/ that does not match its artifact lists, naming each file, and one without lists', async () => {
    await writeFile(path.join(fx.dist, 'kubelet-linux-amd64.spdx.json'), '{"changed":true}');
    await rm(path.join(fx.dist, 'rke2-runtime-arm64.tar'));
    const r = await publishCli(fx, gh, token, ['--dry-run']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/kubelet-linux-amd64\.spdx\.json: changed since it was listed \(the list says \d+ bytes sha256 [0-9a-f]{64}, the file has 16 bytes/);
    expect(r.stderr).toContain('rke2-runtime-arm64.tar: listed (rke2-runtime-image), but not in dist/');
    for (const n of ['artifacts-linux-amd64.json', 'artifacts-linux-arm64.json']) await rm(path.join(fx.dist, n));
    const none = await publishCli(fx, gh, token, ['--dry-run']);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toContain('no artifact list (artifacts-linux-<arch>.json) in');
    expect(none.stderr).toContain('Run the build first');
    expect(gh.requests.filter((q) => q.method !== 'GET')).toEqual([]);
  });

  it('refuses a SHA256SUMS in dist that does not match the files', async () => {
    await writeFile(path.join(fx.dist, 'SHA256SUMS'), `${'0'.repeat(64)}  kubelet-linux-amd64.tar.gz\n`);
    const r = await publishCli(fx, gh, token, []);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('wrong hash for kubelet-linux-amd64.tar.gz');
    expect(r.stderr).toContain('does not list kubelet-linux-arm64.tar.gz');
    expect(gh.requests.filter((q) => q.method !== 'GET')).toEqual([]);
  });
});

describe('publish: a server without asset digests', () => {
  beforeEach(() => setup({ digests: false }));

  it('compares by downloading (storage gets no Authorization header), and a rerun uploads nothing', async () => {
    const first = await publishCli(fx, gh, token, ['--json']);
    expect(first.exitCode, first.all).toBe(0);
    // Uploaded assets are verified by downloading them when GitHub gives no digest.
    const rel = await expectReleaseMatches(gh, fx.dist, true);
    expect(gh.requests.filter((q) => q.path.startsWith('/storage/') && q.status === 200)).toHaveLength(rel.assets.length);

    const before = gh.requests.length;
    const r = await publishCli(fx, gh, token, ['--json']);
    expect(r.exitCode, r.all).toBe(0);
    expectNoToken(r, token);
    expect(parseReport(r).assets.every((a) => a.action === 'skipped')).toBe(true);
    const rerun = gh.requests.slice(before);
    expect(rerun.filter((q) => q.method !== 'GET')).toEqual([]);
    const downloads = rerun.filter((q) => q.path.startsWith('/storage/'));
    expect(downloads).toHaveLength(rel.assets.length);
    expect(downloads.every((q) => q.authorization === undefined && q.status === 200)).toBe(true);
    await expectReleaseMatches(gh, fx.dist, true);
  });
});

describe('publish: the token stays secret', () => {
  it('masks a token that a server echoes back in an error', async () => {
    token = newToken();
    fx = await makeFixture({ bigBytes: 1024 });
    gh = await startFakeGitHub({ token: newToken(), owner: OWNER, repo: REPO, echoCredentialsOn401: true });
    const r = await publishCli(fx, gh, token, []);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('Bad credentials (got token ***)');
    expect(r.stderr).toContain('check GITHUB_TOKEN');
    expectNoToken(r, token);
    // The server did receive it (so the masking is what kept it out of the output).
    expect(gh.requests.some((q) => q.authorization === `token ${token}`)).toBe(true);
  });
});
