// The GitHub Actions workflows: linted by actionlint (built from the Go module proxy by
// scripts/lint-workflows.sh), a negative control that the linter really finds faults, the
// release workflow's shape (permissions, triggers, matrix, provenance), and its SHA256SUMS step
// run for real against what the publisher accepts.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/manifest.js';
import { readAssets, SUMS_NAME } from '../src/publish/index.js';

const SCRIPT = path.join(PROJECT_ROOT, 'scripts', 'lint-workflows.sh');
const WORKFLOWS = path.join(PROJECT_ROOT, '.github', 'workflows');

async function lint(files: string[] = []) {
  const r = await execa('bash', [SCRIPT, ...files], { cwd: PROJECT_ROOT, reject: false, all: true, timeout: 600_000 });
  if (r.exitCode === 2) {
    throw new Error(
      `actionlint could not be built or run:\n${r.all}\n` +
        'It is built with Go through the module proxy: GOBIN=.work/tools/bin go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12',
    );
  }
  return { exitCode: r.exitCode ?? -1, all: String(r.all) };
}

type Step = { name?: string; uses?: string; run?: string; with?: Record<string, unknown>; env?: Record<string, string>; id?: string };
type Job = { needs?: string | string[]; permissions?: Record<string, string>; steps: Step[]; strategy?: { matrix: Record<string, unknown> }; env?: Record<string, string> };
type Workflow = { on: Record<string, unknown>; permissions?: Record<string, string>; jobs: Record<string, Job> };

async function load(name: string): Promise<Workflow> {
  return parse(await readFile(path.join(WORKFLOWS, name), 'utf8')) as Workflow;
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'kubelet-lxc-workflows-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('workflows', () => {
  it('pass actionlint', async () => {
    const r = await lint();
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toContain('2 workflow file(s) clean: .github/workflows/ci.yml .github/workflows/release.yml');
    expect(r.all).toMatch(/actionlint v1\.7\.12 (with shellcheck [\d.]+|without shellcheck)/);
  });

  it('actionlint does find faults (negative control)', async () => {
    const bad = path.join(tmp, 'bad.yml');
    await writeFile(
      bad,
      [
        'on: push',
        'jobs:',
        '  a:',
        '    runs-on: ubuntu-24.04',
        '    needs: nope',
        '    steps:',
        '      - uses: actions/attest-build-provenance@v4',
        '        with:',
        '          subject: x',
        '      - run: echo "${{ github.event.inputs.release }"',
        '',
      ].join('\n'),
    );
    const r = await lint([bad]);
    expect(r.exitCode).toBe(1);
    expect(r.all).toContain('job "a" needs job "nope" which does not exist');
    expect(r.all).toContain('input "subject" is not defined in action "actions/attest-build-provenance@v4"');
  });

  it('release.yml: tag or dispatch; plan -> build per platform -> publish with minimal permissions and provenance', async () => {
    const wf = await load('release.yml');
    expect(Object.keys(wf.on).sort()).toEqual(['push', 'workflow_dispatch']);
    expect((wf.on.push as { tags: string[] }).tags).toEqual(['v*']);
    expect(wf.permissions).toEqual({});
    expect(Object.keys(wf.jobs)).toEqual(['plan', 'build', 'publish']);
    expect(wf.jobs.build!.strategy!.matrix.platform).toBe('${{ fromJSON(needs.plan.outputs.platforms) }}');
    expect(wf.jobs.build!.permissions).toEqual({ contents: 'read' });
    const publish = wf.jobs.publish!;
    expect(publish.needs).toEqual(['plan', 'build']);
    expect(publish.permissions).toEqual({ contents: 'write', 'id-token': 'write', attestations: 'write' });
    const uses = publish.steps.map((s) => s.uses ?? '');
    expect(uses).toContain('actions/attest-build-provenance@v4');
    const attest = publish.steps.find((s) => s.uses?.startsWith('actions/attest-build-provenance'))!;
    expect(attest.with?.['subject-path']).toBe('${{ env.DIST }}/*');
    // The token reaches the publisher only through the environment.
    const runs = publish.steps.filter((s) => s.run?.includes('bin/kubelet-lxc.js publish'));
    expect(runs.map((s) => s.env?.GITHUB_TOKEN)).toEqual(['${{ github.token }}', '${{ github.token }}']);
    expect(runs[0]!.run).toContain('--dry-run');
    for (const s of runs) expect(s.run).not.toContain('github.token');
    // Caches for the Go module and build caches in the build job.
    const cache = wf.jobs.build!.steps.find((s) => s.uses?.startsWith('actions/cache'))!;
    expect(String(cache.with?.path)).toContain('~/go/pkg/mod');
    expect(String(cache.with?.path)).toContain('~/.cache/go-build');
  });

  it('ci.yml runs .ci/run with read-only permissions', async () => {
    const wf = await load('ci.yml');
    expect(wf.permissions).toEqual({ contents: 'read' });
    expect(wf.jobs.ci!.steps.at(-1)!.run).toBe('bash .ci/run');
  });

  it("release.yml's SHA256SUMS step, run for real, gives a sums file the publisher accepts", async () => {
    const wf = await load('release.yml');
    const step = wf.jobs.publish!.steps.find((s) => s.name === 'SHA256SUMS and SHA512SUMS over every asset')!;
    const dist = path.join(tmp, 'out', 'dist');
    await mkdir(dist, { recursive: true });
    await writeFile(path.join(dist, 'kubelet-linux-amd64.tar.gz'), 'amd64');
    await writeFile(path.join(dist, 'kubelet-linux-arm64.tar.gz'), 'arm64');
    await writeFile(path.join(dist, 'kubelet-linux-amd64.spdx.json'), '{}');
    await writeFile(path.join(dist, 'sha256sum-amd64.txt'), 'x');
    // What one platform's package stage left: aggregate sums over its own files only.
    await writeFile(path.join(dist, 'SHA256SUMS'), `${'0'.repeat(64)}  kubelet-linux-amd64.tar.gz\n`);
    await writeFile(path.join(dist, 'SHA512SUMS'), `${'0'.repeat(128)}  kubelet-linux-amd64.tar.gz\n`);
    const r = await execa('bash', ['-euo', 'pipefail', '-c', step.run!], { env: { DIST: dist }, reject: false, all: true });
    expect(r.exitCode, r.all).toBe(0);
    // The provenance bundle is added after the sums, as the workflow does.
    await writeFile(path.join(dist, `${SUMS_NAME}.sigstore.json`), '{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}');
    const { assets } = await readAssets(dist, 'run the build first');
    const sums = assets.find((a) => a.name === SUMS_NAME)!;
    expect(sums.source).toBe('dist');
    expect(assets.map((a) => a.name)).toEqual([
      'kubelet-linux-amd64.spdx.json',
      'kubelet-linux-amd64.tar.gz',
      'kubelet-linux-arm64.tar.gz',
      'sha256sum-amd64.txt',
      SUMS_NAME,
      'SHA512SUMS',
      `${SUMS_NAME}.sigstore.json`,
    ]);
    expect((await readFile(path.join(dist, 'SHA512SUMS'), 'utf8')).split('\n').filter(Boolean)).toHaveLength(4);
  });
});
