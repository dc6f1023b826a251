// The container engine (docker or podman): finding it, saying exactly how to get one when it
// is missing, building the builder image, and running a build container.
import path from 'node:path';
import os from 'node:os';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { hashJson, listFiles } from './fsutil.js';
import { run, type RunResult } from './exec.js';
import { PROJECT_ROOT } from './project.js';
import type { Logger } from './progress.js';

/** Where a build runs: a container engine, or the host's own Go toolchain. */
export type EngineName = 'docker' | 'podman' | 'host';

/** An engine or Go toolchain problem; the hint is the command or setting that fixes it. */
export class EngineError extends Error {
  constructor(message: string, readonly hint?: string) {
    super(message);
  }
}

export type ContainerEngine = 'docker' | 'podman';

export const INSTALL_ENGINE_HINT = 'Install and start one: apt-get install -y docker.io && (dockerd > /var/log/dockerd.log 2>&1 &)  (or: apt-get install -y podman).';
/** Only where --engine host is a choice (the pipeline commands; builder-image needs an engine). */
const HOST_ENGINE_HINT = ' To build on the host instead, pass --engine host.';

async function engineState(name: ContainerEngine): Promise<'ok' | 'missing' | 'down'> {
  let res: RunResult;
  try {
    res = await run(name, ['info', '--format', '{{json .}}'], { reject: false, timeoutMs: 30_000 });
  } catch {
    return 'missing';
  }
  return res.exitCode === 0 ? 'ok' : 'down';
}

/** Resolve --engine: auto picks a running docker, then podman; a clear error otherwise (hostAllowed: the command takes --engine host). */
export async function resolveEngine(wanted: EngineName | 'auto', log: Logger, o: { hostAllowed?: boolean } = {}): Promise<EngineName> {
  if (wanted === 'host') {
    log.warn('--engine host: building with the host Go toolchain, outside a container. Results depend on this machine; release builds use a container engine.');
    return 'host';
  }
  const candidates: ContainerEngine[] = wanted === 'auto' ? ['docker', 'podman'] : [wanted];
  const states: string[] = [];
  for (const c of candidates) {
    const s = await engineState(c);
    if (s === 'ok') return c;
    states.push(`${c}: ${s === 'missing' ? 'not installed' : 'installed, but the engine does not answer'}`);
  }
  const down = states.some((s) => s.includes('does not answer'));
  throw new EngineError(
    `no usable container engine (${states.join('; ')}). ` +
      (down && candidates.includes('docker') ? 'Start the Docker engine: (dockerd > /var/log/dockerd.log 2>&1 &)  or: systemctl start docker. ' : INSTALL_ENGINE_HINT) +
      (o.hostAllowed === false ? '' : HOST_ENGINE_HINT),
  );
}

export async function imageId(engine: ContainerEngine, ref: string): Promise<string | undefined> {
  const res = await run(engine, ['image', 'inspect', '--format', '{{.Id}}', ref], { reject: false });
  return res.exitCode === 0 ? res.stdout.trim() : undefined;
}

/** GOROOT of exactly Go `version` on the host: the host's own, or the toolchain module from the proxy. */
export async function hostGoroot(version: string, log: Logger): Promise<string> {
  const env = { ...process.env, GOTOOLCHAIN: `go${version}`, GOFLAGS: '' };
  const res = await run('go', ['env', 'GOROOT', 'GOVERSION'], { env, reject: false, onLine: (l) => log.detail(l) }).catch((e: Error) => {
    throw new EngineError(`cannot run the host Go (${e.message}); install Go, or use an engine that can pull the official Go image`);
  });
  const [goroot, goversion] = res.stdout.trim().split('\n');
  if (res.exitCode !== 0 || goversion !== `go${version}`) {
    throw new EngineError(
      `Go ${version} (declared by the Kubernetes tag) is not available on this host: ${res.stderr.trim() || `got ${goversion}`}. ` +
        `It comes as the toolchain module golang.org/toolchain through the Go module proxy: check GOPROXY, or install Go ${version}. ` +
        `The builder never silently uses another Go.`,
    );
  }
  return goroot!;
}

export interface BuilderImage {
  ref: string;
  id: string;
}

/** The files the builder image is made of besides its base (what its tag's hash covers). */
export async function builderContextFiles(): Promise<string[]> {
  return ['Dockerfile.build', ...(await listFiles(path.join(PROJECT_ROOT, 'build', 'builder'))).map((f) => `build/builder/${f}`)];
}

/** Identity of what goes into the builder image besides its base. */
export async function builderContextHash(): Promise<string> {
  const files = await builderContextFiles();
  const parts = await Promise.all(files.map(async (f) => [f, await readFile(path.join(PROJECT_ROOT, f), 'utf8')]));
  return hashJson(parts).slice(0, 12);
}

/**
 * The builder image for Go `version`: reuse it if present; else build it FROM the official Go
 * image (base 'official'), or FROM a base bootstrapped from the host toolchain (base 'local').
 * 'auto' tries the official image first and falls back to local, saying so.
 */
export async function ensureBuilderImage(
  engine: ContainerEngine,
  version: string,
  base: 'official' | 'local' | 'auto',
  log: Logger,
  o: { goImage?: string; baseFlag?: string } = {},
): Promise<BuilderImage> {
  // the flag that picks the base, as the calling command spells it
  const baseFlag = o.baseFlag ?? '--builder-base';
  const ref = `kubelet-lxc-builder:go${version}-${await builderContextHash()}`;
  const have = await imageId(engine, ref);
  if (have) return { ref, id: have };
  const official = o.goImage ?? `docker.io/library/golang:${version}-bookworm`;
  let baseRef: string | undefined;
  if (base !== 'local') {
    if (await imageId(engine, official)) baseRef = official;
    else {
      const step = log.step(`pulling ${official}`);
      const pulled = await run(engine, ['pull', official], { reject: false, timeoutMs: 10 * 60_000 });
      if (pulled.exitCode === 0) {
        baseRef = official;
        step.succeed();
      } else {
        step.fail(`cannot pull ${official}: ${pulled.stderr.trim().split('\n').pop()}`);
        if (base === 'official') throw new EngineError(`cannot pull the official Go image ${official}; use ${baseFlag} local to bootstrap it from the host toolchain`);
        log.info(`falling back to a builder bootstrapped from the host Go toolchain (${baseFlag} local)`);
      }
    }
  }
  if (!baseRef) baseRef = await bootstrapLocalGoImage(engine, version, log);
  const step = log.step(`building ${ref} from Dockerfile.build (FROM ${baseRef})`);
  await run(engine, ['build', '-f', path.join(PROJECT_ROOT, 'Dockerfile.build'), '--build-arg', `GO_VERSION=${version}`, '--build-arg', `GO_IMAGE=${baseRef}`, '-t', ref, PROJECT_ROOT], {
    env: { ...process.env, DOCKER_BUILDKIT: '0' },
    onLine: (l) => log.detail(l),
  });
  const check = await run(engine, ['run', '--rm', ...engineRunLimits(engine), '--network', 'none', ref, 'go', 'version']);
  if (!check.stdout.includes(`go${version} `)) throw new EngineError(`builder image ${ref} reports "${check.stdout.trim()}", not go${version}`);
  step.succeed(`builder image ${ref}: ${check.stdout.trim()}`);
  return { ref, id: (await imageId(engine, ref))! };
}

/** FROM-scratch image holding GOROOT of Go `version` at /usr/local/go (Go's binaries are static). */
async function bootstrapLocalGoImage(engine: ContainerEngine, version: string, log: Logger): Promise<string> {
  const ref = `kubelet-lxc-go:${version}`;
  if (await imageId(engine, ref)) return ref;
  const goroot = await hostGoroot(version, log);
  const step = log.step(`bootstrapping ${ref} from ${goroot}`);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'kubelet-lxc-goroot-'));
  try {
    const tarFile = path.join(tmp, 'goroot.tar');
    await run('tar', ['-C', goroot, '--exclude=./test', '--exclude=./doc', '--owner=0', '--group=0', '--numeric-owner', '--sort=name', '--mtime=@0', '--transform', 's,^\\.,usr/local/go,', '-cf', tarFile, '.']);
    await run(engine, ['import', '--change', 'ENV PATH=/usr/local/go/bin:/usr/bin:/bin', tarFile, ref], { onLine: (l) => log.detail(l) });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  step.succeed();
  return ref;
}

/** The builder's Go build cache (a named volume); KUBELET_LXC_GOCACHE_VOLUME picks another (the cold benchmark uses a throwaway one). */
export const GOCACHE_VOLUME = process.env.KUBELET_LXC_GOCACHE_VOLUME || 'kubelet-lxc-gocache';
export const BUILDER_UID = 65532;

/** The user a build container runs as: the caller when not root, else the builder's own uid. */
export function builderUser(): string {
  const uid = process.getuid?.() ?? 0;
  return uid === 0 ? `${BUILDER_UID}:${BUILDER_UID}` : `${uid}:${process.getgid?.() ?? uid}`;
}

/** `run` arguments for `go <goArgs>` in the builder: no network, non-root, source read-only at /src, shared build cache. */
export function builderRunArgs(o: { engine: ContainerEngine; image: string; tree: string; goArgs: string[]; name?: string; mounts?: string[]; env?: Record<string, string> }): string[] {
  return [
    'run', '--rm', ...engineRunLimits(o.engine), ...(o.name ? ['--name', o.name] : []), '--network', 'none', '--user', builderUser(),
    '--mount', `type=bind,src=${o.tree},dst=/src,readonly`,
    ...(o.mounts ?? []).flatMap((m) => ['--mount', m]),
    '--mount', `type=volume,src=${GOCACHE_VOLUME},dst=/gocache`,
    ...Object.entries(o.env ?? {}).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    o.image, 'go', ...o.goArgs,
  ];
}

/** The environment of `--engine host`: the builder image's settings, with Go `version` from the toolchain module. */
export function hostGoEnv(version: string, extra: Record<string, string> = {}): Record<string, string | undefined> {
  return { ...process.env, GOTOOLCHAIN: `go${version}`, GOFLAGS: '-mod=vendor', GOPROXY: 'off', CGO_ENABLED: '0', ...extra };
}

/** The hard limit of a resource of this process, from /proc/self/limits ("unlimited" as Infinity). */
function hardLimit(name: string): number | undefined {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith(name));
  const hard = line?.slice(name.length).trim().split(/\s+/)[1];
  return hard === undefined ? undefined : hard === 'unlimited' ? Infinity : Number(hard);
}

/**
 * `run` options for the engine's resource limits. Rootful podman asks for nofile and nproc of
 * 1048576 in every container, which needs CAP_SYS_RESOURCE whenever this process's hard limits
 * are lower (an unprivileged LXC container, a CI sandbox): runc then fails with "error setting
 * rlimit type 7: operation not permitted". So podman gets this process's own hard limits, as a
 * docker container gets dockerd's; nproc also at most pid_max, as podman caps its monitor's.
 */
export function engineRunLimits(engine: ContainerEngine): string[] {
  if (engine !== 'podman') return [];
  const out: string[] = [];
  const nofile = hardLimit('Max open files');
  if (nofile !== undefined && Number.isFinite(nofile)) out.push('--ulimit', `nofile=${nofile}:${nofile}`);
  let nproc = hardLimit('Max processes');
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
  if (Number.isFinite(pidMax) && pidMax > 0) nproc = Math.min(nproc ?? Infinity, pidMax);
  if (nproc !== undefined && Number.isFinite(nproc)) out.push('--ulimit', `nproc=${nproc}:${nproc}`);
  return out;
}

/**
 * Up-front check that Go `version` exists before a build needs it: the builder image or the host
 * toolchain has it, or the Go module proxy serves its toolchain module. A proxy that cannot be
 * asked only gives a warning (the build stage then says what it finds).
 */
export async function verifyGoRelease(engine: EngineName, version: string, manifestFile: string, log: Logger): Promise<void> {
  if (engine !== 'host' && (await imageId(engine, `kubelet-lxc-builder:go${version}-${await builderContextHash()}`))) return;
  const local = await run('go', ['env', 'GOVERSION'], { reject: false, env: { ...process.env, GOTOOLCHAIN: 'local' } }).catch(() => undefined);
  if (local?.exitCode === 0 && local.stdout.trim() === `go${version}`) return;
  if (!local) {
    log.warn(`cannot check that Go ${version} (go.version of ${manifestFile}) is a Go release: there is no go on the PATH`);
    return;
  }
  const mod = `golang.org/toolchain@v0.0.1-go${version}.linux-amd64`;
  const res = await run('go', ['list', '-m', '-json', mod], { reject: false, cwd: os.tmpdir(), env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' }, timeoutMs: 60_000 });
  if (res.exitCode === 0) return;
  const why = res.stderr.trim().split('\n').slice(-2).join(' ');
  if (/not available|not found|unknown revision|invalid version|404|410/i.test(why)) {
    throw new EngineError(
      `Go ${version} (go.version of ${manifestFile}) is not a Go release: the Go module proxy has no toolchain ${mod} (${why}). ` +
        'Fix go.version: it is the Kubernetes tag\'s .go-version, which "kubelet-lxc pin" writes',
      `set go.version in ${manifestFile} to the tag's .go-version, or re-pin the release`,
    );
  }
  log.warn(`cannot confirm that Go ${version} is a Go release (the Go module proxy did not answer: ${why}); the build stage checks it again`);
}
