// A local stand-in for the GitHub REST endpoints the publisher uses, speaking GitHub's shapes
// (as GitHub Enterprise lays them out: the API under /api/v3, uploads under /api/uploads),
// with scripted faults: 5xx answers, secondary rate limits with retry-after, connections cut
// mid-upload (leaving a "starter" asset, as GitHub does), and a response lost after the upload
// arrived whole. It listens on 127.0.0.1 only, on a random port.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeAsset {
  id: number;
  name: string;
  label: string | null;
  state: 'uploaded' | 'starter';
  content_type: string;
  size: number;
  bytes: Buffer;
  created_at: string;
  updated_at: string;
}

export interface FakeRelease {
  id: number;
  tag_name: string;
  target_commitish: string;
  name: string | null;
  body: string | null;
  draft: boolean;
  prerelease: boolean;
  created_at: string;
  published_at: string | null;
  assets: FakeAsset[];
}

export interface Fault {
  /** Which requests: method and a pattern over the path (without the query). */
  method?: string;
  path?: RegExp;
  /** For uploads: only this asset name. */
  assetName?: string;
  /** How many matching requests it affects (default 1). */
  times?: number;
  kind:
    | { type: 'status'; status: number }
    | { type: 'rate-limit'; status: 403 | 429; retryAfter: number }
    /** Answer with this JSON body and status instead of doing the work (a malformed answer). */
    | { type: 'body'; status: number; body: unknown }
    /** Uploads: accept this many bytes, then destroy the socket (a starter asset stays). */
    | { type: 'cut'; afterBytes: number }
    /** Uploads and release creation: do it, then destroy the socket instead of answering. */
    | { type: 'lose-response' };
}

export interface LoggedRequest {
  method: string;
  path: string;
  query: string;
  status: number | 'cut';
  at: number;
  /** The Authorization header as received (tests check it never reaches the storage host). */
  authorization: string | undefined;
  assetName?: string;
}

export interface FakeGitHubOptions {
  token: string;
  owner: string;
  repo: string;
  /** Whether assets carry GitHub's `digest` field (older GitHub Enterprise versions do not). */
  digests?: boolean;
  /** Echo the received Authorization header in 401 messages (a careless server; the client must mask it). */
  echoCredentialsOn401?: boolean;
}

export interface FakeGitHub {
  /** API base URL, for GITHUB_API_URL. */
  apiUrl: string;
  origin: string;
  releases: FakeRelease[];
  faults: Fault[];
  requests: LoggedRequest[];
  options: FakeGitHubOptions;
  close(): Promise<void>;
  release(tag: string): FakeRelease | undefined;
  /** Requests to the uploads endpoint (optionally only answered ones). */
  uploads(): LoggedRequest[];
}

const DOCS = 'https://docs.github.com/rest/releases';

function iso(d = new Date()): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export async function startFakeGitHub(options: FakeGitHubOptions): Promise<FakeGitHub> {
  const { owner, repo } = options;
  const digests = options.digests ?? true;
  const releases: FakeRelease[] = [];
  const faults: Fault[] = [];
  const requests: LoggedRequest[] = [];
  const signed = new Map<string, number>(); // storage signature -> asset id
  let nextId = 1000;
  let origin = '';
  const api = () => `${origin}/api/v3`;
  const repoApi = () => `${api()}/repos/${owner}/${repo}`;

  const user = { login: 'kubelet-lxc-bot', id: 1, node_id: 'U_1', type: 'Bot', site_admin: false };

  function assetJson(a: FakeAsset, rel: FakeRelease) {
    return {
      url: `${repoApi()}/releases/assets/${a.id}`,
      browser_download_url: `${origin}/${owner}/${repo}/releases/download/${encodeURIComponent(rel.tag_name)}/${encodeURIComponent(a.name)}`,
      id: a.id,
      node_id: `RA_${a.id}`,
      name: a.name,
      label: a.label,
      state: a.state,
      content_type: a.content_type,
      size: a.size,
      digest: digests && a.state === 'uploaded' ? `sha256:${createHash('sha256').update(a.bytes).digest('hex')}` : null,
      download_count: 0,
      created_at: a.created_at,
      updated_at: a.updated_at,
      uploader: user,
    };
  }

  function releaseJson(r: FakeRelease) {
    return {
      url: `${repoApi()}/releases/${r.id}`,
      html_url: `${origin}/${owner}/${repo}/releases/${r.draft ? `tag/untagged-${r.id}` : `tag/${encodeURIComponent(r.tag_name)}`}`,
      assets_url: `${repoApi()}/releases/${r.id}/assets`,
      upload_url: `${origin}/api/uploads/repos/${owner}/${repo}/releases/${r.id}/assets{?name,label}`,
      tarball_url: r.draft ? null : `${repoApi()}/tarball/${encodeURIComponent(r.tag_name)}`,
      zipball_url: r.draft ? null : `${repoApi()}/zipball/${encodeURIComponent(r.tag_name)}`,
      id: r.id,
      node_id: `RE_${r.id}`,
      tag_name: r.tag_name,
      target_commitish: r.target_commitish,
      name: r.name,
      body: r.body,
      draft: r.draft,
      prerelease: r.prerelease,
      immutable: false,
      created_at: r.created_at,
      published_at: r.published_at,
      author: user,
      assets: r.assets.map((a) => assetJson(a, r)),
    };
  }

  function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'x-github-request-id': randomBytes(8).toString('hex').toUpperCase(),
      'x-ratelimit-limit': '5000',
      'x-ratelimit-remaining': '4999',
      'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) + 3600),
      'x-ratelimit-resource': 'core',
      ...headers,
    });
    res.end(text);
  }

  const notFound = (res: http.ServerResponse) => send(res, 404, { message: 'Not Found', documentation_url: DOCS, status: '404' });
  const invalid = (res: http.ServerResponse, resource: string, code: string, field: string) =>
    send(res, 422, { message: 'Validation Failed', errors: [{ resource, code, field }], documentation_url: DOCS, status: '422' });

  function readBody(req: http.IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }

  function takeFault(method: string, pathname: string, assetName?: string): Fault | undefined {
    const i = faults.findIndex(
      (f) =>
        (!f.method || f.method === method) &&
        (!f.path || f.path.test(pathname)) &&
        (!f.assetName || f.assetName === assetName) &&
        (f.times ?? 1) > 0,
    );
    if (i < 0) return undefined;
    const f = faults[i]!;
    f.times = (f.times ?? 1) - 1;
    if (f.times <= 0) faults.splice(i, 1);
    return f;
  }

  function pageOf<T>(items: T[], query: URLSearchParams, res: http.ServerResponse, base: string): { page: T[]; headers: Record<string, string> } {
    const perPage = Math.min(100, Number(query.get('per_page') ?? 30) || 30);
    const page = Math.max(1, Number(query.get('page') ?? 1) || 1);
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const links: string[] = [];
    if (page < last) links.push(`<${base}?per_page=${perPage}&page=${page + 1}>; rel="next"`, `<${base}?per_page=${perPage}&page=${last}>; rel="last"`);
    void res;
    return { page: items.slice((page - 1) * perPage, page * perPage), headers: links.length ? { link: links.join(', ') } : {} };
  }

  function findAsset(id: number): { rel: FakeRelease; asset: FakeAsset } | undefined {
    for (const rel of releases) for (const asset of rel.assets) if (asset.id === id) return { rel, asset };
    return undefined;
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, log: LoggedRequest): Promise<void> {
    const url = new URL(req.url ?? '/', origin);
    const p = url.pathname;
    const method = req.method ?? 'GET';

    // The storage host a download redirects to: signed URL, and it refuses an Authorization header.
    const storage = /^\/storage\/(\d+)$/.exec(p);
    if (storage) {
      if (req.headers.authorization) {
        res.writeHead(400, { 'content-type': 'application/xml' });
        res.end('<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>');
        return;
      }
      const id = signed.get(url.searchParams.get('sig') ?? '');
      const hit = id === Number(storage[1]) ? findAsset(id) : undefined;
      if (!hit) {
        res.writeHead(403, { 'content-type': 'application/xml' });
        res.end('<Error><Code>AccessDenied</Code></Error>');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(hit.asset.bytes.length) });
      res.end(hit.asset.bytes);
      return;
    }

    const auth = req.headers.authorization ?? '';
    const m = /^(token|bearer) (.+)$/i.exec(auth);
    if (!m || m[2] !== options.token) {
      await readBody(req).catch(() => undefined);
      const message = options.echoCredentialsOn401 ? `Bad credentials (got ${auth || 'none'})` : 'Bad credentials';
      return send(res, 401, { message, documentation_url: 'https://docs.github.com/rest', status: '401' });
    }

    const uploadMatch = new RegExp(`^/api/uploads/repos/${owner}/${repo}/releases/(\\d+)/assets$`).exec(p);
    const assetName = uploadMatch ? (url.searchParams.get('name') ?? undefined) : undefined;
    log.assetName = assetName;
    const fault = takeFault(method, p, assetName);
    if (fault?.kind.type === 'body') {
      await readBody(req).catch(() => undefined);
      return send(res, fault.kind.status, fault.kind.body);
    }
    if (fault && (fault.kind.type === 'status' || fault.kind.type === 'rate-limit')) {
      await readBody(req).catch(() => undefined);
      if (fault.kind.type === 'status') {
        res.writeHead(fault.kind.status, { 'content-type': 'text/html; charset=utf-8' });
        res.end(`<html><body><h1>${fault.kind.status}</h1>Unicorn! That page is taking way too long to load.</body></html>`);
        return;
      }
      return send(
        res,
        fault.kind.status,
        {
          message:
            'You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.',
          documentation_url: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits',
          status: String(fault.kind.status),
        },
        { 'retry-after': String(fault.kind.retryAfter) },
      );
    }

    if (uploadMatch) {
      const rel = releases.find((r) => r.id === Number(uploadMatch[1]));
      if (!rel) {
        await readBody(req).catch(() => undefined);
        return notFound(res);
      }
      if (!assetName) {
        await readBody(req).catch(() => undefined);
        return invalid(res, 'ReleaseAsset', 'missing_field', 'name');
      }
      const length = req.headers['content-length'];
      if (length === undefined || !/^\d+$/.test(length)) {
        await readBody(req).catch(() => undefined);
        return send(res, 411, { message: 'Content-Length required', documentation_url: DOCS });
      }
      if (rel.assets.some((a) => a.name === assetName)) {
        await readBody(req).catch(() => undefined);
        return invalid(res, 'ReleaseAsset', 'already_exists', 'name');
      }
      // GitHub records the asset as soon as the upload starts; it stays "starter" if the upload never completes.
      const now = iso();
      const asset: FakeAsset = {
        id: nextId++,
        name: assetName,
        label: url.searchParams.get('label'),
        state: 'starter',
        content_type: String(req.headers['content-type'] ?? 'application/octet-stream'),
        size: 0,
        bytes: Buffer.alloc(0),
        created_at: now,
        updated_at: now,
      };
      rel.assets.push(asset);
      if (fault?.kind.type === 'cut') {
        const limit = fault.kind.afterBytes;
        let got = 0;
        await new Promise<void>((resolve) => {
          req.on('data', (c: Buffer) => {
            got += c.length;
            if (got >= limit) {
              log.status = 'cut';
              req.socket.destroy();
              resolve();
            }
          });
          req.on('end', () => {
            log.status = 'cut';
            req.socket.destroy();
            resolve();
          });
          req.on('error', () => resolve());
          req.on('close', () => resolve());
        });
        return;
      }
      const body = await readBody(req);
      if (body.length !== Number(length)) {
        // A body shorter than announced: the connection went away. The asset stays a starter.
        log.status = 'cut';
        return;
      }
      asset.bytes = body;
      asset.size = body.length;
      asset.state = 'uploaded';
      asset.updated_at = iso();
      if (fault?.kind.type === 'lose-response') {
        log.status = 'cut';
        req.socket.destroy();
        return;
      }
      return send(res, 201, assetJson(asset, rel));
    }

    const base = `/api/v3/repos/${owner}/${repo}`;
    if (!p.startsWith(`${base}/`) && p !== base) return notFound(res);
    const rest = p.slice(base.length);
    let mm: RegExpExecArray | null;

    if (method === 'GET' && (mm = /^\/releases\/tags\/(.+)$/.exec(rest))) {
      const tag = decodeURIComponent(mm[1]!);
      // Drafts are not returned by the tags endpoint.
      const rel = releases.find((r) => r.tag_name === tag && !r.draft);
      return rel ? send(res, 200, releaseJson(rel)) : notFound(res);
    }
    if (method === 'GET' && rest === '/releases') {
      const sorted = [...releases].sort((a, b) => b.id - a.id);
      const { page, headers } = pageOf(sorted, url.searchParams, res, `${origin}${p}`);
      return send(res, 200, page.map(releaseJson), headers);
    }
    if (method === 'POST' && rest === '/releases') {
      const body = JSON.parse((await readBody(req)).toString('utf8') || '{}') as Record<string, unknown>;
      if (typeof body.tag_name !== 'string' || body.tag_name === '') return invalid(res, 'Release', 'missing_field', 'tag_name');
      const draft = body.draft === true;
      if (!draft && releases.some((r) => r.tag_name === body.tag_name && !r.draft)) return invalid(res, 'Release', 'already_exists', 'tag_name');
      const now = iso();
      const rel: FakeRelease = {
        id: nextId++,
        tag_name: body.tag_name,
        target_commitish: typeof body.target_commitish === 'string' ? body.target_commitish : 'main',
        name: typeof body.name === 'string' ? body.name : null,
        body: typeof body.body === 'string' ? body.body : null,
        draft,
        prerelease: body.prerelease === true,
        created_at: now,
        published_at: draft ? null : now,
        assets: [],
      };
      releases.push(rel);
      if (fault?.kind.type === 'lose-response') {
        log.status = 'cut';
        req.socket.destroy();
        return;
      }
      return send(res, 201, releaseJson(rel), { location: `${repoApi()}/releases/${rel.id}` });
    }
    if ((mm = /^\/releases\/(\d+)$/.exec(rest))) {
      const rel = releases.find((r) => r.id === Number(mm![1]));
      if (!rel) return notFound(res);
      if (method === 'GET') return send(res, 200, releaseJson(rel));
      if (method === 'PATCH') {
        const body = JSON.parse((await readBody(req)).toString('utf8') || '{}') as Record<string, unknown>;
        if (body.draft === false && rel.draft) {
          if (releases.some((r) => r !== rel && r.tag_name === rel.tag_name && !r.draft)) return invalid(res, 'Release', 'already_exists', 'tag_name');
          rel.draft = false;
          rel.published_at = iso();
        } else if (body.draft === true) rel.draft = true;
        if (typeof body.name === 'string') rel.name = body.name;
        if (typeof body.body === 'string') rel.body = body.body;
        if (typeof body.prerelease === 'boolean') rel.prerelease = body.prerelease;
        return send(res, 200, releaseJson(rel));
      }
      if (method === 'DELETE') {
        releases.splice(releases.indexOf(rel), 1);
        res.writeHead(204);
        res.end();
        return;
      }
    }
    if (method === 'GET' && (mm = /^\/releases\/(\d+)\/assets$/.exec(rest))) {
      const rel = releases.find((r) => r.id === Number(mm![1]));
      if (!rel) return notFound(res);
      const { page, headers } = pageOf(rel.assets, url.searchParams, res, `${origin}${p}`);
      return send(res, 200, page.map((a) => assetJson(a, rel)), headers);
    }
    if ((mm = /^\/releases\/assets\/(\d+)$/.exec(rest))) {
      const hit = findAsset(Number(mm[1]));
      if (!hit) return notFound(res);
      if (method === 'DELETE') {
        hit.rel.assets.splice(hit.rel.assets.indexOf(hit.asset), 1);
        res.writeHead(204);
        res.end();
        return;
      }
      if (method === 'GET') {
        if ((req.headers.accept ?? '').includes('application/octet-stream')) {
          const sig = randomBytes(16).toString('hex');
          signed.set(sig, hit.asset.id);
          res.writeHead(302, { location: `${origin}/storage/${hit.asset.id}?sig=${sig}` });
          res.end();
          return;
        }
        return send(res, 200, assetJson(hit.asset, hit.rel));
      }
    }
    return notFound(res);
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const log: LoggedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.search,
      status: 0,
      at: Date.now(),
      authorization: req.headers.authorization,
    };
    requests.push(log);
    res.on('finish', () => {
      if (log.status === 0) log.status = res.statusCode;
    });
    handle(req, res, log).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { message: `fake GitHub error: ${(err as Error).message}` });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    apiUrl: api(),
    origin,
    releases,
    faults,
    requests,
    options,
    release: (tag) => releases.find((r) => r.tag_name === tag),
    uploads: () => requests.filter((r) => r.method === 'POST' && r.path.startsWith('/api/uploads/')),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
