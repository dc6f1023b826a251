// Test helpers: a real upstream-shaped git repository with annotated tags (served as a bare
// repo over file://), manifests pointing at it, and the real CLI run as a child process.
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { PROJECT_ROOT } from '../../src/manifest.js';

export const FIXTURE_DIR = path.join(PROJECT_ROOT, 'test', 'fixtures');
export const FIXTURE_VERSION = 'v1.99.0';
/** A later tag whose cpus.go changed where the fixture patch has its context. */
export const FIXTURE_MOVED_VERSION = 'v1.99.1';
export const FIXTURE_TIME = '2026-03-01T12:00:00Z';

const gitEnv = {
  GIT_AUTHOR_NAME: 'Upstream',
  GIT_AUTHOR_EMAIL: 'upstream@example.invalid',
  GIT_COMMITTER_NAME: 'Upstream',
  GIT_COMMITTER_EMAIL: 'upstream@example.invalid',
  GIT_AUTHOR_DATE: FIXTURE_TIME,
  GIT_COMMITTER_DATE: FIXTURE_TIME,
  GIT_CONFIG_NOSYSTEM: '1',
};

async function git(cwd: string, ...args: string[]): Promise<string> {
  return (await execa('git', args, { cwd, env: gitEnv })).stdout.trim();
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `kubelet-lxc-test-${prefix}-`));
}

export async function hostGoVersion(): Promise<string> {
  return (await execa('go', ['env', 'GOVERSION'], { env: { ...process.env, GOTOOLCHAIN: 'local' } })).stdout.trim().replace(/^go/, '');
}

export interface UpstreamRepo {
  url: string;
  bare: string;
  commits: Record<string, string>;
  goVersion: string;
}

/** A bare repository with the fixture tree at FIXTURE_VERSION and a changed tree at FIXTURE_MOVED_VERSION. */
export async function makeUpstreamRepo(root: string): Promise<UpstreamRepo> {
  const work = path.join(root, 'upstream-work');
  await cp(path.join(FIXTURE_DIR, 'upstream'), work, { recursive: true });
  const goVersion = await hostGoVersion();
  await writeFile(path.join(work, '.go-version'), `${goVersion}\n`);
  await git(work, 'init', '-q', '-b', 'master');
  await git(work, 'add', '-A');
  await git(work, 'commit', '-q', '-m', 'Release v1.99.0');
  await git(work, 'tag', '-a', '-m', 'Kubernetes v1.99.0', FIXTURE_VERSION);
  const cpus = path.join(work, 'pkg', 'kubelet', 'cm', 'cpus.go');
  const text = await readFile(cpus, 'utf8');
  await writeFile(cpus, text.replace('func CountCPUs(list string) (int, error) {', 'func CountCPUs(list string) (n int, err error) {'));
  await git(work, 'commit', '-q', '-a', '-m', 'Release v1.99.1: named results');
  await git(work, 'tag', '-a', '-m', 'Kubernetes v1.99.1', FIXTURE_MOVED_VERSION);
  const bare = path.join(root, 'upstream.git');
  await execa('git', ['clone', '-q', '--bare', work, bare]);
  const commits: Record<string, string> = {};
  for (const t of [FIXTURE_VERSION, FIXTURE_MOVED_VERSION]) commits[t] = await git(bare, 'rev-parse', `${t}^{commit}`);
  return { url: `file://${bare}`, bare, commits, goVersion };
}

export interface FixtureManifestOptions {
  version?: string;
  commit: string | null;
  goVersion: string;
  patches: string;
  stamp?: string;
  platforms?: string[];
  goproxy?: unknown;
  gitUrl?: string;
}

/** Write a release manifest for the fixture into dir; returns its path. */
export async function writeFixtureManifest(dir: string, o: FixtureManifestOptions): Promise<string> {
  const version = o.version ?? FIXTURE_VERSION;
  const manifest = {
    schema: 1,
    kubernetes: { version, commit: o.commit, commitTime: FIXTURE_TIME },
    source: { default: 'git', git: { url: o.gitUrl ?? 'file:///nonexistent' }, ...(o.goproxy ? { goproxy: o.goproxy } : {}) },
    go: { version: o.goVersion },
    patches: path.relative(dir, o.patches),
    stamp: { version: o.stamp ?? `${version}+rke2r1` },
    rke2: { version: `${version}+rke2r1`, runtimeImage: `rancher/rke2-runtime:${version}-rke2r1` },
    platforms: o.platforms ?? ['linux/amd64', 'linux/arm64'],
    target: './cmd/kubelet',
  };
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${version}.json`);
  await writeFile(file, `${JSON.stringify(manifest, null, 2)}\n`);
  return file;
}

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** The real CLI, as a user runs it. */
/** The CLI as users run it: the package's bin entry (tsx loaded in-process). */
export const CLI_ENTRY = path.join(PROJECT_ROOT, 'bin', 'kubelet-lxc.js');

/**
 * stream: pass the CLI's progress (stderr) through to this process's stderr as it comes, each
 * line marked with the command, so a long test shows what it is doing while it runs (CI logs).
 */
export async function runCli(args: string[], env: Record<string, string> = {}, opts: { stream?: boolean } = {}): Promise<CliResult> {
  const child = execa(process.execPath, [CLI_ENTRY, ...args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, CI: '1', ...env },
    reject: false,
    all: false,
  });
  if (opts.stream) {
    const tag = `kubelet-lxc ${args[0] ?? ''}`;
    let buf = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) process.stderr.write(`  | ${tag} ${l}\n`);
    });
  }
  const res = await child;
  return { exitCode: res.exitCode ?? -1, stdout: String(res.stdout), stderr: String(res.stderr) };
}

export async function cleanup(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
