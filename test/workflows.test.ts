// The GitHub Actions workflows: linted by actionlint (built from the Go module proxy by
// scripts/lint-workflows.sh), a negative control that the linter really finds faults, the
// release workflow's shape (permissions, triggers, matrix, provenance), and its SHA256SUMS step
// run for real against what the publisher accepts.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/manifest.js';
import { readAssets, SUMS_NAME } from '../src/publish/index.js';
import { describeArtifact, writeArtifactList, writeChecksums } from '../src/stages/package/artifacts.js';

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

type Step = { name?: string; uses?: string; run?: string; with?: Record<string, unknown>; env?: Record<string, string>; id?: string; if?: string };
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
    expect(r.all).toContain('3 workflow file(s) clean: .github/workflows/ci.yml .github/workflows/release.yml .github/workflows/upstream-watch.yml');
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

  it('upstream-watch.yml: daily and by hand; its logic is the CLI command; a pull request for what it wrote, an issue per conflict', async () => {
    const wf = await load('upstream-watch.yml');
    expect(Object.keys(wf.on as object).sort()).toEqual(['schedule', 'workflow_dispatch']);
    expect(wf.permissions).toEqual({});
    const job = wf.jobs.watch!;
    expect(job.permissions).toEqual({ contents: 'write', 'pull-requests': 'write', issues: 'write' });
    const watch = job.steps.find((s) => s.id === 'watch')!;
    expect(watch.run).toMatch(/node bin\/kubelet-lxc\.js upstream-watch --apply --out "\$WATCH_OUT" --json > watch\.json/);
    const pr = job.steps.find((s) => s.uses?.startsWith('peter-evans/create-pull-request@'))!;
    expect(pr.if).toBe("steps.watch.outputs.pr == 'true'");
    expect(pr.with?.['add-paths']).toMatch(/patches\/\*\*\nreleases\/\*\*/);
    const issues = job.steps.find((s) => s.uses?.startsWith('actions/github-script@'))!;
    expect(issues.if).toBe("steps.watch.outputs.issues != '0'");
    expect(String(issues.with?.script)).toMatch(/issues\.create/);
  });

  it('ci.yml runs .ci/run with read-only permissions', async () => {
    const wf = await load('ci.yml');
    expect(wf.permissions).toEqual({ contents: 'read' });
    expect(wf.jobs.ci!.steps.at(-1)!.run).toBe('bash .ci/run');
  });

  it("release.yml's SHA256SUMS step, run for real on two platform jobs' merged dist/, gives checksum files the publisher accepts", async () => {
    const wf = await load('release.yml');
    const step = wf.jobs.publish!.steps.find((s) => s.name === 'SHA256SUMS and SHA512SUMS over every asset')!;
    const dist = path.join(tmp, 'out', 'dist');
    await mkdir(dist, { recursive: true });
    for (const arch of ['amd64', 'arm64'] as const) {
      await writeFile(path.join(dist, `kubelet-linux-${arch}.tar.gz`), arch);
      await writeFile(path.join(dist, `kubelet-linux-${arch}.spdx.json`), `{"${arch}":1}`);
      await writeFile(path.join(dist, 'rke2-kubelet-lxc.yaml'), 'kubelet-path: x\n');
      const artifacts = await Promise.all(
        [[`kubelet-linux-${arch}.tar.gz`, 'kubelet-tarball'], [`kubelet-linux-${arch}.spdx.json`, 'sbom'], ['rke2-kubelet-lxc.yaml', 'rke2-config-kubelet-path']].map(([n, k]) => describeArtifact(path.join(dist, n!), k!, n!.includes(arch) ? { platform: `linux/${arch}` } : {})),
      );
      await writeArtifactList(dist, { schema: 1, platform: `linux/${arch}`, artifacts });
    }
    // What the merge left: the last platform job's aggregate sums, over its own files only.
    await writeFile(path.join(dist, 'SHA256SUMS'), `${'0'.repeat(64)}  kubelet-linux-amd64.tar.gz\n`);
    await writeFile(path.join(dist, 'SHA512SUMS'), `${'0'.repeat(128)}  kubelet-linux-amd64.tar.gz\n`);
    expect((await readAssets(dist, 'run the build first').catch((e: Error) => e)) as Error).toBeInstanceOf(Error);
    const r = await execa('bash', ['-euo', 'pipefail', '-c', step.run!], { cwd: PROJECT_ROOT, env: { DIST: dist }, reject: false, all: true });
    expect(r.exitCode, r.all).toBe(0);
    // The provenance bundle is added after the sums, as the workflow does.
    await writeFile(path.join(dist, `${SUMS_NAME}.sigstore.json`), '{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}');
    const { assets } = await readAssets(dist, 'run the build first');
    expect(assets.find((a) => a.name === SUMS_NAME)!.kind).toBe('checksums');
    expect(assets.map((a) => a.name)).toEqual([
      'artifacts-linux-amd64.json',
      'artifacts-linux-arm64.json',
      'kubelet-linux-amd64.spdx.json',
      'kubelet-linux-amd64.tar.gz',
      'kubelet-linux-arm64.spdx.json',
      'kubelet-linux-arm64.tar.gz',
      'rke2-kubelet-lxc.yaml',
      'sha256sum-amd64.txt',
      'sha256sum-arm64.txt',
      'sha512sum-amd64.txt',
      'sha512sum-arm64.txt',
      SUMS_NAME,
      'SHA512SUMS',
      `${SUMS_NAME}.sigstore.json`,
    ]);
    // every file but the sums and their signature, verified by the real tools
    expect((await readFile(path.join(dist, 'SHA512SUMS'), 'utf8')).split('\n').filter(Boolean)).toHaveLength(11);
    for (const [tool, file] of [['sha256sum', SUMS_NAME], ['sha512sum', 'SHA512SUMS']]) expect((await execa(tool!, ['-c', file!], { cwd: dist, reject: false })).exitCode).toBe(0);
  });

  it('a lab release runs L1 and L2 with the full conformance list, and its JUnit XML and table become release assets', async () => {
    const build = (await load('release.yml')).jobs.build!;
    const pipeline = build.steps.filter((s) => PIPELINE_RUN.test(s.run ?? ''));
    for (const s of pipeline) expect(s.run).toContain('--lab L1,L2 --conformance full');
    const attach = build.steps.find((s) => s.name === 'Attach the conformance results (JUnit XML and table)')!;
    expect(attach.if).toBe("env.LAB == 'true'");
    // after the smoke step that writes the reports, before the dist upload
    const at = (pred: (s: (typeof build.steps)[number]) => boolean) => build.steps.findIndex(pred);
    expect(at((s) => s === attach)).toBeGreaterThan(at((s) => s.name?.startsWith('Smoke') ?? false));
    expect(at((s) => s === attach)).toBeLessThan(at((s) => s.with?.name === 'dist-${{ steps.arch.outputs.arch }}'));
    // run for real on what the L2 lab writes
    const out = path.join(tmp, 'lab-out');
    await mkdir(path.join(out, 'reports', 'lab-l2'), { recursive: true });
    await mkdir(path.join(out, 'dist'), { recursive: true });
    await writeFile(path.join(out, 'reports', 'lab-l2', 'conformance-junit.xml'), '<testsuites/>');
    await writeFile(path.join(out, 'reports', 'lab-l2', 'conformance.txt'), 'test result seconds\n');
    await writeFile(path.join(out, 'dist', 'kubelet-linux-amd64.tar.gz'), 'amd64');
    await writeArtifactList(path.join(out, 'dist'), { schema: 1, platform: 'linux/amd64', artifacts: [await describeArtifact(path.join(out, 'dist', 'kubelet-linux-amd64.tar.gz'), 'kubelet-tarball', { platform: 'linux/amd64' })] });
    await writeChecksums(path.join(out, 'dist'));
    const r = await execa('bash', ['-euo', 'pipefail', '-c', attach.run!], { cwd: PROJECT_ROOT, env: { OUT: out, MANIFEST: 'v1.36.4', PLATFORM: 'linux/amd64' }, reject: false, all: true });
    expect(r.exitCode, r.all).toBe(0);
    const { assets } = await readAssets(path.join(out, 'dist'), 'run the build first');
    const byName = new Map(assets.map((a) => [a.name, a]));
    expect(byName.get('kubelet-lxc-v1.36.4-conformance.junit.xml')).toMatchObject({ contentType: 'application/xml', kind: 'conformance-junit' });
    expect(byName.get('kubelet-lxc-v1.36.4-conformance.txt')).toMatchObject({ contentType: 'text/plain', kind: 'conformance-table' });
  });
});

// One setup for every CI: a job that runs a pipeline stage, the lab or a test suite must have run
// scripts/ci-setup.sh before, and every program the product runs must come from it (or be part
// of every Debian system), so no CI can lack a tool the pipeline calls.
const SETUP = 'scripts/ci-setup.sh';
const PIPELINE_RUN = /bin\/kubelet-lxc\.js\s+(build|source|patch|compile|package|smoke|lab|matrix|rebase|upstream-watch)\b|npm run (build-kubelet|test:real|test:conformance|test:all-releases)\b|npm test\b|\.ci\/run\b/;

/** "<workflow> job <name> step <n>" for each step that runs the pipeline with no setup step before it. */
function stepsWithoutSetup(name: string, wf: Workflow): string[] {
  const bad: string[] = [];
  for (const [jobName, job] of Object.entries(wf.jobs)) {
    let setUp = false;
    job.steps.forEach((s, i) => {
      const run = s.run ?? '';
      // .ci/run sets itself up (checked below)
      if (run.includes(SETUP) || /\bbash \.ci\/run\b/.test(run)) setUp = true;
      else if (PIPELINE_RUN.test(run) && !setUp) bad.push(`${name} job ${jobName} step ${i + 1} (${s.name ?? run.split('\n')[0]})`);
    });
  }
  return bad;
}

describe('one setup for every CI', () => {
  it('every workflow job runs scripts/ci-setup.sh before any pipeline stage or test suite, and .ci/run does too', async () => {
    for (const name of ['ci.yml', 'release.yml', 'upstream-watch.yml']) expect(stepsWithoutSetup(name, await load(name))).toEqual([]);
    const ciRun = await readFile(path.join(PROJECT_ROOT, '.ci', 'run'), 'utf8');
    const setupAt = ciRun.indexOf(`bash ${SETUP}`);
    expect(setupAt).toBeGreaterThan(0);
    for (const cmd of ['npm test', 'npm run test:real']) expect(ciRun.indexOf(cmd, setupAt)).toBeGreaterThan(setupAt);
    // the release build job: the setup step comes before both pipeline steps
    const build = (await load('release.yml')).jobs.build!;
    const setupStep = build.steps.findIndex((s) => s.run?.includes(SETUP));
    const pipelineSteps = build.steps.map((s, i) => (PIPELINE_RUN.test(s.run ?? '') ? i : -1)).filter((i) => i >= 0);
    expect(pipelineSteps.length).toBe(2);
    for (const i of pipelineSteps) expect(i).toBeGreaterThan(setupStep);
  });

  it('the check finds a job that builds without the setup (negative control)', () => {
    const wf: Workflow = {
      on: { push: {} },
      jobs: {
        build: { steps: [{ uses: 'actions/checkout@v6' }, { name: 'Build', run: 'node bin/kubelet-lxc.js build --to package' }, { run: `bash ${SETUP}` }] },
        ok: { steps: [{ run: `bash ${SETUP}` }, { run: 'npm run test:real' }] },
      },
    };
    expect(stepsWithoutSetup('x.yml', wf)).toEqual(['x.yml job build step 2 (Build)']);
  });

  it('every program the product runs comes from the setup script\'s packages or from every Debian system', async () => {
    const { HOST_TOOLS } = await import('../src/lab/index.js');
    const setupText = await readFile(path.join(PROJECT_ROOT, SETUP), 'utf8');
    const labDeps = await readFile(path.join(PROJECT_ROOT, 'scripts', 'lab-host-deps.sh'), 'utf8');
    const listed = new Set([
      ...(/^PKGS=\(([^)]*)\)/m.exec(setupText)?.[1] ?? '').split(/\s+/).filter(Boolean),
      ...(/^PKGS="([^"]*)"/m.exec(labDeps)?.[1] ?? '').split(/\s+/).filter(Boolean),
    ]);
    expect(listed.has('zstd') && listed.has('skopeo') && listed.has('docker.io')).toBe(true);
    // commands named literally where the product starts a process
    const commands = new Set<string>(HOST_TOOLS);
    const srcFiles = (await execa('git', ['ls-files', 'src/*.ts', 'src/**/*.ts'], { cwd: PROJECT_ROOT })).stdout.split('\n').filter(Boolean);
    for (const f of srcFiles) {
      const text = await readFile(path.join(PROJECT_ROOT, f), 'utf8');
      for (const m of text.matchAll(/\b(?:run|spawnChild|hasCommand|have)\(\s*'([A-Za-z0-9._-]+)'/g)) commands.add(m[1]!);
    }
    for (const c of ['zstd', 'skopeo', 'debootstrap', 'qemu-system-x86_64']) expect(commands.has(c), c).toBe(true);
    const problems: string[] = [];
    for (const c of [...commands].sort()) {
      if (c === 'go') continue; // the Go toolchain is the machine's (README: host needs Go)
      const where = await execa('sh', ['-c', 'command -v "$1"', 'sh', c], { reject: false });
      if (where.exitCode !== 0) {
        problems.push(`${c}: not installed (add its package to ${SETUP})`);
        continue;
      }
      const real = (await execa('readlink', ['-f', where.stdout.trim()])).stdout.trim();
      // merged /usr: dpkg may know the file as /bin/x while the PATH finds /usr/bin/x
      // the name on the PATH first (gcc is package gcc, though it links to gcc-12's file)
      const candidates = [...new Set([where.stdout.trim(), real].flatMap((p) => [p, p.replace(/^\/usr\//, '/'), p.startsWith('/usr/') ? p : `/usr${p}`]))];
      let pkg: string | undefined;
      for (const p of candidates) {
        const owner = await execa('dpkg', ['-S', p], { reject: false });
        if (owner.exitCode === 0) {
          // dpkg-divert lines ("diversion by dash from: /bin/sh") name no owner
          pkg = owner.stdout.split('\n').find((l) => !l.startsWith('diversion '))?.split(':')[0]?.trim();
          if (!pkg) continue;
          break;
        }
      }
      if (!pkg) {
        problems.push(`${c}: ${real} belongs to no Debian package`);
        continue;
      }
      if (listed.has(pkg)) continue;
      const info = (await execa('dpkg-query', ['-W', '-f', '${Essential} ${Priority}', pkg])).stdout;
      if (/^yes /.test(info) || /\brequired$/.test(info)) continue;
      problems.push(`${c}: from ${pkg} (${info}), which ${SETUP} does not install`);
    }
    expect(problems).toEqual([]);
  });
});

describe('the fast tier', () => {
  it('npm run test:unit lists only tests that start no engine, Go or kubelet, and npm test runs every test file', async () => {
    const { UNIT_TEST_FILES } = await import('../vitest.unit.config.js');
    const pkg = JSON.parse(await readFile(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts['test:unit']).toBe('vitest run --config vitest.unit.config.ts');
    // npm test: the default config, which holds the fast tier and the engine tier
    expect(pkg.scripts.test).toMatch(/&& vitest run$/);
    const heavy = /['"](docker|podman|go|skopeo)['"]|requireTool\(|buildFakeKubelet\(|ensureBuilderImage\(|runPipeline\(/;
    const bad: string[] = [];
    for (const f of UNIT_TEST_FILES) {
      const text = await readFile(path.join(PROJECT_ROOT, f), 'utf8');
      const hit = text.split('\n').findIndex((l) => heavy.test(l));
      if (hit >= 0) bad.push(`${f}:${hit + 1}: ${text.split('\n')[hit]!.trim()}`);
    }
    expect(bad).toEqual([]);
  });
});

describe('shell scripts', () => {
  it('shellcheck finds no warning in the lab, the installer and the CI scripts', async () => {
    const files = [
      ...(await readdir(path.join(PROJECT_ROOT, 'lab'))).filter((f) => f.endsWith('.sh')).map((f) => `lab/${f}`),
      ...(await readdir(path.join(PROJECT_ROOT, 'scripts'))).filter((f) => f.endsWith('.sh')).map((f) => `scripts/${f}`),
      'src/rke2/install.sh',
    ];
    expect(files.length).toBeGreaterThanOrEqual(6);
    const r = await execa('shellcheck', ['--severity=warning', '--format=gcc', ...files], { cwd: PROJECT_ROOT, reject: false, all: true });
    expect(r.exitCode, r.all).toBe(0);
    // negative control: the same check does see a real fault
    const bad = await execa('shellcheck', ['--severity=warning', '--shell=sh', '-'], { input: 'rm -rf $1/*\n[ $x == y ]\n', reject: false, all: true });
    expect(bad.exitCode).toBe(1);
    expect(bad.all).toMatch(/SC2115|SC3014|SC2086/);
  });
});
