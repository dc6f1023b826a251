// The publish stage: put the release assets of one manifest on a GitHub release.
//
// Plan first, then act: read dist/ and the release as it is, decide per asset (upload, skip,
// replace), refuse before changing anything if an asset differs and --replace was not given,
// then create the release as a draft, upload, verify that every asset is there exactly once
// with the right bytes, and only then publish it. Rerunning converges: what is already there
// with the same checksum is skipped, what an interrupted run left half-made is removed and
// uploaded again.
import type { LoadedManifest } from '../manifest.js';
import type { Logger } from '../lib/progress.js';
import { isPrerelease } from '../lib/version.js';
import { maskSecrets, redactUrls } from '../lib/exec.js';
import { standInImages } from './stand-in.js';
import { AssetError, readAssets, SUMS_NAME, type LocalAsset } from './assets.js';
import { DEFAULT_RETRY, GitHubClient, GitHubError, scrubbingLogger, type RemoteAsset, type RemoteRelease, type RetryPolicy } from './github.js';

export interface PublishOptions {
  manifest: LoadedManifest;
  distDir: string;
  /** owner/name */
  repo: string;
  replace: boolean;
  dryRun: boolean;
  log: Logger;
  /** Where GITHUB_TOKEN / GH_TOKEN, GITHUB_API_URL and the retry knobs are read from. */
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** publish runtime images built on the stand-in base anyway (tests only; never a real release) */
  allowStandIn?: boolean;
}

export type AssetAction = 'uploaded' | 'skipped' | 'replaced' | 'planned';
export type AssetPlan = 'upload' | 'skip' | 'replace';

export interface AssetReport {
  name: string;
  action: AssetAction;
  /** What was (or, in a dry run, would be) done. */
  plan: AssetPlan;
  sha256: string;
  size: number;
  /** what the artifact list says it is */
  kind: string;
  note?: string;
}

export interface RemovedAsset {
  name: string;
  id: number;
  reason: string;
}

export interface PublishReport {
  repo: string;
  apiUrl: string;
  manifest: string;
  tag: string;
  releaseName: string;
  dryRun: boolean;
  /** Whether the release on GitHub was read (a dry run without a token plans from dist/ alone). */
  remoteRead: boolean;
  release: {
    id: number | null;
    url: string | null;
    /** created: made by this run; existing: found; planned: a dry run would create it. */
    origin: 'created' | 'existing' | 'planned';
    draft: boolean;
  };
  /** Whether the release is published (not a draft) at the end of the run. */
  published: boolean;
  /** A dry run's answer to "would this run publish the release?". */
  wouldPublish: boolean;
  assets: AssetReport[];
  /** Remote assets removed (or, in a dry run, to be removed): half-made uploads, and with --replace, strays. */
  removed: RemovedAsset[];
  /** dist/ entries not published, with why. */
  ignored: { name: string; why: string }[];
}

/** A failure the operator can act on; the message never contains the token. */
export class PublishError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PublishError';
  }
}

export const DEFAULT_API_URL = 'https://api.github.com';

function positiveInt(env: NodeJS.ProcessEnv, key: string): number | undefined {
  const v = env[key];
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new PublishError(`${key} must be a positive whole number, got ${JSON.stringify(v)}`);
  return Number(v);
}

/** Retry knobs from the environment (defaults suit GitHub; tests and slow networks may tune them). */
export function retryPolicyFromEnv(env: NodeJS.ProcessEnv): RetryPolicy {
  const maxWaitS = positiveInt(env, 'KUBELET_LXC_PUBLISH_MAX_WAIT_S');
  return {
    attempts: positiveInt(env, 'KUBELET_LXC_PUBLISH_ATTEMPTS') ?? DEFAULT_RETRY.attempts,
    baseDelayMs: positiveInt(env, 'KUBELET_LXC_PUBLISH_BACKOFF_MS') ?? DEFAULT_RETRY.baseDelayMs,
    maxWaitMs: maxWaitS !== undefined ? maxWaitS * 1000 : DEFAULT_RETRY.maxWaitMs,
  };
}

export function releaseTag(manifest: LoadedManifest): string {
  return manifest.data.stamp.version;
}

export function releaseName(manifest: LoadedManifest): string {
  return `kubelet-lxc ${manifest.data.stamp.version}`;
}

/** The release notes: deterministic, from the manifest and the assets. */
export function releaseBody(manifest: LoadedManifest, repo: string, assets: readonly LocalAsset[]): string {
  const d = manifest.data;
  const commit = d.kubernetes.commit ? ` (commit ${d.kubernetes.commit})` : '';
  return [
    `kubelet ${d.stamp.version}: Kubernetes ${d.kubernetes.version}${commit} with the kubelet-lxc patch series, so that it starts inside LXC containers on cgroup v2 hosts.`,
    `For RKE2 ${d.rke2.version} (runtime image ${d.rke2.runtimeImage}); Go ${d.go.version}; platforms ${d.platforms.join(', ')}.`,
    '',
    '| asset | size | sha256 |',
    '| --- | ---: | --- |',
    ...assets.map((a) => `| ${a.name} | ${a.size} | \`${a.sha256}\` |`),
    '',
    'Verify:',
    '```',
    `sha256sum -c ${SUMS_NAME} --ignore-missing`,
    `gh attestation verify <asset> --repo ${repo}`,
    '```',
    '',
  ].join('\n');
}

interface PlannedAsset {
  asset: LocalAsset;
  plan: AssetPlan;
  /** Remote assets under this name to delete first (a differing one with --replace, a half-made one). */
  remove: RemoteAsset[];
  note?: string;
}

export async function runPublish(opts: PublishOptions): Promise<PublishReport> {
  const token = opts.env.GITHUB_TOKEN || opts.env.GH_TOKEN || '';
  const secrets = token ? [token] : [];
  try {
    return await publish(opts, token, scrubbingLogger(opts.log, secrets));
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    // Every failure leaves as a PublishError whose message has the token masked, and no cause.
    throw new PublishError(maskSecrets(msg, secrets));
  }
}

async function publish(opts: PublishOptions, token: string, log: Logger): Promise<PublishReport> {
  const { manifest, distDir, dryRun } = opts;
  const m = /^([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)$/.exec(opts.repo);
  if (!m) throw new PublishError(`--repo must be owner/name, got ${JSON.stringify(opts.repo)}`);
  const [, owner, repo] = m as unknown as [string, string, string];
  const apiUrl = (opts.env.GITHUB_API_URL || DEFAULT_API_URL).replace(/\/+$/, '');
  if (redactUrls(apiUrl) !== apiUrl) {
    // fetch refuses such URLs anyway; the token belongs in the environment, never in a URL that gets printed
    throw new PublishError(`GITHUB_API_URL ${redactUrls(apiUrl)} holds credentials: give the URL without them and the token in GITHUB_TOKEN`);
  }
  const tag = releaseTag(manifest);
  const name = releaseName(manifest);

  const local = await localAssets(opts, log);
  const assets = local.assets;

  const report: PublishReport = {
    repo: opts.repo,
    apiUrl,
    manifest: manifest.id,
    tag,
    releaseName: name,
    dryRun,
    remoteRead: false,
    release: { id: null, url: null, origin: 'planned', draft: true },
    published: false,
    wouldPublish: false,
    assets: [],
    removed: [],
    ignored: local.ignored,
  };

  if (!token) {
    if (!dryRun) {
      throw new PublishError('no GitHub token: set GITHUB_TOKEN (or GH_TOKEN) in the environment to a token with contents: write on the repository');
    }
    log.warn('no GITHUB_TOKEN or GH_TOKEN: planning from dist/ alone, without reading the release on GitHub');
    report.assets = assets.map((a) => ({ name: a.name, action: 'planned', plan: 'upload', sha256: a.sha256, size: a.size, kind: a.kind }));
    report.wouldPublish = true;
    return report;
  }

  const tokenVariable = opts.env.GITHUB_TOKEN ? 'GITHUB_TOKEN' : 'GH_TOKEN';
  const gh = new GitHubClient({ baseUrl: apiUrl, token, owner, repo, log, retry: retryPolicyFromEnv(opts.env), signal: opts.signal, tokenVariable });

  // 1. The release as it is.
  const found = await gh.findReleases(tag);
  let release: RemoteRelease | undefined = found[0];
  if (found.length > 1) {
    log.warn(`${found.length} releases carry the tag ${tag} (ids ${found.map((r) => r.id).join(', ')}); working on ${release!.id}${release!.draft ? ' (a draft)' : ''}: delete the others by hand`);
  }
  const remoteAssets = release ? await gh.listAssets(release.id) : [];
  report.remoteRead = true;
  if (release) {
    report.release = { id: release.id, url: release.htmlUrl, origin: 'existing', draft: release.draft };
    log.info(`release ${tag} in ${opts.repo}: found (id ${release.id}, ${release.draft ? 'draft' : 'published'}, ${remoteAssets.length} assets)`);
  } else {
    log.info(`release ${tag} in ${opts.repo}: none yet, ${dryRun ? 'would create' : 'creating'} a draft`);
  }

  // 2. The plan.
  const { planned, removals } = await planAssets(gh, opts, log, { tag, distDir, assets, remoteAssets });

  report.removed = [
    ...planned.flatMap((p) => p.remove.filter((r) => r.state !== 'uploaded').map((r) => ({ name: r.name, id: r.id, reason: `half-made upload (state ${r.state})` }))),
    ...removals.map((r) => ({ name: r.asset.name, id: r.asset.id, reason: r.reason })),
  ];

  if (dryRun) {
    report.assets = planned.map((p) => toReport(p, 'planned'));
    report.wouldPublish = !release || release.draft;
    report.published = !!release && !release.draft;
    return report;
  }

  // 3. Act: the draft, the removals, the uploads.
  if (!release) {
    release = await gh.createDraftRelease({
      tag,
      name,
      body: releaseBody(manifest, opts.repo, assets),
      prerelease: isPrerelease(tag),
      targetCommitish: opts.env.GITHUB_SHA || undefined,
    });
    report.release = { id: release.id, url: release.htmlUrl, origin: 'created', draft: release.draft };
    log.info(`created draft release ${tag} (id ${release.id})`);
  }
  for (const r of removals) {
    log.info(`deleting ${r.asset.name} (${r.reason})`);
    await gh.deleteAsset(r.asset);
  }
  const uploadedNow = await uploadPlanned(gh, release, planned, report, log);

  // 4. Verify: every asset exactly once, complete, with the right bytes; nothing else.
  await verifyRelease(gh, release, { tag, assets, uploadedNow });
  log.info(`verified: ${assets.length} assets on release ${tag}, each once, with the expected sha256`);

  // 5. Publish, only now.
  if (release.draft) {
    release = await gh.publishRelease(release.id);
    log.info(`published release ${tag}: ${release.htmlUrl}`);
  }
  report.release = { ...report.release, id: release.id, url: release.htmlUrl, draft: release.draft };
  report.published = !release.draft;
  return report;
}

function toReport(p: PlannedAsset, action: AssetAction): AssetReport {
  return { name: p.asset.name, action, plan: p.plan, sha256: p.asset.sha256, size: p.asset.size, kind: p.asset.kind, ...(p.note ? { note: p.note } : {}) };
}

/** Deletes what each planned asset replaces, then uploads it (or skips it); returns the names uploaded now. */
async function uploadPlanned(gh: GitHubClient, release: RemoteRelease, planned: PlannedAsset[], report: PublishReport, log: Logger): Promise<Set<string>> {
  const uploadedNow = new Set<string>();
  for (const p of planned) {
    for (const r of p.remove) {
      log.info(`deleting ${r.name} (${r.state === 'uploaded' ? 'replaced' : `half-made, state ${r.state}`})`);
      await gh.deleteAsset(r);
    }
    if (p.plan === 'skip') {
      log.info(`skip ${p.asset.name}: already on the release with sha256 ${p.asset.sha256}`);
      report.assets.push(toReport(p, 'skipped'));
      continue;
    }
    const step = log.step(`upload ${p.asset.name} (${formatSize(p.asset.size)})`);
    try {
      await gh.uploadAsset(release, { name: p.asset.name, size: p.asset.size, sha256: p.asset.sha256, contentType: p.asset.contentType, body: p.asset.body });
    } catch (err) {
      step.fail();
      throw err;
    }
    step.succeed();
    uploadedNow.add(p.asset.name);
    report.assets.push(toReport(p, p.plan === 'replace' ? 'replaced' : 'uploaded'));
  }
  return uploadedNow;
}

/** dist/ as the artifact lists describe it, refused (outside a dry run) if it holds a stand-in image. */
async function localAssets(opts: PublishOptions, log: Logger): Promise<{ assets: LocalAsset[]; ignored: { name: string; why: string }[] }> {
  let local;
  try {
    local = await readAssets(opts.distDir, `Run the build first: kubelet-lxc build --release ${opts.manifest.id} (it writes the assets into that folder).`);
  } catch (err) {
    if (err instanceof AssetError) throw new PublishError(err.message);
    throw err;
  }
  for (const i of local.ignored) log.warn(`not publishing ${i.name}: ${i.why}`);
  // what the lists say, and by content: an image archive that carries the stand-in label
  const standIn = [...new Set([...local.assets.filter((a) => a.standIn).map((a) => a.name), ...(await standInImages(local.assets))])].sort();
  if (standIn.length && !opts.allowStandIn) {
    const what = `${standIn.join(', ')} ${standIn.length > 1 ? 'were' : 'was'} built on a STAND-IN base image (no rancher/rke2-runtime was available): rebuild with --base-image-archive <docker-archive of the real image> before publishing`;
    // a dry run shows the plan, and says the real run would refuse
    if (!opts.dryRun) throw new PublishError(what);
    log.warn(`a real publish would refuse: ${what}`);
  }
  return local;
}

/** Per asset: upload, skip (same bytes on the release) or replace (--replace); strays to delete; anything else is a conflict that stops the publish before any change. */
async function planAssets(
  gh: GitHubClient,
  opts: PublishOptions,
  log: Logger,
  { tag, distDir, assets, remoteAssets }: { tag: string; distDir: string; assets: LocalAsset[]; remoteAssets: RemoteAsset[] },
): Promise<{ planned: PlannedAsset[]; removals: { asset: RemoteAsset; reason: string }[] }> {
  const planned: PlannedAsset[] = [];
  const conflicts: string[] = [];
  const byName = new Map<string, RemoteAsset[]>();
  for (const a of remoteAssets) byName.set(a.name, [...(byName.get(a.name) ?? []), a]);
  for (const asset of assets) {
    const remote = byName.get(asset.name) ?? [];
    byName.delete(asset.name);
    const complete = remote.filter((r) => r.state === 'uploaded');
    const partial = remote.filter((r) => r.state !== 'uploaded');
    const note = partial.length ? `removes a half-made upload (state ${partial.map((p) => p.state).join(', ')})` : undefined;
    if (complete.length === 0) {
      planned.push({ asset, plan: 'upload', remove: partial, note });
      continue;
    }
    let same = false;
    if (complete.length === 1) {
      if (!complete[0]!.sha256 && complete[0]!.size === asset.size) log.info(`${asset.name}: GitHub gives no digest; downloading it to compare`);
      same = await gh.sameContent(complete[0]!, asset.size, asset.sha256);
    }
    if (same) {
      planned.push({ asset, plan: 'skip', remove: partial, note });
    } else if (opts.replace) {
      planned.push({ asset, plan: 'replace', remove: remote, note: `replaces ${describeRemote(complete)}` });
    } else {
      conflicts.push(`${asset.name}: the release has ${describeRemote(complete)}, dist has ${asset.size} bytes sha256 ${asset.sha256}`);
    }
  }
  const strays: RemoteAsset[] = [...byName.values()].flat();
  const removals: { asset: RemoteAsset; reason: string }[] = [];
  for (const s of strays) {
    if (s.state !== 'uploaded') removals.push({ asset: s, reason: `half-made upload (state ${s.state}) of an asset not in dist` });
    else if (opts.replace) removals.push({ asset: s, reason: 'not in dist (--replace)' });
    else conflicts.push(`${s.name}: on the release but not in dist (${s.size} bytes)`);
  }
  if (conflicts.length) {
    throw new PublishError(
      `release ${tag} in ${opts.repo} differs from ${distDir}; nothing was changed:\n${conflicts.map((c) => `  ${c}`).join('\n')}\n` +
        'Rerun with --replace to make the release match dist/ (differing assets are replaced, strays deleted).',
    );
  }

  return { planned, removals };
}

/** The release after the uploads: every asset exactly once, complete, with the right bytes, and nothing else. */
async function verifyRelease(gh: GitHubClient, release: RemoteRelease, { tag, assets, uploadedNow }: { tag: string; assets: LocalAsset[]; uploadedNow: Set<string> }): Promise<void> {
  const after = await gh.listAssets(release.id);
  const problems: string[] = [];
  for (const a of assets) {
    const hits = after.filter((r) => r.name === a.name);
    if (hits.length !== 1) {
      problems.push(`${a.name}: ${hits.length} copies on the release`);
      continue;
    }
    const r = hits[0]!;
    // A skipped asset was compared in the plan; one uploaded now is checked by digest, or downloaded.
    const ok = r.state === 'uploaded' && r.size === a.size && (r.sha256 ? r.sha256 === a.sha256 : !uploadedNow.has(a.name) || (await gh.sameContent(r, a.size, a.sha256)));
    if (!ok) problems.push(`${a.name}: on the release as state ${r.state}, ${r.size} bytes, sha256 ${r.sha256 ?? '(not given)'}; expected ${a.size} bytes ${a.sha256}`);
  }
  for (const r of after) if (!assets.some((a) => a.name === r.name)) problems.push(`${r.name}: on the release but not in dist`);
  if (problems.length) {
    throw new PublishError(`release ${tag} is not complete after uploading, so it stays ${release.draft ? 'a draft' : 'as it is'}:\n${problems.map((p) => `  ${p}`).join('\n')}\nRerun the publish.`);
  }

}

function describeRemote(assets: RemoteAsset[]): string {
  return assets.map((a) => `${a.size} bytes sha256 ${a.sha256 ?? '(differs)'}`).join(' and ');
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** The report for a person: the plan (dry run) or what was done. */
export function formatReport(r: PublishReport): string {
  const lines: string[] = [];
  const where = `${r.repo} (${r.apiUrl})`;
  if (r.dryRun) {
    lines.push(`dry run: nothing was changed on GitHub${r.remoteRead ? '' : ' (no token: the release was not read; every asset is planned as an upload)'}`);
    const rel =
      r.release.origin === 'planned'
        ? `would create release "${r.releaseName}" (tag ${r.tag}) in ${where} as a draft`
        : `release "${r.releaseName}" (tag ${r.tag}) in ${where} exists: id ${r.release.id}, ${r.release.draft ? 'draft' : 'published'}`;
    lines.push(rel);
  } else {
    lines.push(`release "${r.releaseName}" (tag ${r.tag}) in ${where}: ${r.release.origin}, id ${r.release.id}`);
  }
  const w = Math.max(...r.assets.map((a) => a.name.length));
  for (const a of r.assets) {
    const verb = r.dryRun ? a.plan : a.action;
    lines.push(`  ${verb.padEnd(8)} ${a.name.padEnd(w)}  ${formatSize(a.size).padStart(10)}  sha256:${a.sha256}  ${a.kind}${a.note ? `  [${a.note}]` : ''}`);
  }
  for (const x of r.removed) lines.push(`  ${(r.dryRun ? 'delete' : 'deleted').padEnd(8)} ${x.name} (asset ${x.id}): ${x.reason}`);
  for (const i of r.ignored) lines.push(`  ignored  ${i.name}: ${i.why}`);
  if (r.dryRun) {
    lines.push(r.wouldPublish ? 'then publish the release (draft -> published) once every asset is verified' : 'the release is already published: it stays published');
  } else {
    lines.push(r.published ? `published: ${r.release.url}` : `not published (draft): ${r.release.url}`);
  }
  return lines.join('\n');
}

export { GitHubError };
