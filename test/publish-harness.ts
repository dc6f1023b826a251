// Shared by the publish tests: a fixture manifest and dist/ in a temp dir, the real CLI run as a
// child process against the fake GitHub, and the check that a release holds exactly the assets.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { expect } from 'vitest';
import { PROJECT_ROOT } from '../src/manifest.js';
import { describeArtifact, readArtifactLists, writeArtifactList, writeChecksums } from '../src/stages/package/artifacts.js';
import type { FakeGitHub, FakeRelease } from './helpers/fake-github.js';

export const OWNER = 'lxc-lab';
export const REPO = 'kubelet-lxc';
export const TAG = 'v1.36.4+rke2r1';
export const MANIFEST_ID = 'v1.36.4';

/** The CLI entry, as users run it. */
export function cliEntry(): string {
  return path.join(PROJECT_ROOT, 'bin', 'kubelet-lxc.js');
}

export function newToken(): string {
  return `ghp_${randomBytes(18).toString('base64url')}`;
}

export interface Fixture {
  root: string;
  manifestFile: string;
  workdir: string;
  dist: string;
  cleanup(): Promise<void>;
}

export const MANIFEST = {
  schema: 1,
  kubernetes: { version: 'v1.36.4', commit: 'f'.repeat(40), commitTime: '2026-01-01T00:00:00Z' },
  source: { default: 'git', git: { url: 'https://github.com/kubernetes/kubernetes.git' } },
  go: { version: '1.26.7' },
  patches: 'patches',
  stamp: { version: TAG },
  rke2: { version: 'v1.36.4+rke2r1', runtimeImage: 'rancher/rke2-runtime:v1.36.4-rke2r1' },
  platforms: ['linux/amd64', 'linux/arm64'],
};

/** A manifest and a dist/ like the package stage leaves: per platform a tarball, an SBOM and an image archive in an artifact list, and the checksum files. */
export async function makeFixture(opts: { bigBytes?: number } = {}): Promise<Fixture> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'kubelet-lxc-publish-'));
  await mkdir(path.join(root, 'releases', 'patches'), { recursive: true });
  const manifestFile = path.join(root, 'releases', `${MANIFEST_ID}.json`);
  await writeFile(manifestFile, JSON.stringify(MANIFEST, null, 2));
  const workdir = path.join(root, 'work');
  const dist = path.join(workdir, 'out', MANIFEST_ID, 'dist');
  await mkdir(dist, { recursive: true });
  const big = opts.bigBytes ?? 3 * 1024 * 1024;
  for (const arch of ['amd64', 'arm64'] as const) {
    const platform = `linux/${arch}` as const;
    const files: [string, string][] = [
      [`kubelet-linux-${arch}.tar.gz`, 'kubelet-tarball'],
      [`kubelet-linux-${arch}.spdx.json`, 'sbom'],
      [`rke2-runtime-${arch}.tar`, 'rke2-runtime-image'],
    ];
    await writeFile(path.join(dist, files[0]![0]), randomBytes(big));
    await writeFile(path.join(dist, files[1]![0]), JSON.stringify({ spdxVersion: 'SPDX-2.3', name: `kubelet-linux-${arch}` }));
    await writeFile(path.join(dist, files[2]![0]), randomBytes(256 * 1024));
    const artifacts = await Promise.all(files.map(([n, kind]) => describeArtifact(path.join(dist, n), kind, { platform })));
    await writeArtifactList(dist, { schema: 1, platform, artifacts });
  }
  // the checksum files as the package stage writes them: from the lists
  await writeChecksums(dist);
  return { root, manifestFile, workdir, dist, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** As a package stage rerun leaves dist/ after some files changed: every list entry described again from its file, the checksum files rewritten. */
export async function relist(dist: string): Promise<void> {
  for (const list of (await readArtifactLists(dist)).lists.values()) {
    const artifacts = await Promise.all(list.artifacts.map((a) => describeArtifact(path.join(dist, a.name), a.kind, { platform: a.platform, standIn: a.standIn })));
    await writeArtifactList(dist, { ...list, artifacts });
  }
  await writeChecksums(dist);
}

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  all: string;
}

export async function publishCli(
  fx: Fixture,
  gh: FakeGitHub,
  token: string | undefined,
  args: string[],
  extraEnv: Record<string, string> = {},
): Promise<CliResult> {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    CI: 'true',
    GITHUB_API_URL: gh.apiUrl,
    GITHUB_TOKEN: token,
    GH_TOKEN: undefined,
    ...extraEnv,
  };
  const r = await execa(process.execPath, [cliEntry(), 'publish', '--release', fx.manifestFile, '--workdir', fx.workdir, '--repo', `${OWNER}/${REPO}`, ...args], {
    cwd: PROJECT_ROOT,
    env,
    extendEnv: false,
    reject: false,
    all: true,
    timeout: 120_000,
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), all: String(r.all) };
}

/** The assets dist/ should produce on the release: every file in it, as it is. */
export async function expectedAssets(dist: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const name of (await readdir(dist)).sort()) files.set(name, await readFile(path.join(dist, name)));
  return files;
}

/** The release holds every asset exactly once, complete, with the bytes of dist/, and nothing else. */
export async function expectReleaseMatches(gh: FakeGitHub, dist: string, published: boolean): Promise<FakeRelease> {
  const rels = gh.releases.filter((r) => r.tag_name === TAG);
  expect(rels.map((r) => r.id)).toHaveLength(1);
  const rel = rels[0]!;
  expect(rel.draft).toBe(!published);
  expect(rel.name).toBe(`kubelet-lxc ${TAG}`);
  const want = await expectedAssets(dist);
  expect(rel.assets.map((a) => a.name).sort()).toEqual([...want.keys()].sort());
  for (const a of rel.assets) {
    expect(a.state, a.name).toBe('uploaded');
    expect(a.bytes.equals(want.get(a.name)!), `bytes of ${a.name}`).toBe(true);
  }
  // And the sums verify with the real tool, over the release's bytes.
  const check = await mkdtemp(path.join(os.tmpdir(), 'kubelet-lxc-sums-'));
  try {
    for (const a of rel.assets) await writeFile(path.join(check, a.name), a.bytes);
    const r = await execa('sha256sum', ['-c', 'SHA256SUMS'], { cwd: check, reject: false });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter((l) => l.endsWith(': OK'))).toHaveLength([...want.keys()].filter((n) => !/^SHA(256|512)SUMS/.test(n)).length);
  } finally {
    await rm(check, { recursive: true, force: true });
  }
  return rel;
}

export function expectNoToken(result: CliResult, ...tokens: string[]): void {
  for (const t of tokens) {
    expect(result.all.includes(t), 'token in the output').toBe(false);
    expect(result.all.includes(encodeURIComponent(t)), 'URL-encoded token in the output').toBe(false);
  }
}

export function parseReport(r: CliResult): {
  published: boolean;
  dryRun: boolean;
  remoteRead: boolean;
  wouldPublish: boolean;
  release: { id: number | null; origin: string; draft: boolean; url: string | null };
  assets: { name: string; action: string; plan: string; sha256: string; size: number; kind: string; note?: string }[];
  removed: { name: string; id: number; reason: string }[];
} {
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`the CLI did not print a JSON report (exit ${r.exitCode}):\n${r.all}`);
  }
}
