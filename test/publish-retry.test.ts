// The retry decisions and the token masking of the GitHub seam, on errors shaped exactly as
// octokit throws them (taken from real octokit calls against a local server).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Octokit } from '@octokit/rest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyFailure, parseRetryAfter } from '../src/publish/github.js';
import { maskSecrets } from '../src/lib/exec.js';

let server: http.Server;
let base = '';
const answers: Record<string, { status: number; headers?: Record<string, string>; body: unknown }> = {
  '/s502': { status: 502, body: 'bad gateway' },
  '/secondary': { status: 403, headers: { 'retry-after': '7' }, body: { message: 'You have exceeded a secondary rate limit.' } },
  '/secondary-no-header': { status: 403, body: { message: 'You have exceeded a secondary rate limit.' } },
  '/primary': { status: 403, headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '2000000030' }, body: { message: 'API rate limit exceeded' } },
  '/forbidden': { status: 403, body: { message: 'Resource not accessible by integration' } },
  '/toomany': { status: 429, headers: { 'retry-after': '3' }, body: { message: 'Too many requests' } },
  '/invalid': { status: 422, body: { message: 'Validation Failed', errors: [{ resource: 'ReleaseAsset', code: 'already_exists', field: 'name' }] } },
};

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/cut') return req.socket.destroy();
    const a = answers[req.url ?? '']!;
    res.writeHead(a.status, { 'content-type': typeof a.body === 'string' ? 'text/plain' : 'application/json', ...a.headers });
    res.end(typeof a.body === 'string' ? a.body : JSON.stringify(a.body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

async function octokitError(pathname: string): Promise<unknown> {
  const o = new Octokit({ baseUrl: base, auth: 'ghp_secretvalue123', log: { debug() {}, info() {}, warn() {}, error() {} } });
  try {
    await o.request(`GET ${pathname}`);
  } catch (err) {
    return err;
  }
  throw new Error(`GET ${pathname} did not fail`);
}

describe('classifyFailure', () => {
  const now = 2_000_000_000_000;
  it('retries server errors and cut connections with our own backoff', async () => {
    expect(classifyFailure(await octokitError('/s502'), now)).toEqual({ retry: true, waitMs: undefined, reason: 'server error 502' });
    const cut = classifyFailure(await octokitError('/cut'), now);
    expect(cut.retry).toBe(true);
    expect(cut.waitMs).toBeUndefined();
    expect(cut.reason).toMatch(/^connection failed \(/);
  });
  it('waits as long as retry-after says on a secondary rate limit, and a minute without it', async () => {
    expect(classifyFailure(await octokitError('/secondary'), now)).toMatchObject({ retry: true, waitMs: 7000 });
    expect(classifyFailure(await octokitError('/secondary-no-header'), now)).toMatchObject({ retry: true, waitMs: 60_000 });
    expect(classifyFailure(await octokitError('/toomany'), now)).toMatchObject({ retry: true, waitMs: 3000 });
  });
  it('waits for the reset of an exhausted primary rate limit', async () => {
    expect(classifyFailure(await octokitError('/primary'), now)).toMatchObject({ retry: true, waitMs: 31_000 });
  });
  it('does not retry a plain 403 or a validation error', async () => {
    expect(classifyFailure(await octokitError('/forbidden'), now)).toEqual({ retry: false, reason: '403 Resource not accessible by integration' });
    const v = classifyFailure(await octokitError('/invalid'), now);
    expect(v.retry).toBe(false);
    expect(v.reason).toContain('already_exists');
  });
  it('octokit redacts the Authorization header in the request it keeps on its error', async () => {
    const err = (await octokitError('/forbidden')) as { request: { headers: Record<string, string> } };
    expect(err.request.headers.authorization).toBe('token [REDACTED]');
  });
});

describe('parseRetryAfter and maskSecrets', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('2', 0)).toBe(2000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:10 GMT', 4000)).toBe(6000);
    expect(parseRetryAfter('', 0)).toBeUndefined();
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
  });
  it('masks the token in plain, URL-encoded and base64 form', () => {
    const t = 'ghp_a+b/c=d';
    const text = `x ${t} y ${encodeURIComponent(t)} z ${Buffer.from(t).toString('base64')}`;
    expect(maskSecrets(text, [t])).toBe('x *** y *** z ***');
  });
});
