// kubelet-lxc upstream-watch: what the scheduled workflow runs. For every supported minor (the
// minors of releases/), the newest patch release the Go module proxy serves completely (the root
// module and every staging module) that is newer than the minor's newest manifest: those the
// proxy lists, and those it serves when asked by name (a caching proxy lists only what it holds). With --apply
// it carries the series there with `rebase` (and the matrix), drops the superseded manifest of
// that minor, and writes what the workflow posts: a pull request body for what was written, an
// issue body for each conflict or failed matrix (naming the patch, file and hunk).
import path from 'node:path';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { exists } from './lib/fsutil.js';
import os from 'node:os';
import { run } from './lib/exec.js';
import { goEnv } from './lib/gomod.js';
import type { Logger } from './lib/progress.js';
import { compareVersionsDesc, isPrerelease, parseVersion } from './lib/version.js';
import { RELEASES_DIR, listManifests, minorOf, type LoadedManifest } from './manifest.js';
import { pinRelease } from './pin.js';
import { formatRebase, type RebaseReport } from './rebase.js';
import { StageError } from './stages/types.js';

export interface MinorWatch {
  minor: string;
  /** the minor's newest manifest */
  current: string;
  /** the newest complete patch release after it, or null */
  next: string | null;
  /** newer releases the proxy lists but does not serve completely */
  incomplete: { version: string; reason: string }[];
}

export interface WatchPlan {
  goproxy: string;
  minors: MinorWatch[];
  /** a release of a minor newer than every supported one (a new series is a maintainer's call: `rebase`) */
  newMinor: string | null;
}

export interface WatchOutcome extends WatchPlan {
  rebases: { minor: string; from: string; to: string; ok: boolean; written: boolean; report: string; removed: string | null }[];
  pullRequest: { title: string; branch: string; bodyFile: string } | null;
  issues: { title: string; bodyFile: string }[];
}

/** A scratch module for go commands that ask the proxy (removed by the caller). */
async function scratchModule(): Promise<string> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'kubelet-lxc-watch-'));
  await writeFile(path.join(work, 'go.mod'), 'module kubelet-lxc.invalid/watch\n\ngo 1.21\n');
  return work;
}

/** Every version of k8s.io/kubernetes the proxy lists (go list -m -versions, through GOPROXY). */
export async function proxyVersions(goproxy: string | undefined): Promise<string[]> {
  const work = await scratchModule();
  try {
    const res = await run('go', ['list', '-m', '-versions', '-json', 'k8s.io/kubernetes'], { cwd: work, reject: false, env: goEnv({ GOPROXY: goproxy ?? process.env.GOPROXY, GOTOOLCHAIN: 'local' }) });
    if (res.exitCode !== 0) throw new StageError(`the Go module proxy did not list k8s.io/kubernetes: ${res.stderr.trim()}`, 'cli');
    return (JSON.parse(res.stdout) as { Versions?: string[] }).Versions ?? [];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Whether the proxy serves k8s.io/kubernetes@version when asked by name. */
async function servedByName(work: string, version: string, goproxy: string | undefined): Promise<boolean> {
  const res = await run('go', ['list', '-m', '-json', `k8s.io/kubernetes@${version}`], { cwd: work, reject: false, env: goEnv({ GOPROXY: goproxy ?? process.env.GOPROXY, GOTOOLCHAIN: 'local' }) });
  return res.exitCode === 0;
}

/**
 * The releases after `version` in its minor that the proxy serves when asked by name, in order:
 * a caching proxy lists only what it has cached (and may lack one release but have the next),
 * so the list alone can miss a release it would serve. Stops after `gap` misses in a row.
 */
export async function probeNextPatches(version: string, goproxy: string | undefined, gap = 3): Promise<string[]> {
  const v = parseVersion(version)!;
  const work = await scratchModule();
  const found: string[] = [];
  try {
    for (let patch = v.patch + 1, misses = 0; misses < gap; patch++) {
      const next = `v${v.major}.${v.minor}.${patch}`;
      if (await servedByName(work, next, goproxy)) {
        found.push(next);
        misses = 0;
      } else misses++;
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return found;
}

/** The first release of the minor after `minor` (e.g. v1.38.0 after v1.37), if the proxy serves it. */
async function probeNextMinor(minor: string, goproxy: string | undefined): Promise<string | null> {
  const v = parseVersion(`${minor}.0`)!;
  const next = `v${v.major}.${v.minor + 1}.0`;
  const work = await scratchModule();
  try {
    return (await servedByName(work, next, goproxy)) ? next : null;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export async function planUpstreamWatch(o: { releasesDir?: string; goproxy?: string; log: Logger }): Promise<WatchPlan> {
  const manifests = listManifests(o.releasesDir ?? RELEASES_DIR);
  if (!manifests.length) throw new StageError(`no release manifests in ${o.releasesDir ?? RELEASES_DIR}: nothing to watch`, 'cli');
  const versions = (await proxyVersions(o.goproxy)).filter((v) => !isPrerelease(v)).sort(compareVersionsDesc);
  const newestByMinor = new Map<string, LoadedManifest>();
  for (const m of manifests) if (!newestByMinor.has(minorOf(m.data.kubernetes.version))) newestByMinor.set(minorOf(m.data.kubernetes.version), m);
  const minors: MinorWatch[] = [];
  for (const [minor, current] of newestByMinor) {
    const cur = current.data.kubernetes.version;
    const w: MinorWatch = { minor, current: current.id, next: null, incomplete: [] };
    const probed = await probeNextPatches(cur, o.goproxy);
    const candidates = [...new Set([...versions.filter((x) => minorOf(x) === minor && compareVersionsDesc(x, cur) < 0), ...probed])].sort(compareVersionsDesc);
    for (const v of candidates) {
      // complete = pin succeeds: the root module and every staging module at the matching version
      const dir = await mkdtemp(path.join(os.tmpdir(), 'kubelet-lxc-watch-pin-'));
      try {
        await pinRelease({ version: v, kine: current.data.kine?.version, goproxy: o.goproxy, releasesDir: dir, log: o.log });
        w.next = v;
        break;
      } catch (e) {
        w.incomplete.push({ version: v, reason: (e as Error).message.split('\n')[0]! });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    minors.push(w);
  }
  const top = [...newestByMinor.keys()].sort((a, b) => compareVersionsDesc(`${a}.0`, `${b}.0`))[0]!;
  const topMinor = parseVersion(`${top}.0`)!.minor;
  const newMinor = versions.find((v) => parseVersion(v)!.minor > topMinor) ?? (await probeNextMinor(top, o.goproxy));
  return { goproxy: o.goproxy ?? process.env.GOPROXY ?? '(go env default)', minors, newMinor };
}

/**
 * --apply: rebase each minor onto its next release; the bodies of the pull request (everything
 * written) and of one issue per conflict or failed matrix go to outDir.
 */
export async function applyUpstreamWatch(
  plan: WatchPlan,
  o: { releasesDir?: string; outDir: string; rebase: (from: LoadedManifest, version: string) => Promise<RebaseReport> },
): Promise<WatchOutcome> {
  await mkdir(o.outDir, { recursive: true });
  const manifests = listManifests(o.releasesDir ?? RELEASES_DIR);
  const out: WatchOutcome = { ...plan, rebases: [], pullRequest: null, issues: [] };
  const prParts: string[] = [];
  for (const w of plan.minors) {
    if (!w.next) continue;
    const from = manifests.find((m) => m.id === w.current)!;
    // a series that fails its matrix is reported, not proposed: keep what was there before
    const seriesDir = path.join(path.dirname(from.patchesDir), w.minor);
    const saved = await mkdtemp(path.join(os.tmpdir(), 'kubelet-lxc-watch-keep-'));
    const hadSeries = await exists(seriesDir);
    if (hadSeries) await cp(seriesDir, path.join(saved, 'series'), { recursive: true });
    const report = await o.rebase(from, w.next).catch(async (e) => {
      await rm(saved, { recursive: true, force: true });
      throw e;
    });
    if (report.written && !report.ok) {
      await rm(seriesDir, { recursive: true, force: true });
      if (hadSeries) await cp(path.join(saved, 'series'), seriesDir, { recursive: true });
      if (report.to.manifest) await rm(report.to.manifest, { force: true });
    }
    await rm(saved, { recursive: true, force: true });
    let removed: string | null = null;
    if (report.written && minorOf(from.data.kubernetes.version) === w.minor && report.ok) {
      // the minor's series now belongs to the new release: the old manifest would point at it
      await rm(from.file, { force: true });
      removed = from.file;
    }
    out.rebases.push({ minor: w.minor, from: from.id, to: w.next, ok: report.ok, written: report.written, report: report.reportFile, removed });
    const body = formatRebase(report);
    if (report.ok) {
      prParts.push(`## ${w.minor}: ${from.id} -> ${w.next}\n\n${body}${removed ? `\n\nRemoved ${path.basename(removed)}: the ${w.minor} series now belongs to ${w.next}.` : ''}`);
    } else {
      const what = report.written ? 'the matrix fails (nothing kept)' : `${report.patches.filter((p) => p.outcome === 'conflict').map((p) => p.patch).join(', ')} conflict`;
      const file = path.join(o.outDir, `issue-${w.minor}.md`);
      await writeFile(file, `${body}\n\nFound by kubelet-lxc upstream-watch. Refresh the series by hand: git am -3 in a checkout of ${w.next}, resolve, git format-patch into the series folder, then kubelet-lxc matrix --release ${w.next}.\n`);
      out.issues.push({ title: `Kubernetes ${w.next}: the ${w.minor} series does not carry over (${what})`, bodyFile: file });
    }
  }
  if (prParts.length) {
    const done = out.rebases.filter((r) => r.ok).map((r) => r.to);
    const file = path.join(o.outDir, 'pull-request.md');
    await writeFile(file, `The Go module proxy serves ${done.join(', ')}. kubelet-lxc upstream-watch pinned ${done.length > 1 ? 'them' : 'it'}, replayed the series (rebase) and ran the stock-vs-patched matrix.\n\n${prParts.join('\n\n')}\n`);
    out.pullRequest = { title: `Kubernetes ${done.join(', ')}: series rebased, matrix passed`, branch: `upstream-watch/${done.join('-')}`, bodyFile: file };
  }
  if (plan.newMinor) {
    const file = path.join(o.outDir, 'new-minor.md');
    await writeFile(file, `The Go module proxy serves Kubernetes ${plan.newMinor}, a minor newer than every supported one. Start its series with: kubelet-lxc rebase <newest release> ${plan.newMinor}\n`);
  }
  await writeFile(path.join(o.outDir, 'watch.json'), `${JSON.stringify(out, null, 2)}\n`);
  return out;
}

export function formatPlan(p: WatchPlan): string {
  const lines = p.minors.map((m) => `${m.minor}: ${m.current} -> ${m.next ?? 'up to date'}${m.incomplete.length ? ` (not served completely: ${m.incomplete.map((i) => i.version).join(', ')})` : ''}`);
  if (p.newMinor) lines.push(`new minor: ${p.newMinor} (start its series with kubelet-lxc rebase)`);
  return lines.join('\n');
}
