// Bad input at the command line, as a new user types it: every option is checked before any
// stage does work (dry runs too), each error names the flag and the fix, and --json errors are
// JSON. Real git repositories, the real CLI, a real container engine where a stage verifies one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { FIXTURE_DIR, FIXTURE_VERSION, cleanup, makeUpstreamRepo, runCli, tempDir, writeFixtureManifest, type UpstreamRepo } from './helpers/fixture.js';
import { exists } from '../src/lib/fsutil.js';

let root: string;
let upstream: UpstreamRepo;
let manifest: string;

beforeAll(async () => {
  root = await tempDir('cli-input');
  upstream = await makeUpstreamRepo(root);
  manifest = await writeFixtureManifest(path.join(root, 'releases'), {
    commit: upstream.commits[FIXTURE_VERSION]!,
    goVersion: upstream.goVersion,
    patches: path.join(FIXTURE_DIR, 'patches'),
  });
});

afterAll(async () => {
  if (root) await cleanup(root);
});

/** A build command on the fixture, in a fresh work directory unless one is given. */
function build(workdir: string, extra: string[]): string[] {
  return ['build', '--release', manifest, '--source', 'git', '--source-url', upstream.url, '--workdir', workdir, '--cache-dir', path.join(root, 'cache'), '--builder-base', 'local', ...extra];
}

async function manifestWith(name: string, change: { goVersion?: string; patches?: string }): Promise<string> {
  return writeFixtureManifest(path.join(root, `releases-${name}`), {
    commit: upstream.commits[FIXTURE_VERSION]!,
    goVersion: change.goVersion ?? upstream.goVersion,
    patches: change.patches ?? path.join(FIXTURE_DIR, 'patches'),
  });
}

/** Mount a read-only tmpfs (the read-only work directory of a user). */
async function readOnlyDir(name: string): Promise<string> {
  if (process.getuid?.() !== 0) throw new Error('this test mounts a read-only tmpfs: run it as root (CI does)');
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true });
  await execa('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'kubelet-lxc-ro', dir]);
  return dir;
}

describe('platform list', () => {
  it('an empty --platform ("" or ",") is an error naming --platform, and nothing is built or written', async () => {
    for (const value of ['', ',']) {
      const workdir = path.join(root, `w-empty-${value.length}`);
      const res = await runCli(build(workdir, ['--platform', value]));
      expect(res.exitCode, res.stderr).toBe(1);
      expect(res.stderr).toMatch(/^error: cli: --platform is empty: give one or more of linux\/amd64, linux\/arm64/m);
      expect(await exists(workdir)).toBe(false);
    }
  });
});

describe('lab options', () => {
  it('lab refuses an unknown --profile and a platform it cannot run before any stage, also with --dry-run', async () => {
    const cases: { args: string[]; want: RegExp }[] = [
      { args: ['--profile', 'nosuch'], want: /unknown lab profile\(s\): nosuch \(known: [\w-]+, / },
      { args: ['--profile', 'nosuch', '--dry-run'], want: /unknown lab profile\(s\): nosuch/ },
      { args: ['--platform', 'linux/arm64'], want: /the lab runs linux\/amd64 kubelets only.*--platform linux\/arm64/ },
      { args: ['--platform', 'linux/amd64,linux/arm64', '--dry-run'], want: /the lab runs linux\/amd64 kubelets only.*--platform linux\/arm64/ },
    ];
    for (const [i, c] of cases.entries()) {
      const workdir = path.join(root, `w-lab-${i}`);
      // The source URL does not exist: a stage that ran before the check would fail on it instead.
      const res = await runCli(['lab', '--release', manifest, '--source', 'git', '--source-url', 'file:///nonexistent/kubernetes.git', '--workdir', workdir, ...c.args]);
      expect(res.exitCode, `${c.args.join(' ')}: ${res.stderr}`).toBe(1);
      expect(res.stderr, c.args.join(' ')).toMatch(c.want);
      expect(res.stderr).not.toMatch(/would run source|-> source/);
      expect(await exists(path.join(workdir, 'state')), c.args.join(' ')).toBe(false);
    }
  });
});

describe('work directories', () => {
  it('a --workdir or --cache-dir that is a file, under a file, or read-only is refused naming the flag, dry run or not', async () => {
    const file = path.join(root, 'a-file');
    await writeFile(file, 'not a directory\n');
    const ro = await readOnlyDir('ro');
    try {
      const cases: { args: string[]; want: RegExp }[] = [
        { args: build(file, ['--dry-run']), want: /--workdir .*a-file is a file, not a directory/ },
        { args: build(path.join(file, 'sub'), ['--dry-run']), want: /--workdir .*a-file\/sub: .*a-file is a file, not a directory/ },
        { args: build(path.join(ro, 'w'), ['--dry-run']), want: /--workdir .*ro\/w cannot be written: read-only file system/ },
        { args: build(path.join(ro, 'w'), ['--to', 'source']), want: /--workdir .*ro\/w cannot be written: read-only file system/ },
        { args: [...build(path.join(root, 'w-cache'), ['--dry-run']), '--cache-dir', path.join(ro, 'c')], want: /--cache-dir .*ro\/c cannot be written: read-only file system/ },
      ];
      for (const c of cases) {
        const res = await runCli(c.args);
        expect(res.exitCode, res.stderr).toBe(1);
        expect(res.stderr).toMatch(c.want);
        expect(res.stderr).toMatch(/give a directory this user can write/);
        expect(res.stderr).not.toMatch(/ENOENT|EROFS|ENOTDIR|EACCES/);
      }
    } finally {
      await execa('umount', ['-l', ro], { reject: false });
    }
  });
});

describe('up-front checks of every selected stage', () => {
  it('a dry run refuses a missing series, an unknown Go, a missing --base-image-archive and duplicate platforms', async () => {
    const emptyPatches = await mkdtemp(path.join(root, 'no-series-'));
    const cases: { args: string[]; want: RegExp }[] = [
      { args: ['--release', await manifestWith('noseries', { patches: emptyPatches })], want: /^error: patch: no patch series at .*series/m },
      { args: ['--release', await manifestWith('go99', { goVersion: '99.99.99' })], want: /^error: build: Go 99\.99\.99 .*is not a Go release/m },
      { args: ['--base-image-archive', path.join(root, 'missing-{arch}.tar')], want: /^error: package: --base-image-archive .*missing-amd64\.tar does not exist/m },
      { args: ['--platform', 'linux/amd64,linux/amd64'], want: /^error: cli: --platform names linux\/amd64 twice/m },
    ];
    for (const [i, c] of cases.entries()) {
      const workdir = path.join(root, `w-verify-${i}`);
      // the later --release wins over build()'s
      const res = await runCli([...build(workdir, ['--dry-run']), ...c.args]);
      expect(res.exitCode, `${c.args.join(' ')}: ${res.stderr}`).toBe(1);
      expect(res.stderr).toMatch(c.want);
      expect(res.stderr).not.toMatch(/would run/);
    }
  });

  it('pin checks --rke2 and --stamp before resolving any module, naming the flag', async () => {
    const releases = path.join(root, 'pin-releases');
    const cases: { args: string[]; want: RegExp }[] = [
      { args: ['--stamp', 'v1.36.5+lxc.1'], want: /^error: cli: --stamp v1\.36\.5\+lxc\.1 must have v1\.36\.4 as its core/m },
      { args: ['--stamp', 'banana'], want: /^error: cli: --stamp banana is not a semver version/m },
      { args: ['--rke2', 'v1.36.3+rke2r1'], want: /^error: cli: --rke2 v1\.36\.3\+rke2r1 does not ship Kubernetes v1\.36\.4 \(expected v1\.36\.4\+rke2rN\)/m },
    ];
    for (const c of cases) {
      // a closed port: resolving would fail at once with a proxy error instead
      const res = await runCli(['pin', 'v1.36.4', '--goproxy', 'http://127.0.0.1:1', '--releases-dir', releases, ...c.args]);
      expect(res.exitCode, res.stderr).toBe(1);
      expect(res.stderr).toMatch(c.want);
      expect(res.stderr).not.toMatch(/resolving k8s\.io\/kubernetes|module proxy/);
    }
    expect(await exists(releases)).toBe(false);
  });
});

describe('hints name flags that exist', () => {
  it('builder-image suggests its own --base local, and never --engine host, which it refuses', async () => {
    const go99 = await manifestWith('bi-go99', { goVersion: '99.99.99' });
    const pull = await runCli(['builder-image', '--release', go99, '--base', 'official', '--engine', 'docker']);
    expect(pull.exitCode, pull.stderr).toBe(1);
    expect(pull.stderr).toMatch(/cannot pull the official Go image .*; use --base local to bootstrap it from the host toolchain/);
    expect(pull.stderr).not.toContain('--builder-base');

    const none = await runCli(['builder-image', '--release', manifest], { PATH: path.join(root, 'empty-path') });
    expect(none.exitCode, none.stderr).toBe(1);
    expect(none.stderr).toMatch(/no usable container engine \(docker: not installed; podman: not installed\)/);
    expect(none.stderr).toContain('apt-get install -y docker.io');
    expect(none.stderr).not.toContain('--engine host');

    // the docker CLI is there, its daemon is not (a socket nobody listens on): say how to start it
    const down = await runCli(['builder-image', '--release', manifest, '--engine', 'docker'], { DOCKER_HOST: `unix://${path.join(root, 'no-dockerd.sock')}` });
    expect(down.exitCode, down.stderr).toBe(1);
    expect(down.stderr).toMatch(/no usable container engine \(docker: installed, but the engine does not answer\)/);
    expect(down.stderr).toContain('Start the Docker engine: (dockerd > /var/log/dockerd.log 2>&1 &)');
    expect(down.stderr).not.toContain('Cannot connect to the Docker daemon');
  });
});

describe('--json', () => {
  it('every command with --json prints its error as JSON on stdout, with a non-zero exit', async () => {
    const cases: { args: string[]; stage: string | null; error: RegExp }[] = [
      { args: build(path.join(root, 'w-json'), ['--platform', '', '--json']), stage: 'cli', error: /--platform is empty/ },
      { args: ['source', '--release', path.join(root, 'nope.json'), '--json'], stage: null, error: /cannot read release manifest/ },
      { args: build(path.join(root, 'w-json2'), ['--engine', 'nosuch', '--json']), stage: 'cli', error: /argument 'nosuch' is invalid/ },
      { args: ['lab', '--release', manifest, '--profile', 'nosuch', '--json'], stage: 'cli', error: /unknown lab profile/ },
      { args: ['pin', 'banana', '--json'], stage: 'cli', error: /"banana" is not a Kubernetes version/ },
      { args: ['builder-image', '--release', 'v0.0.1', '--json'], stage: null, error: /no release manifest "v0\.0\.1"/ },
      { args: ['publish', '--release', manifest, '--workdir', path.join(root, 'w-json3'), '--repo', 'o/r', '--json'], stage: null, error: /Run the build first/ },
      { args: ['install', '--root', root, '--json'], stage: null, error: /give the bundle to install/ },
      { args: ['releases', '--json', '--no-such-flag'], stage: 'cli', error: /unknown option '--no-such-flag'/ },
    ];
    for (const c of cases) {
      const res = await runCli(c.args, { GITHUB_TOKEN: '' });
      expect(res.exitCode, `${c.args.join(' ')}: ${res.stderr}`).not.toBe(0);
      let out: { error: string; stage: string | null; hint: string | null };
      try {
        out = JSON.parse(res.stdout);
      } catch {
        throw new Error(`${c.args.join(' ')}: stdout is not JSON: ${JSON.stringify(res.stdout)} (stderr: ${res.stderr})`);
      }
      expect(Object.keys(out).sort(), c.args.join(' ')).toEqual(['error', 'hint', 'stage']);
      expect(out.error, c.args.join(' ')).toMatch(c.error);
      expect(out.stage, c.args.join(' ')).toBe(c.stage);
      expect(out.hint === null || typeof out.hint === 'string').toBe(true);
    }
  });
});

describe('doctor', () => {
  it('without a built doctor says where it looked and how to get one; with --binary it runs that one and passes its exit status on', async () => {
    const workdir = path.join(root, 'w-doctor');
    const res = await runCli(['doctor', '--release', manifest, '--workdir', workdir]);
    expect(res.exitCode).not.toBe(0);
    expect(res.stderr).toContain(`no kubelet-lxc-doctor at ${path.join(workdir, 'out')}`);
    expect(res.stderr).toMatch(/npm run build-kubelet.*--binary.*kubelet-lxc-doctor-linux-/s);
    // a stand-in that answers like the doctor on a node where the patched kubelet is blocked too (exit 1)
    const fake = path.join(root, 'fake-doctor');
    await writeFile(fake, '#!/bin/sh\necho "args: $*"\nexit 1\n', { mode: 0o755 });
    const ran = await runCli(['doctor', '--binary', fake, '--json', '--kubelet-config', 'k.yaml']);
    expect(ran.exitCode).toBe(1);
    expect(ran.stdout.trim()).toBe(`args: --json --kubelet-config ${path.resolve('k.yaml')}`);
    await writeFile(fake, '#!/bin/sh\necho broken >&2\nexit 2\n', { mode: 0o755 });
    const broken = await runCli(['doctor', '--binary', fake]);
    expect(broken.exitCode).not.toBe(0);
    expect(broken.stderr).toContain('could not run (exit 2): broken');
  });
});

describe('nothing left behind by refused runs', () => {
  it('no refused command above created a work directory', async () => {
    const made = (await readdir(root)).filter((n) => n.startsWith('w-'));
    expect(made).toEqual([]);
  });
});
