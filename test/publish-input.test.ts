// `kubelet-lxc publish` with bad input and bad answers, through the real CLI against the local
// GitHub stand-in: credentials in GITHUB_API_URL never show, a 401 names the variable the token
// came from, and an answer that is not what GitHub sends is refused before it is used.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeGitHub, type FakeGitHub } from './helpers/fake-github.js';
import { makeFixture, newToken, OWNER, publishCli, REPO, TAG, type Fixture } from './publish-harness.js';

let fx: Fixture;
let gh: FakeGitHub;
let token: string;

beforeEach(async () => {
  token = newToken();
  fx = await makeFixture({ bigBytes: 64 * 1024 });
  gh = await startFakeGitHub({ token, owner: OWNER, repo: REPO });
});

afterEach(async () => {
  await gh.close();
  await fx.cleanup();
});

describe('publish input', () => {
  it('never prints credentials given in GITHUB_API_URL, and says to move them to GITHUB_TOKEN', async () => {
    const password = 'pw-Zq81xLmv0';
    const withCreds = gh.apiUrl.replace('://', `://deploy:${password}@`);
    for (const [args, tok] of [
      [[], token],
      [['--dry-run'], token],
      [['--dry-run'], undefined],
      [['--json'], token],
    ] as const) {
      const r = await publishCli(fx, gh, tok, [...args], { GITHUB_API_URL: withCreds });
      expect(r.exitCode, `${args.join(' ')}: ${r.all}`).toBe(1);
      expect(r.all, args.join(' ')).not.toContain(password);
      expect(r.all).not.toContain(encodeURIComponent(password));
      expect(r.all, args.join(' ')).toMatch(/GITHUB_API_URL http:\/\/\*\*\*@127\.0\.0\.1:\d+\/api\/v3 holds credentials: give the URL without them and the token in GITHUB_TOKEN/);
    }
    expect(gh.requests).toEqual([]);
  });

  it('a 401 with the token from GH_TOKEN says to check GH_TOKEN', async () => {
    const r = await publishCli(fx, gh, undefined, [], { GH_TOKEN: newToken() });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/401 Bad credentials: check GH_TOKEN \(bad or expired credentials\)/);
    expect(r.stderr).not.toContain('GITHUB_TOKEN');
  });

  it('refuses an answer that is not a release ([] for release-by-tag) and never uses it in a URL', async () => {
    gh.faults.push({ method: 'GET', path: /\/releases\/tags\//, kind: { type: 'body', status: 200, body: [] } });
    const r = await publishCli(fx, gh, token, []);
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stderr).toMatch(/GitHub GET release by tag v1\.36\.4\+rke2r1 answered with something that is not a release \(.+\): check that GITHUB_API_URL points at a GitHub REST API/);
    expect(r.all).not.toContain('undefined');
    expect(gh.requests.map((q) => q.path).filter((p) => p.includes('undefined'))).toEqual([]);
    expect(gh.requests.filter((q) => q.method !== 'GET')).toEqual([]);
    expect(gh.release(TAG)).toBeUndefined();
  });
});
