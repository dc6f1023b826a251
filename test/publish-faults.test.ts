// `kubelet-lxc publish` through the real CLI against the local GitHub stand-in, with faults:
// 502s, secondary rate limits with retry-after, connections cut mid-upload (recovered in the
// same run, or by a rerun), and responses lost after the work was done. After each, the
// release holds every asset exactly once with the right bytes, and the token never shows.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeGitHub, type FakeGitHub } from './helpers/fake-github.js';
import { expectNoToken, expectReleaseMatches, makeFixture, newToken, OWNER, parseReport, publishCli, REPO, TAG, type Fixture } from './publish-harness.js';

let fx: Fixture;
let gh: FakeGitHub;
let token: string;

beforeEach(async () => {
  token = newToken();
  fx = await makeFixture();
  gh = await startFakeGitHub({ token, owner: OWNER, repo: REPO });
});

afterEach(async () => {
  await gh.close();
  await fx.cleanup();
});

const UPLOAD = /^\/api\/uploads\//;
const BIG = 'kubelet-linux-amd64.tar.gz';

describe('publish under faults', () => {
  it('retries a 502 on creating the release, on an upload and on publishing, then succeeds', async () => {
    gh.faults.push(
      { method: 'POST', path: /\/releases$/, kind: { type: 'status', status: 502 } },
      { method: 'POST', path: UPLOAD, assetName: BIG, kind: { type: 'status', status: 502 } },
      { method: 'PATCH', kind: { type: 'status', status: 503 } },
    );
    const r = await publishCli(fx, gh, token, ['--json']);
    expect(r.exitCode, r.all).toBe(0);
    expectNoToken(r, token);
    expect(r.stderr).toMatch(/create release .*: server error 502; retrying in/);
    expect(r.stderr).toMatch(new RegExp(`upload ${BIG.replace(/\./g, '\\.')}: server error 502; retrying in`));
    expect(r.stderr).toMatch(/publish release \d+: server error 503; retrying in/);
    expect(gh.faults).toEqual([]);
    const bigUploads = gh.uploads().filter((q) => q.assetName === BIG);
    expect(bigUploads.map((q) => q.status)).toEqual([502, 201]);
    expect(gh.requests.filter((q) => q.method === 'POST' && q.path.endsWith('/releases')).map((q) => q.status)).toEqual([502, 201]);
    expect(parseReport(r).published).toBe(true);
    await expectReleaseMatches(gh, fx.dist, true);
  });

  it('honours retry-after on a secondary rate limit (403 on an upload, 429 on a listing)', async () => {
    gh.faults.push(
      { method: 'GET', path: /\/releases$/, kind: { type: 'rate-limit', status: 429, retryAfter: 1 } },
      { method: 'POST', path: UPLOAD, assetName: BIG, kind: { type: 'rate-limit', status: 403, retryAfter: 2 } },
    );
    const r = await publishCli(fx, gh, token, ['--json']);
    expect(r.exitCode, r.all).toBe(0);
    expectNoToken(r, token);
    expect(r.stderr).toContain('secondary rate limit (429, retry-after 1s)');
    expect(r.stderr).toContain('secondary rate limit (403, retry-after 2s)');
    const lists = gh.requests.filter((q) => q.method === 'GET' && q.path.endsWith('/releases'));
    expect(lists[0]!.status).toBe(429);
    expect(lists[1]!.at - lists[0]!.at).toBeGreaterThanOrEqual(1000);
    const big = gh.uploads().filter((q) => q.assetName === BIG);
    expect(big.map((q) => q.status)).toEqual([403, 201]);
    expect(big[1]!.at - big[0]!.at).toBeGreaterThanOrEqual(2000);
    await expectReleaseMatches(gh, fx.dist, true);
  });

  it('gives up on a wait longer than allowed, saying so, and a rerun completes', async () => {
    gh.faults.push({ method: 'POST', path: UPLOAD, assetName: BIG, kind: { type: 'rate-limit', status: 403, retryAfter: 3600 } });
    const r = await publishCli(fx, gh, token, [], { KUBELET_LXC_PUBLISH_MAX_WAIT_S: '60' });
    expect(r.exitCode).toBe(1);
    expectNoToken(r, token);
    expect(r.stderr).toContain('GitHub asks to wait 3600s, more than the 60s allowed; rerun later');
    expect(gh.release(TAG)?.draft).toBe(true);

    const again = await publishCli(fx, gh, token, ['--json']);
    expect(again.exitCode, again.all).toBe(0);
    const report = parseReport(again);
    expect(report.release.origin).toBe('existing');
    expect(report.assets.find((a) => a.name === BIG)?.action).toBe('uploaded');
    await expectReleaseMatches(gh, fx.dist, true);
  });

  it('recovers in the same run from a connection cut mid-upload (deletes the starter asset, uploads again)', async () => {
    gh.faults.push({ method: 'POST', path: UPLOAD, assetName: BIG, kind: { type: 'cut', afterBytes: 1024 * 1024 } });
    const r = await publishCli(fx, gh, token, ['--json']);
    expect(r.exitCode, r.all).toBe(0);
    expectNoToken(r, token);
    expect(r.stderr).toMatch(/connection failed/);
    expect(r.stderr).toContain('removing the partial asset (state starter');
    expect(gh.uploads().filter((q) => q.assetName === BIG).map((q) => q.status)).toEqual(['cut', 201]);
    expect(gh.requests.filter((q) => q.method === 'DELETE')).toHaveLength(1);
    await expectReleaseMatches(gh, fx.dist, true);
  });

  it('a run whose uploads keep being cut fails, leaves a draft, and a rerun completes it', async () => {
    gh.faults.push({ method: 'POST', path: UPLOAD, assetName: BIG, times: 2, kind: { type: 'cut', afterBytes: 512 * 1024 } });
    const r = await publishCli(fx, gh, token, [], { KUBELET_LXC_PUBLISH_ATTEMPTS: '2', KUBELET_LXC_PUBLISH_BACKOFF_MS: '200' });
    expect(r.exitCode).toBe(1);
    expectNoToken(r, token);
    expect(r.stderr).toMatch(new RegExp(`GitHub upload ${BIG.replace(/\./g, '\\.')} failed: connection failed .*gave up after 2 attempts`));
    // Not published, and GitHub holds a half-made asset under the name.
    const rel = gh.release(TAG)!;
    expect(rel.draft).toBe(true);
    expect(rel.assets.filter((a) => a.name === BIG).map((a) => a.state)).toEqual(['starter']);
    expect(gh.requests.filter((q) => q.method === 'PATCH')).toEqual([]);

    const before = gh.requests.length;
    const again = await publishCli(fx, gh, token, ['--json']);
    expect(again.exitCode, again.all).toBe(0);
    expectNoToken(again, token);
    const report = parseReport(again);
    expect(report.removed.map((x) => `${x.name}: ${x.reason}`)).toEqual([`${BIG}: half-made upload (state starter)`]);
    const action = Object.fromEntries(report.assets.map((a) => [a.name, a.action]));
    expect(action[BIG]).toBe('uploaded');
    // What the first run finished is not sent again.
    expect(action['kubelet-linux-amd64.spdx.json']).toBe('skipped');
    const rerunUploads = gh.requests.slice(before).filter((q) => q.method === 'POST' && UPLOAD.test(q.path));
    expect(rerunUploads.map((q) => q.assetName)).toEqual(report.assets.filter((a) => a.action === 'uploaded').map((a) => a.name));
    await expectReleaseMatches(gh, fx.dist, true);
  });

  it('keeps an upload that arrived whole when only the response was lost', async () => {
    gh.faults.push({ method: 'POST', path: UPLOAD, assetName: BIG, kind: { type: 'lose-response' } });
    const r = await publishCli(fx, gh, token, ['--json']);
    expect(r.exitCode, r.all).toBe(0);
    expectNoToken(r, token);
    expect(r.stderr).toContain('the interrupted upload had arrived whole; keeping it');
    expect(gh.uploads().filter((q) => q.assetName === BIG)).toHaveLength(1);
    expect(gh.requests.filter((q) => q.method === 'DELETE')).toEqual([]);
    await expectReleaseMatches(gh, fx.dist, true);
  });

  it('finds the draft it created when the response to creating it was lost (drafts are not in the tags endpoint)', async () => {
    gh.faults.push({ method: 'POST', path: /\/releases$/, kind: { type: 'lose-response' } });
    const r = await publishCli(fx, gh, token, ['--json']);
    expect(r.exitCode, r.all).toBe(0);
    expectNoToken(r, token);
    expect(gh.requests.filter((q) => q.method === 'POST' && q.path.endsWith('/releases'))).toHaveLength(1);
    await expectReleaseMatches(gh, fx.dist, true);
  });

  it('a rerun after a run that died before publishing picks up the draft', async () => {
    // The first run dies at the publish step (503 for every attempt).
    gh.faults.push({ method: 'PATCH', times: 2, kind: { type: 'status', status: 503 } });
    const r = await publishCli(fx, gh, token, [], { KUBELET_LXC_PUBLISH_ATTEMPTS: '2', KUBELET_LXC_PUBLISH_BACKOFF_MS: '200' });
    expect(r.exitCode).toBe(1);
    expectNoToken(r, token);
    expect(r.stderr).toMatch(/GitHub publish release \d+ failed: server error 503; gave up after 2 attempts/);
    await expectReleaseMatches(gh, fx.dist, false);

    const before = gh.requests.length;
    const again = await publishCli(fx, gh, token, ['--json']);
    expect(again.exitCode, again.all).toBe(0);
    expectNoToken(again, token);
    const report = parseReport(again);
    expect(report.release.origin).toBe('existing');
    expect(report.assets.every((a) => a.action === 'skipped')).toBe(true);
    expect(gh.requests.slice(before).filter((q) => q.method !== 'GET').map((q) => q.method)).toEqual(['PATCH']);
    await expectReleaseMatches(gh, fx.dist, true);
  });
});
