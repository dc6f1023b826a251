// What the L2 server node runs besides the kubelet, built from the same pinned tree in the
// builder container, reproducibly and cached like the kubelet: the control plane
// (kube-apiserver, kube-controller-manager, kube-scheduler), kubectl, the upstream conformance
// suite (e2e.test), the test images' programs (agnhost, nonewprivs, pause), and kine, RKE2's
// SQLite etcd shim, from the Go module proxy at the version the manifest pins. All linux/amd64:
// the lab's guest is x86_64. Built from the stock tree: the control plane of an RKE2 server is
// upstream's; only the kubelet carries the series.
import path from 'node:path';
import { cp, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { buildDirAtomic, exists, fileHash, hashJson, readJson, writeFileAtomic } from '../../lib/fsutil.js';
import { run } from '../../lib/exec.js';
import { git, headCommit } from '../../lib/git.js';
import { goEnv } from '../../lib/gomod.js';
import { goInBuilder, ldflags, makeStamp, OUT } from '../../stages/build.js';
import { downloadVerified, makeWritable } from '../../stages/source.js';
import { KINE_MODULE } from '../../rke2/kine.js';
import { StageError, type EngineName, type StageContext } from '../../stages/types.js';

export const CONTROL_PLANE_PROGRAMS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'] as const;
export const IMAGE_PROGRAMS = ['agnhost', 'nonewprivs'] as const;
export const L2_PROGRAMS = [...CONTROL_PLANE_PROGRAMS, ...IMAGE_PROGRAMS, 'e2e.test', 'ginkgo', 'kine', 'pause'] as const;
export type L2Program = (typeof L2_PROGRAMS)[number];

/** Build tags of upstream's test binaries (hack/lib/golang.sh) and of its release binaries. */
export const E2E_BUILD_TAGS = 'selinux,notest,grpcnotrace';
export const RELEASE_BUILD_TAGS = 'selinux,notest';

export interface L2Binaries {
  dir: string;
  paths: Record<L2Program, string>;
  sha256: Record<L2Program, string>;
  /** the pause image's version (build/pause/Makefile TAG) */
  pauseVersion: string;
  kineVersion: string;
}

export interface L2BuildInputs {
  engine: EngineName;
  image: { ref: string; id: string };
  goVersion: string;
  /** the stock tree (as fetched) and its commit */
  tree: string;
  treeCommit: string;
  upstreamCommit: string | null;
  sourceDateEpoch: number;
}

interface Group {
  name: string;
  outputs: L2Program[];
  key: unknown;
  build: () => Promise<void>;
}

/** The pinned kine: version and hashes from the manifest, or a clear error naming pin. */
function kinePin(ctx: StageContext): { path: string; version: string; h1: string; goModH1?: string } {
  const k = ctx.manifest.data.kine;
  if (!k) {
    throw new StageError(
      `${ctx.manifest.file} pins no kine (the L2 lab's datastore shim): re-pin the release with "kubelet-lxc pin ${ctx.manifest.data.kubernetes.version} --force" (add --kine <version> if its RKE2 release is not known)`,
      'smoke',
    );
  }
  return { path: KINE_MODULE, version: k.version, h1: k.h1, ...(k.goModH1 ? { goModH1: k.goModH1 } : {}) };
}

/**
 * kine's module, verified against the manifest's h1 (go.sum check and our own Hash1), with its
 * dependencies vendored (each verified by kine's go.sum), committed at the tag's time: a clean
 * tree the builder can compile with GOPROXY=off, cached by its pin.
 */
async function kineTree(ctx: StageContext): Promise<{ tree: string; commit: string }> {
  const pin = kinePin(ctx);
  const tree = path.join(ctx.paths.cache, 'kine', `${pin.version}-${hashJson(pin).slice(0, 12)}`);
  if (await exists(path.join(tree, '.git'))) {
    const commit = await headCommit(tree).catch(() => '');
    if (commit && (await exists(path.join(tree, 'vendor', 'modules.txt')))) return { tree, commit };
  }
  const proxy = ctx.opts.goproxy ?? process.env.GOPROXY;
  const verified = await downloadVerified(ctx, [pin], proxy);
  await buildDirAtomic(tree, async (dir) => {
    await cp(verified.dirs.get(pin.path)!, dir, { recursive: true });
    await makeWritable(dir);
    ctx.log.info(`lab L2: vendoring kine ${pin.version}'s dependencies (each checked against kine's go.sum)`);
    await run('go', ['mod', 'vendor'], { cwd: dir, env: goEnv({ GOPROXY: proxy, GOTOOLCHAIN: 'local', GOWORK: 'off' }), signal: ctx.signal, onLine: (l) => ctx.log.detail(l) });
    await git(dir, ['init', '-q']);
    await writeFile(path.join(dir, '.git', 'info', 'attributes'), '* -text -eol -filter -diff -merge\n');
    await git(dir, ['add', '-A', '-f']);
    const date = ctx.manifest.data.kubernetes.commitTime;
    await git(dir, ['commit', '-q', '--no-verify', '-m', `kine ${pin.version} with vendored dependencies\n\n${verified.lines.join('\n')}\n`], {
      env: { GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date },
    });
  });
  return { tree, commit: await headCommit(tree) };
}

/** build/pause/Makefile's TAG: the version the pause image is tagged with. */
export async function pauseVersionOf(tree: string): Promise<string> {
  const mk = await readFile(path.join(tree, 'build', 'pause', 'Makefile'), 'utf8').catch(() => '');
  const tag = /^TAG\s*\??=\s*(\S+)/m.exec(mk)?.[1];
  if (!tag) throw new StageError(`cannot read the pause version (TAG) from build/pause/Makefile in ${tree}`, 'smoke');
  return tag;
}

/** The L2 programs for the release, built where missing or out of date. */
export async function ensureL2Binaries(ctx: StageContext, o: L2BuildInputs): Promise<L2Binaries> {
  const dir = path.join(ctx.paths.out, 'lab-bin', 'linux-amd64');
  await mkdir(dir, { recursive: true });
  const paths = Object.fromEntries(L2_PROGRAMS.map((p) => [p, path.join(dir, p)])) as Record<L2Program, string>;
  const stamp = makeStamp(ctx.manifest.data.kubernetes.version, o.upstreamCommit ?? o.treeCommit, o.sourceDateEpoch);
  const env = { GOOS: 'linux', GOARCH: 'amd64', CGO_ENABLED: '0' };
  const common = { engine: o.engine, image: o.image.ref, goVersion: o.goVersion, env };
  const pauseVersion = await pauseVersionOf(o.tree);
  const kine = kinePin(ctx);
  const groups: Group[] = [
    {
      name: 'control-plane',
      outputs: [...CONTROL_PLANE_PROGRAMS, ...IMAGE_PROGRAMS],
      key: { image: o.image.id, go: o.goVersion, tree: o.treeCommit, stamp, tags: RELEASE_BUILD_TAGS },
      build: () =>
        goInBuilder(ctx, {
          ...common,
          tree: o.tree,
          // several main packages, one go invocation: shared work is done once
          goArgs: ['build', '-v', '-trimpath', '-buildvcs=false', '-tags', RELEASE_BUILD_TAGS, '-ldflags', ldflags(stamp), '-o', `${OUT}/`, ...[...CONTROL_PLANE_PROGRAMS].map((p) => `./cmd/${p}`), ...[...IMAGE_PROGRAMS].map((p) => `./test/images/${p}`)],
          label: `compiling the L2 control plane, kubectl, agnhost and nonewprivs (${stamp.gitVersion}, linux/amd64)`,
          name: 'l2-control-plane',
          outputs: Object.fromEntries([...CONTROL_PLANE_PROGRAMS, ...IMAGE_PROGRAMS].map((p) => [p, paths[p]])),
        }),
    },
    {
      name: 'e2e',
      outputs: ['e2e.test'],
      key: { image: o.image.id, go: o.goVersion, tree: o.treeCommit, stamp, tags: E2E_BUILD_TAGS },
      build: () =>
        goInBuilder(ctx, {
          ...common,
          tree: o.tree,
          goArgs: ['test', '-c', '-v', '-trimpath', '-buildvcs=false', '-tags', E2E_BUILD_TAGS, '-ldflags', ldflags(stamp), '-o', `${OUT}/e2e.test`, './test/e2e'],
          label: `compiling the conformance suite test/e2e (e2e.test, ${stamp.gitVersion})`,
          name: 'l2-e2e',
          outputs: { 'e2e.test': paths['e2e.test'] },
        }),
    },
    {
      // ginkgo's runner, vendored in the tree: runs e2e.test's specs in parallel processes
      name: 'ginkgo',
      outputs: ['ginkgo'],
      key: { image: o.image.id, go: o.goVersion, tree: o.treeCommit },
      build: () =>
        goInBuilder(ctx, {
          ...common,
          tree: o.tree,
          goArgs: ['build', '-v', '-trimpath', '-buildvcs=false', '-ldflags', '-s -w -buildid=', '-o', `${OUT}/ginkgo`, './vendor/github.com/onsi/ginkgo/v2/ginkgo'],
          label: 'compiling ginkgo (vendored in the tree)',
          name: 'l2-ginkgo',
          outputs: { ginkgo: paths.ginkgo },
        }),
    },
    {
      name: 'kine',
      outputs: ['kine'],
      key: { image: o.image.id, go: o.goVersion, kine },
      build: async () => {
        const k = await kineTree(ctx);
        await goInBuilder(ctx, {
          ...common,
          tree: k.tree,
          // CGO off: kine's pure-Go SQLite driver, a static binary
          goArgs: ['build', '-v', '-trimpath', '-buildvcs=false', '-ldflags', `-s -w -buildid= -X ${KINE_MODULE}/pkg/version.Version=${kine.version}`, '-o', `${OUT}/kine`, '.'],
          label: `compiling kine ${kine.version} (SQLite, CGO off)`,
          name: 'l2-kine',
          outputs: { kine: paths.kine },
        });
      },
    },
    {
      name: 'pause',
      outputs: ['pause'],
      key: { source: await fileHash(path.join(o.tree, 'build', 'pause', 'linux', 'pause.c')), version: pauseVersion, tree: ctx.manifest.data.kubernetes.version, cc: await ccVersion() },
      build: () => buildPause(ctx, o.tree, `v${pauseVersion}-${ctx.manifest.data.kubernetes.version}`, paths.pause),
    },
  ];
  for (const g of groups) {
    const keyFile = path.join(dir, `${g.name}.inputs.json`);
    const recorded = await readJson<unknown>(keyFile);
    const present = await Promise.all(g.outputs.map((p) => exists(paths[p])));
    if (!ctx.opts.force && present.every(Boolean) && JSON.stringify(recorded) === JSON.stringify(g.key)) {
      ctx.log.info(`lab L2: ${g.outputs.join(', ')} unchanged, reusing ${dir}`);
      continue;
    }
    await rm(keyFile, { force: true });
    await g.build();
    await writeFileAtomic(keyFile, JSON.stringify(g.key));
  }
  const sha256 = {} as Record<L2Program, string>;
  for (const p of L2_PROGRAMS) sha256[p] = await fileHash(paths[p]);
  return { dir, paths, sha256, pauseVersion, kineVersion: kine.version };
}

async function ccVersion(): Promise<string> {
  const r = await run('gcc', ['-dumpfullversion'], { reject: false }).catch(() => undefined);
  return r?.exitCode === 0 ? r.stdout.trim() : 'missing';
}

/** The pause program as upstream builds it (build/pause/Makefile CFLAGS; VERSION v<TAG>-<tree>): static, size-optimised, stripped. */
async function buildPause(ctx: StageContext, tree: string, version: string, target: string): Promise<void> {
  if ((await ccVersion()) === 'missing') throw new StageError('building the pause image needs a C compiler: apt-get install -y gcc libc6-dev', 'smoke');
  const tmp = `${target}.tmp-${process.pid}`;
  const step = ctx.log.step(`compiling pause ${version} (gcc -Os -static)`);
  try {
    await run('gcc', ['-Os', '-Wall', '-Werror', '-static', `-DVERSION=${version}`, '-o', tmp, path.join(tree, 'build', 'pause', 'linux', 'pause.c')], { signal: ctx.signal });
    await run('strip', [tmp], { signal: ctx.signal });
    await rename(tmp, target);
    step.succeed(`built ${target} (${(await stat(target)).size} bytes)`);
  } catch (e) {
    step.fail();
    throw e;
  } finally {
    await rm(tmp, { force: true });
  }
}
