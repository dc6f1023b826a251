// A stage reruns when a file that feeds it changes, not when someone remembers to bump a number:
// the builder image's files (Dockerfile.build, build/builder/**) rerun build, the installer and
// templates rerun package, the patch series' site-tests.json reruns smoke. Real fixture builds
// through the real CLI, with real git, Go and a container engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFile, cp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { FIXTURE_DIR, FIXTURE_VERSION, cleanup, makeUpstreamRepo, runCli, tempDir, writeFixtureManifest, type UpstreamRepo } from './helpers/fixture.js';
import { PROJECT_ROOT } from '../src/manifest.js';

let root: string;
let upstream: UpstreamRepo;
let manifest: string;
let patches: string;

beforeAll(async () => {
  const docker = await execa('docker', ['info'], { reject: false }).catch(() => undefined);
  if (docker?.exitCode !== 0) throw new Error('these tests need a running Docker engine: apt-get install -y docker.io && (dockerd > /var/log/dockerd.log 2>&1 &)');
  root = await tempDir('stage-cache');
  upstream = await makeUpstreamRepo(root);
  patches = path.join(root, 'patches');
  await cp(path.join(FIXTURE_DIR, 'patches'), patches, { recursive: true });
  manifest = await writeFixtureManifest(path.join(root, 'releases'), { commit: upstream.commits[FIXTURE_VERSION]!, goVersion: upstream.goVersion, patches, platforms: ['linux/amd64'] });
});

afterAll(async () => {
  if (root) await cleanup(root);
});

async function build(): Promise<{ statuses: string[]; stderr: string }> {
  const res = await runCli(['build', '--release', manifest, '--source', 'git', '--source-url', upstream.url, '--workdir', path.join(root, 'w'), '--cache-dir', path.join(root, 'cache'), '--builder-base', 'local', '--json']);
  expect(res.exitCode, res.stderr).toBe(0);
  const out = JSON.parse(res.stdout) as { stages: { stage: string; status: string }[] };
  return { statuses: out.stages.map((s) => `${s.stage}=${s.status}`), stderr: res.stderr };
}

/** Change a file of the project for the length of fn, then put its bytes back. */
async function withChangedFile(file: string, change: () => Promise<void>, fn: () => Promise<void>): Promise<void> {
  const before = await readFile(file).catch(() => undefined);
  try {
    await change();
    await fn();
  } finally {
    if (before === undefined) await rm(file, { force: true });
    else await writeFile(file, before);
  }
}

describe('stage cache keys come from the files that feed each stage', () => {
  it('a first build runs every stage, a second skips them all', async () => {
    expect((await build()).statuses).toEqual(['source=ran', 'patch=ran', 'build=ran', 'package=ran', 'smoke=ran']);
    expect((await build()).statuses).toEqual(['source=skipped', 'patch=skipped', 'build=skipped', 'package=skipped', 'smoke=skipped']);
  });

  it('a changed file of the builder image reruns build, in a new builder image', async () => {
    const marker = path.join(PROJECT_ROOT, 'build', 'builder', 'home', `.stage-cache-test-${process.pid}`);
    const images = async () => (await execa('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}', 'kubelet-lxc-builder'])).stdout.split('\n').filter(Boolean);
    const had = new Set(await images());
    try {
      await withChangedFile(marker, () => writeFile(marker, 'a file the builder image now holds\n'), async () => {
        const { statuses, stderr } = await build();
        expect(statuses.slice(0, 3)).toEqual(['source=skipped', 'patch=skipped', 'build=ran']);
        expect(stderr).toMatch(/building kubelet-lxc-builder:go[\d.]+-[0-9a-f]{12} from Dockerfile\.build/);
        expect(stderr).toMatch(/compiling patched kubelet for linux\/amd64/);
      });
      // back to the original files: build reruns again, with the original image
      expect((await build()).statuses.slice(0, 3)).toEqual(['source=skipped', 'patch=skipped', 'build=ran']);
    } finally {
      for (const ref of (await images()).filter((r) => !had.has(r))) await execa('docker', ['rmi', '-f', ref], { reject: false });
    }
  });

  it('a changed install.sh reruns package (and nothing before it)', async () => {
    const script = path.join(PROJECT_ROOT, 'src', 'rke2', 'install.sh');
    await withChangedFile(script, () => appendFile(script, '# a changed installer\n'), async () => {
      const { statuses } = await build();
      expect(statuses.slice(0, 4)).toEqual(['source=skipped', 'patch=skipped', 'build=skipped', 'package=ran']);
    });
    expect((await build()).statuses.slice(0, 4)).toEqual(['source=skipped', 'patch=skipped', 'build=skipped', 'package=ran']);
  });

  it("a changed site-tests.json of the series reruns smoke (and nothing before it)", async () => {
    await writeFile(path.join(patches, 'site-tests.json'), `${JSON.stringify({ sites: [] }, null, 2)}\n`);
    const { statuses } = await build();
    expect(statuses).toEqual(['source=skipped', 'patch=skipped', 'build=skipped', 'package=skipped', 'smoke=ran']);
  });
});
