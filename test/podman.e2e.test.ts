// Podman, rootful, for real: the builder image and a whole fixture pipeline build with
// --engine podman, through the real CLI, with real git and Go; the kubelets come out
// bit-identical to docker's. A missing or broken podman fails these tests, naming the fix.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { execa } from 'execa';
import { FIXTURE_DIR, FIXTURE_VERSION, cleanup, makeUpstreamRepo, runCli, tempDir, writeFixtureManifest, type UpstreamRepo } from './helpers/fixture.js';
import { fileHash } from '../src/lib/fsutil.js';

let root: string;
let upstream: UpstreamRepo;
let manifest: string;

interface BuildSummary {
  binaries: { program: string; variant: string; platform: string; path: string; sha256: string }[];
  dist: { name: string; sha256: string }[];
  stages: { stage: string; status: string; seconds: number }[];
}

beforeAll(async () => {
  const version = await execa('podman', ['--version'], { reject: false }).catch(() => undefined);
  if (!version || version.exitCode !== 0) throw new Error('these tests need podman: apt-get install -y podman (scripts/ci-setup.sh installs it)');
  const info = await execa('podman', ['info', '--format', '{{.Host.OCIRuntime.Name}}'], { reject: false });
  if (info.exitCode !== 0) throw new Error(`podman is installed but \`podman info\` fails:\n${info.stderr}`);
  if (process.getuid?.() !== 0) throw new Error('these tests run podman rootful: run them as root (CI does)');
  root = await tempDir('podman');
  upstream = await makeUpstreamRepo(root);
  manifest = await writeFixtureManifest(path.join(root, 'releases'), { commit: upstream.commits[FIXTURE_VERSION]!, goVersion: upstream.goVersion, patches: path.join(FIXTURE_DIR, 'patches') });
});

afterAll(async () => {
  if (root) await cleanup(root);
});

function build(engine: 'podman' | 'docker', workdir: string): string[] {
  return ['build', '--release', manifest, '--source', 'git', '--source-url', upstream.url, '--workdir', path.join(root, workdir), '--cache-dir', path.join(root, 'cache'), '--engine', engine, '--builder-base', 'local', '--json'];
}

describe('podman (rootful)', () => {
  it('builder-image --engine podman builds the builder image, which runs the release Go', async () => {
    const started = Date.now();
    const res = await runCli(['builder-image', '--release', manifest, '--engine', 'podman', '--base', 'local', '--json'], {}, { stream: true });
    expect(res.exitCode, res.stderr).toBe(0);
    const image = JSON.parse(res.stdout) as { ref: string; id: string };
    expect(image.ref).toMatch(new RegExp(`^kubelet-lxc-builder:go${upstream.goVersion.replace(/\./g, '\\.')}-[0-9a-f]{12}$`));
    const exists = await execa('podman', ['image', 'exists', image.ref], { reject: false });
    expect(exists.exitCode).toBe(0);
    process.stderr.write(`podman builder-image: ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  });

  it('a fixture pipeline build with --engine podman runs every stage, and its kubelets match docker\'s bit for bit', async () => {
    const started = Date.now();
    const res = await runCli(build('podman', 'w-podman'), {}, { stream: true });
    expect(res.exitCode, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout) as BuildSummary;
    expect(out.stages.map((s) => `${s.stage}=${s.status}`)).toEqual(['source=ran', 'patch=ran', 'build=ran', 'package=ran', 'smoke=ran']);
    expect(res.stderr).toMatch(/compiling patched kubelet for linux\/amd64 \(v1\.99\.0\+rke2r1, go[\d.]+, podman\)/);
    const amd64 = out.binaries.find((b) => b.program === 'kubelet' && b.platform === 'linux/amd64')!;
    expect((await execa(amd64.path, ['--version'])).stdout).toBe(`Kubernetes ${FIXTURE_VERSION}+rke2r1`);
    process.stderr.write(`podman fixture build: ${((Date.now() - started) / 1000).toFixed(1)}s (${out.stages.map((s) => `${s.stage} ${s.seconds.toFixed(1)}s`).join(', ')})\n`);

    const docker = await runCli(build('docker', 'w-docker'));
    expect(docker.exitCode, docker.stderr).toBe(0);
    const twin = JSON.parse(docker.stdout) as BuildSummary;
    for (const b of out.binaries) {
      const d = twin.binaries.find((x) => x.program === b.program && x.platform === b.platform && x.variant === b.variant)!;
      expect(await fileHash(b.path), `${b.program} ${b.variant} ${b.platform}`).toBe(d.sha256);
    }
    expect(out.dist.map((f) => [f.name, f.sha256])).toEqual(twin.dist.map((f) => [f.name, f.sha256]));
  });
});
