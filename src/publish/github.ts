// The one seam to @octokit/rest. Everything the publisher asks of GitHub goes through this
// file: the calls it makes, the retries (5xx, dropped connections, primary and secondary rate
// limits honouring retry-after), the recovery of non-idempotent calls (creating a release,
// uploading an asset) after an ambiguous failure, and the scrubbing of the token out of every
// message that leaves this file. Errors thrown from here are GitHubError and never carry the
// octokit error (whose request options hold the headers) as a cause.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Octokit } from '@octokit/rest';
import type { Logger } from '../lib/progress.js';
import { maskSecrets, redactUrls } from '../lib/exec.js';
import { schemaProblems, z } from '../lib/schema.js';

export interface RemoteRelease {
  id: number;
  tagName: string;
  name: string | null;
  draft: boolean;
  prerelease: boolean;
  htmlUrl: string;
  /** URI template of the uploads endpoint, e.g. https://uploads.github.com/repos/o/r/releases/1/assets{?name,label}. */
  uploadUrl: string;
  createdAt: string;
}

export interface RemoteAsset {
  id: number;
  name: string;
  size: number;
  /** "uploaded" when complete; anything else ("starter", "open") is an interrupted upload. */
  state: string;
  /** Hex SHA-256 from GitHub's `digest` field ("sha256:<hex>"), or null when GitHub gave none. */
  sha256: string | null;
  contentType: string;
}

export interface RetryPolicy {
  /** Attempts per call, the first included. */
  attempts: number;
  /** First backoff delay; doubles per attempt (capped at 30 s) when the server gives no retry-after. */
  baseDelayMs: number;
  /** Longest single wait we accept (a retry-after or rate-limit reset further out fails the call). */
  maxWaitMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 1000, maxWaitMs: 15 * 60_000 };

export interface GitHubClientOptions {
  /** REST API base, e.g. https://api.github.com or https://ghes.example/api/v3. */
  baseUrl: string;
  token: string;
  owner: string;
  repo: string;
  log: Logger;
  retry?: Partial<RetryPolicy>;
  signal?: AbortSignal;
  userAgent?: string;
  /** The environment variable the token came from, named in a 401's hint. */
  tokenVariable?: string;
}

/** What GitHub answers for a release and an asset (the fields used here): anything else is refused before use. */
const releaseAnswer = z.object({
  id: z.number().int().nonnegative(),
  tag_name: z.string().min(1),
  name: z.string().nullable(),
  draft: z.boolean(),
  prerelease: z.boolean(),
  html_url: z.string(),
  upload_url: z.string().min(1),
  created_at: z.string(),
});
const assetAnswer = z.object({
  id: z.number().int().nonnegative(),
  name: z.string().min(1),
  size: z.number().int().nonnegative(),
  state: z.string(),
  digest: z.string().nullable().optional(),
  content_type: z.string(),
});

/** An error from talking to GitHub; its message has the token masked. */
export class GitHubError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly operation: string,
  ) {
    super(message);
    this.name = 'GitHubError';
  }
}

/** A logger whose every line has the secrets masked. */
export function scrubbingLogger(log: Logger, secrets: readonly string[]): Logger {
  const s = (t: string) => maskSecrets(t, secrets);
  return {
    info: (t) => log.info(s(t)),
    warn: (t) => log.warn(s(t)),
    detail: (t) => log.detail(s(t)),
    step(text) {
      const st = log.step(s(text));
      return {
        update: (t) => st.update(s(t)),
        succeed: (t) => st.succeed(t === undefined ? undefined : s(t)),
        fail: (t) => st.fail(t === undefined ? undefined : s(t)),
        skip: (t) => st.skip(s(t)),
      };
    },
  };
}

/** What we read off an octokit RequestError (duck-typed: the class is not a direct dependency). */
interface HttpFailure {
  status: number;
  /** Whether a response came back at all (false: the connection failed). */
  answered: boolean;
  headers: Record<string, string>;
  message: string;
}

function asHttpFailure(err: unknown): HttpFailure | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const e = err as { status?: unknown; response?: { headers?: Record<string, unknown>; data?: unknown }; message?: unknown; name?: unknown };
  if (typeof e.status !== 'number' || e.name !== 'HttpError') return undefined;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(e.response?.headers ?? {})) if (v !== undefined && v !== null) headers[k.toLowerCase()] = String(v);
  let message = typeof e.message === 'string' ? e.message : '';
  const data = e.response?.data;
  if (data && typeof data === 'object' && 'message' in data && typeof (data as { message: unknown }).message === 'string') {
    message = (data as { message: string }).message;
    const errors = (data as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.length) message += ` (${errors.map((x) => JSON.stringify(x)).join(', ')})`;
  }
  return { status: e.status, answered: e.response !== undefined, headers, message };
}

/** Seconds from a retry-after header (delta-seconds or an HTTP date), as milliseconds. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.ceil(Number(v) * 1000);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

interface RetryDecision {
  retry: boolean;
  /** Wait the server asked for; undefined = our own backoff. */
  waitMs?: number;
  reason: string;
}

export function classifyFailure(err: unknown, now = Date.now()): RetryDecision {
  const f = asHttpFailure(err);
  if (!f) return { retry: false, reason: err instanceof Error ? err.message : String(err) };
  const retryAfter = parseRetryAfter(f.headers['retry-after'], now);
  if (!f.answered) return { retry: true, reason: `connection failed (${f.message})` };
  if (f.status >= 500) return { retry: true, waitMs: retryAfter, reason: `server error ${f.status}` };
  const secondary = /secondary rate limit|abuse detection/i.test(f.message);
  const primaryExhausted = f.headers['x-ratelimit-remaining'] === '0';
  if (f.status === 429 || (f.status === 403 && (secondary || retryAfter !== undefined || primaryExhausted))) {
    let waitMs = retryAfter;
    if (waitMs === undefined && primaryExhausted && f.headers['x-ratelimit-reset']) {
      waitMs = Math.max(0, Number(f.headers['x-ratelimit-reset']) * 1000 - now) + 1000;
    }
    // GitHub's guidance for a secondary limit without retry-after: wait at least a minute.
    if (waitMs === undefined) waitMs = 60_000;
    const kind = secondary || f.status === 429 ? 'secondary rate limit' : 'rate limit';
    return { retry: true, waitMs, reason: `${kind} (${f.status}${retryAfter !== undefined ? `, retry-after ${Math.round(retryAfter / 1000)}s` : ''})` };
  }
  return { retry: false, reason: `${f.status} ${f.message}` };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new GitHubError('interrupted', undefined, 'wait'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new GitHubError('interrupted', undefined, 'wait'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const noop = () => {};

/** An error shaped like octokit's RequestError, so the retry loop treats it like one from GitHub. */
function httpLike(status: number, message: string, answered = true): Error {
  const e = new Error(message) as Error & { status: number; response?: unknown };
  e.name = 'HttpError';
  e.status = status;
  if (answered) e.response = { headers: {}, data: { message } };
  return e;
}

/** An asset body: bytes in memory, or a factory for a fresh stream of a file (one per attempt). */
export type AssetBody = { kind: 'buffer'; data: Buffer } | { kind: 'stream'; open: () => Readable };

export interface UploadSpec {
  name: string;
  size: number;
  sha256: string;
  contentType: string;
  body: AssetBody;
}

export class GitHubClient {
  private readonly octokit: Octokit;
  private readonly policy: RetryPolicy;
  private readonly secrets: string[];
  readonly owner: string;
  readonly repo: string;
  private readonly log: Logger;
  private readonly signal?: AbortSignal;
  private readonly tokenVariable: string;

  constructor(opts: GitHubClientOptions) {
    this.tokenVariable = opts.tokenVariable ?? 'GITHUB_TOKEN';
    this.owner = opts.owner;
    this.repo = opts.repo;
    this.secrets = [opts.token];
    this.log = scrubbingLogger(opts.log, this.secrets);
    this.signal = opts.signal;
    this.policy = { ...DEFAULT_RETRY, ...opts.retry };
    const warn = (m: unknown) => this.log.warn(String(m));
    // octokit's request log reports every failed request as an error; the failures we do not
    // recover from are thrown with a clearer message, so those lines are noise.
    this.octokit = new Octokit({
      auth: opts.token,
      baseUrl: opts.baseUrl.replace(/\/+$/, ''),
      userAgent: opts.userAgent ?? 'kubelet-lxc-publisher',
      log: { debug: noop, info: noop, warn, error: noop },
      request: { signal: opts.signal },
    });
  }

  /** Run one GitHub call with retries. `reconcile`, if given, runs before each retry and may
   *  return the result when the failed attempt turns out to have taken effect after all. */
  async call<T>(operation: string, fn: () => Promise<T>, reconcile?: () => Promise<T | undefined>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (this.signal?.aborted) throw new GitHubError(`${operation}: interrupted`, undefined, operation);
        if (err instanceof GitHubError) throw err;
        const d = classifyFailure(err);
        const status = asHttpFailure(err)?.status;
        if (!d.retry) throw this.fail(operation, d.reason, status);
        if (attempt >= this.policy.attempts) {
          throw this.fail(operation, `${d.reason}; gave up after ${attempt} attempts`, status);
        }
        const wait = d.waitMs ?? Math.min(30_000, this.policy.baseDelayMs * 2 ** (attempt - 1)) * (1 + Math.random() * 0.2);
        if (wait > this.policy.maxWaitMs) {
          throw this.fail(operation, `${d.reason}: GitHub asks to wait ${Math.ceil(wait / 1000)}s, more than the ${Math.round(this.policy.maxWaitMs / 1000)}s allowed; rerun later (the publish is idempotent)`, status);
        }
        this.log.warn(`${operation}: ${d.reason}; retrying in ${(wait / 1000).toFixed(1)}s (attempt ${attempt + 1} of ${this.policy.attempts})`);
        await sleep(wait, this.signal);
        if (reconcile) {
          const done = await reconcile();
          if (done !== undefined) return done;
        }
      }
    }
  }

  private fail(operation: string, reason: string, status: number | undefined): GitHubError {
    let hint = '';
    if (status === 401) hint = `: check ${this.tokenVariable} (bad or expired credentials)`;
    else if (status === 403) hint = ': the token lacks permission (it needs contents: write on the repository)';
    else if (status === 404) hint = `: check that ${this.owner}/${this.repo} exists and the token can see it`;
    return new GitHubError(maskSecrets(`GitHub ${operation} failed: ${reason}${hint}`, this.secrets), status, operation);
  }

  /** An answer checked against the shape GitHub gives (a wrong GITHUB_API_URL, a proxy's page): never used unchecked. */
  private static checked<T extends z.ZodType>(schema: T, data: unknown, operation: string, what: string): z.infer<T> {
    const r = schemaProblems(schema, data);
    if (!r.value) {
      throw new GitHubError(
        redactUrls(`GitHub ${operation} answered with something that is not ${what} (${r.problems.slice(0, 3).join('; ')}): check that GITHUB_API_URL points at a GitHub REST API`),
        undefined,
        operation,
      );
    }
    return r.value;
  }

  private static release(data: unknown, operation: string): RemoteRelease {
    const r = GitHubClient.checked(releaseAnswer, data, operation, 'a release');
    return {
      id: r.id,
      tagName: r.tag_name,
      name: r.name,
      draft: r.draft,
      prerelease: r.prerelease,
      htmlUrl: r.html_url,
      uploadUrl: r.upload_url,
      createdAt: r.created_at,
    };
  }

  private static asset(data: unknown, operation: string): RemoteAsset {
    const a = GitHubClient.checked(assetAnswer, data, operation, 'a release asset');
    const m = /^sha256:([0-9a-f]{64})$/i.exec(a.digest ?? '');
    return { id: a.id, name: a.name, size: a.size, state: a.state, sha256: m ? m[1]!.toLowerCase() : null, contentType: a.content_type };
  }

  private static list(data: unknown, operation: string): unknown[] {
    if (!Array.isArray(data)) GitHubClient.checked(z.array(z.unknown()), data, operation, 'a list');
    return data as unknown[];
  }

  /**
   * Every release with this tag, drafts included. The tags endpoint does not return drafts,
   * so when it says 404 we page through the release list (which does, for a token with push access).
   */
  async findReleases(tag: string): Promise<RemoteRelease[]> {
    const byTag = await this.call(`GET release by tag ${tag}`, async () => {
      try {
        const r = await this.octokit.rest.repos.getReleaseByTag({ owner: this.owner, repo: this.repo, tag });
        return GitHubClient.release(r.data, `GET release by tag ${tag}`);
      } catch (err) {
        if (asHttpFailure(err)?.status === 404) return null;
        throw err;
      }
    });
    // A published release is the one to work on; only without one do we look for drafts.
    if (byTag) return [byTag];
    const all: RemoteRelease[] = [];
    for (let page = 1; ; page++) {
      const data = await this.call(`list releases (page ${page})`, async () =>
        (await this.octokit.rest.repos.listReleases({ owner: this.owner, repo: this.repo, per_page: 100, page })).data,
      );
      const list = GitHubClient.list(data, `list releases (page ${page})`);
      for (const r of list) {
        const rel = GitHubClient.release(r, `list releases (page ${page})`);
        if (rel.tagName === tag) all.push(rel);
      }
      if (list.length < 100) break;
    }
    // Drafts with this tag, oldest first: the one to keep working on. (GitHub allows several
    // drafts per tag, e.g. after another tool retried a create whose response was lost.)
    return all.sort((a, b) => Number(a.draft) - Number(b.draft) || a.id - b.id);
  }

  /** Create a draft release. A failure that may have created it anyway is reconciled by looking it up. */
  async createDraftRelease(p: { tag: string; name: string; body: string; prerelease: boolean; targetCommitish?: string }): Promise<RemoteRelease> {
    return this.call(
      `create release ${p.tag}`,
      async () =>
        GitHubClient.release(
          (
            await this.octokit.rest.repos.createRelease({
              owner: this.owner,
              repo: this.repo,
              tag_name: p.tag,
              name: p.name,
              body: p.body,
              draft: true,
              prerelease: p.prerelease,
              ...(p.targetCommitish ? { target_commitish: p.targetCommitish } : {}),
            })
          ).data,
          `create release ${p.tag}`,
        ),
      async () => (await this.findReleases(p.tag))[0],
    );
  }

  async listAssets(releaseId: number): Promise<RemoteAsset[]> {
    const all: RemoteAsset[] = [];
    for (let page = 1; ; page++) {
      const data = await this.call(`list assets of release ${releaseId} (page ${page})`, async () =>
        (await this.octokit.rest.repos.listReleaseAssets({ owner: this.owner, repo: this.repo, release_id: releaseId, per_page: 100, page })).data,
      );
      const list = GitHubClient.list(data, `list assets of release ${releaseId} (page ${page})`);
      all.push(...list.map((a) => GitHubClient.asset(a, `list assets of release ${releaseId}`)));
      if (list.length < 100) break;
    }
    return all;
  }

  /** Delete an asset; one already gone (404, e.g. a retried delete) counts as deleted. */
  async deleteAsset(asset: Pick<RemoteAsset, 'id' | 'name'>): Promise<void> {
    await this.call(`delete asset ${asset.name} (${asset.id})`, async () => {
      try {
        await this.octokit.rest.repos.deleteReleaseAsset({ owner: this.owner, repo: this.repo, asset_id: asset.id });
      } catch (err) {
        if (asHttpFailure(err)?.status === 404) return;
        throw err;
      }
    });
  }

  /** SHA-256 of an asset's bytes, downloaded. GitHub answers with a redirect to storage: follow it
   *  ourselves, without the Authorization header (it must not leave for another host). */
  async downloadSha256(asset: Pick<RemoteAsset, 'id' | 'name'>): Promise<string> {
    return this.call(`download asset ${asset.name} (${asset.id})`, async () => {
      const res = await this.octokit.request('GET /repos/{owner}/{repo}/releases/assets/{asset_id}', {
        owner: this.owner,
        repo: this.repo,
        asset_id: asset.id,
        headers: { accept: 'application/octet-stream' },
        request: { redirect: 'manual', parseSuccessResponseBody: false, signal: this.signal },
      });
      const h = createHash('sha256');
      const status = res.status as number;
      if (status >= 300 && status < 400) {
        const location = (res.headers as Record<string, string | undefined>).location;
        if (!location) throw httpLike(status, 'redirect without a location');
        try {
          const r = await fetch(location, { signal: this.signal, headers: { accept: 'application/octet-stream' } });
          if (!r.ok || !r.body) throw httpLike(r.status, `storage answered HTTP ${r.status}`);
          for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) h.update(chunk);
        } catch (err) {
          if ((err as { name?: string }).name === 'HttpError') throw err;
          // The storage URL is signed: say which host failed, not the URL.
          throw httpLike(500, `storage download from ${new URL(location).host} failed (${(err as Error).message})`, false);
        }
      } else {
        const body = res.data as unknown;
        if (body && typeof body === 'object' && Symbol.asyncIterator in body) {
          for await (const chunk of body as AsyncIterable<Uint8Array>) h.update(chunk);
        } else if (body instanceof ArrayBuffer) h.update(Buffer.from(body));
        else h.update(String(body ?? ''));
      }
      return h.digest('hex');
    });
  }

  /** Whether a remote asset holds exactly these bytes (digest when GitHub gives one, else a download). */
  async sameContent(asset: RemoteAsset, size: number, sha256: string): Promise<boolean> {
    if (asset.state !== 'uploaded' || asset.size !== size) return false;
    if (asset.sha256) return asset.sha256 === sha256;
    return (await this.downloadSha256(asset)) === sha256;
  }

  /**
   * Upload one asset. GitHub's upload is not idempotent: a cut connection leaves a half-made
   * ("starter") asset under the name, and a retry then fails with 422 already_exists. So before
   * each retry we look at the release: an asset that arrived whole is kept, anything else under
   * the name is deleted. An upload whose digest does not match what we sent is deleted and retried.
   */
  async uploadAsset(release: RemoteRelease, spec: UploadSpec): Promise<RemoteAsset> {
    const op = `upload ${spec.name}`;
    const attempt = async (): Promise<RemoteAsset> => {
      const data = spec.body.kind === 'buffer' ? spec.body.data : spec.body.open();
      const res = await this.octokit.request({
        method: 'POST',
        url: release.uploadUrl,
        name: spec.name,
        headers: { 'content-type': spec.contentType, 'content-length': spec.size },
        data,
        request: { signal: this.signal },
      });
      const got = GitHubClient.asset(res.data, op);
      if (got.size !== spec.size || (got.sha256 !== null && got.sha256 !== spec.sha256)) {
        this.log.warn(`${op}: GitHub stored ${got.size} bytes with sha256 ${got.sha256 ?? '(none)'}, expected ${spec.size} bytes ${spec.sha256}; deleting it to upload again`);
        await this.deleteAsset(got);
        // Shaped like a server fault so that the retry loop retries it.
        throw httpLike(502, 'the uploaded bytes did not match');
      }
      return got;
    };
    const reconcile = async (): Promise<RemoteAsset | undefined> => {
      for (const a of await this.listAssets(release.id)) {
        if (a.name !== spec.name) continue;
        if (await this.sameContent(a, spec.size, spec.sha256)) {
          this.log.info(`${op}: the interrupted upload had arrived whole; keeping it`);
          return a;
        }
        this.log.info(`${op}: removing the partial asset (state ${a.state}, ${a.size} bytes) left by the interrupted upload`);
        await this.deleteAsset(a);
      }
      return undefined;
    };
    return this.call(op, attempt, reconcile);
  }

  /** Turn a draft into a published release. */
  async publishRelease(releaseId: number): Promise<RemoteRelease> {
    return this.call(`publish release ${releaseId}`, async () =>
      GitHubClient.release((await this.octokit.rest.repos.updateRelease({ owner: this.owner, repo: this.repo, release_id: releaseId, draft: false })).data, `publish release ${releaseId}`),
    );
  }
}
