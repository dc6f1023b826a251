// The RKE2 runtime image with the patched kubelet: FROM rancher/rke2-runtime:<release tag>, with
// /bin/kubelet replaced and everything else untouched, written as a docker-archive in TS (no
// container engine), plus a zstd variant for agent/images/ and the runtime-image config line.
//
// Layers: the base image's layers are kept byte for byte (same diff_ids as Rancher's image, which
// anyone can check with `skopeo inspect`) and one layer holding only bin/kubelet is added on top.
// RKE2 extracts the runtime image by flattening its layers (go-containerregistry mutate.Extract,
// which walks the layers top-down and keeps the first occurrence of every path) and writing /bin
// and /charts with modes masked to 0755 (wharfie extract.ExtractDirs); so the top layer's
// bin/kubelet wins and the result is exactly what a flattened image would give, while the image
// keeps a provable relation to its base. The cost is that the stock kubelet's bytes stay in a
// lower layer (the archive is larger by that much).
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { archOf, type Platform } from '../manifest.js';
import type { PackagedFile } from '../stages/types.js';
import { packagedFile } from './packaged.js';
import type { Logger } from '../lib/progress.js';
import { CommandError, run } from '../lib/exec.js';
import { fileHash, writeFileAtomic } from '../lib/fsutil.js';
import { listTar, normalMemberName, writeDeterministicTar, type TarEntry } from '../lib/tarball.js';
import { renderRuntimeImageDropIn } from './config.js';
import { readDockerArchive, readDockerArchiveConfig, writeDockerArchive, type ArchiveLayer, type ImageConfig } from './docker-archive.js';
import { assertElfArch } from '../lib/elf.js';
import { LABEL_PREFIX, RUNTIME_IMAGE_SNIPPET_NAME, STAND_IN_LABEL, parseImageRef, runtimeImageFileBase } from './names.js';

/** What /bin of an rke2-runtime image holds (RKE2 docs); kubelet is the one replaced. */
export const RUNTIME_BINARIES = ['containerd', 'containerd-shim-runc-v2', 'crictl', 'ctr', 'kubectl', 'kubelet', 'runc'] as const;
const STAND_IN_CHARTS = ['rke2-canal.yaml', 'rke2-coredns.yaml', 'rke2-ingress-nginx.yaml', 'rke2-metrics-server.yaml'];

/** zstd window limit of RKE2's decoder (wharfie MaxDecoderMemory = 1 << 25). */
export const RKE2_MAX_ZSTD_WINDOW = 2 ** 25;

export interface RuntimeImageOptions {
  kubeletByPlatform: Partial<Record<Platform, string>>;
  platform: Platform;
  /**
   * docker-archive holding baseRef for this platform (`--base-image-archive`); `{arch}` in the path
   * is replaced by the platform's architecture, so one option serves several platforms.
   */
  baseArchive?: string;
  /** rancher/rke2-runtime:<RKE2 version with + as -> (manifest rke2.runtimeImage). */
  baseRef: string;
  /** The new reference, tag `<RKE2 version with + as ->-lxc<N>` (see runtimeImageTag). */
  targetRef: string;
  outDir: string;
  mtime: Date;
  log: Logger;
  /**
   * zstd level of the .tar.zst (default 12: on 2 cores ~15 s and 40.4 MB for 157 MB of binaries,
   * where 16 took 83 s for 39.3 MB); the window stays --long=25 at any level.
   */
  zstdLevel?: number;
}

// ---------------------------------------------------------------------------------------------
// zstd through Debian's zstd command (Node 20 has none)

/** Largest zstd window of any frame in the file (`zstd -lv`), in bytes. */
export async function zstdWindowSize(file: string): Promise<number> {
  const { stdout } = await run('zstd', ['-lv', file]);
  const sizes = [...stdout.matchAll(/Window Size:.*\((\d+) B\)/g)].map((m) => Number(m[1]));
  if (sizes.length === 0) throw new Error(`zstd -lv ${file} printed no window size:\n${stdout}`);
  return Math.max(...sizes);
}

/** Compress for RKE2's agent/images: --long=25 (32 MiB window), checked afterwards with zstd -lv. */
export async function compressZstdForRke2(src: string, dest: string, level = 12): Promise<void> {
  const tmp = `${dest}.partial`;
  try {
    await run('zstd', ['-q', '-f', '--no-progress', '-T0', `-${level}`, '--long=25', '-o', tmp, src]);
    await assertZstdWindow(tmp);
    await rename(tmp, dest);
  } finally {
    await rm(tmp, { force: true });
  }
}

export async function assertZstdWindow(file: string): Promise<void> {
  const window = await zstdWindowSize(file);
  if (window > RKE2_MAX_ZSTD_WINDOW) {
    throw new Error(`${file} has a zstd window of ${window} bytes; RKE2 decodes at most ${RKE2_MAX_ZSTD_WINDOW} (compress with --long=25 or less)`);
  }
}

// ---------------------------------------------------------------------------------------------
// stand-in base

/**
 * A stand-in for rancher/rke2-runtime with the same layout, for tests and for machines that cannot
 * reach a registry: /bin with the seven binaries as small executables (shell scripts) in one layer,
 * /charts with placeholder manifests in a second layer, and the stand-in label in its config.
 */
export async function makeStandInBaseArchive(opts: { ref: string; platform: Platform; outFile: string }): Promise<void> {
  parseImageRef(opts.ref);
  const arch = archOf(opts.platform);
  const mtime = new Date(0);
  await mkdir(path.dirname(opts.outFile), { recursive: true });
  const work = await mkdtemp(path.join(path.dirname(opts.outFile), '.stand-in-'));
  try {
    await mkdir(path.join(work, 'files'));
    const binEntries: TarEntry[] = [];
    for (const b of RUNTIME_BINARIES) {
      const f = path.join(work, 'files', b);
      await writeFile(f, `#!/bin/sh\n# stand-in for ${b} of ${opts.ref} (${opts.platform}); not the real program\necho "${b} (rke2-runtime stand-in, ${arch})"\n`);
      binEntries.push({ name: `bin/${b}`, source: f, mode: 0o755 });
    }
    const chartEntries: TarEntry[] = [];
    for (const c of STAND_IN_CHARTS) {
      const f = path.join(work, 'files', c);
      const chart = c.replace(/\.yaml$/, '');
      await writeFile(
        f,
        `# stand-in chart manifest of ${opts.ref}\napiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata:\n  name: ${chart}\n  namespace: kube-system\nspec:\n  chart: ${chart}\n`,
      );
      chartEntries.push({ name: `charts/${c}`, source: f, mode: 0o644 });
    }
    const layers: ArchiveLayer[] = [];
    for (const [i, entries] of [binEntries, chartEntries].entries()) {
      const file = path.join(work, `layer${i}.tar`);
      await writeDeterministicTar(file, entries, { mtime });
      layers.push({ file, diffId: `sha256:${await fileHash(file)}` });
    }
    const created = mtime.toISOString().replace('.000Z', 'Z');
    const config: ImageConfig = {
      architecture: arch,
      os: 'linux',
      created,
      config: {
        Env: ['PATH=/bin'],
        Labels: { [STAND_IN_LABEL]: 'true', [`${LABEL_PREFIX}.stand-in-for`]: opts.ref },
      },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: [
        { created, created_by: 'kubelet-lxc stand-in: COPY bin/ /bin/', comment: 'STAND-IN: not rancher/rke2-runtime' },
        { created, created_by: 'kubelet-lxc stand-in: COPY charts/ /charts/', comment: 'STAND-IN: not rancher/rke2-runtime' },
      ],
    };
    await writeDockerArchive(opts.outFile, { config, repoTags: [opts.ref], layers }, { mtime, workDir: work });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// the base image

interface ObtainedBase {
  archive: string;
  source: 'archive' | 'registry' | 'stand-in';
}

function standInBanner(text: string[]): string {
  // Wrap at 96 columns so the box stays readable whatever the error says.
  const lines = text.flatMap((t) => t.match(/.{1,96}(\s|$)|\S+/g)?.map((l) => l.trimEnd()) ?? ['']);
  const width = Math.max(...lines.map((l) => l.length)) + 4;
  const bar = '!'.repeat(width);
  return [bar, ...lines.map((l) => `! ${l.padEnd(width - 4)} !`), bar].join('\n');
}

async function obtainBase(opts: RuntimeImageOptions, work: string): Promise<ObtainedBase> {
  const arch = archOf(opts.platform);
  if (opts.baseArchive) {
    const archive = opts.baseArchive.replaceAll('{arch}', arch);
    await stat(archive).catch(() => {
      throw new Error(`--base-image-archive ${archive} does not exist (save ${opts.baseRef} for ${opts.platform} there, e.g. skopeo copy --override-arch ${arch} docker://${opts.baseRef} docker-archive:${archive}:${opts.baseRef})`);
    });
    return { archive, source: 'archive' };
  }
  const pulled = path.join(work, 'base-pulled.tar');
  const args = ['--override-os', 'linux', '--override-arch', arch, 'copy', '--retry-times', '0', `docker://${opts.baseRef}`, `docker-archive:${pulled}:${opts.baseRef}`];
  opts.log.info(`pulling ${opts.baseRef} for ${opts.platform}: skopeo ${args.join(' ')}`);
  let why: string;
  try {
    await run('skopeo', args, { timeoutMs: 20 * 60_000 });
    return { archive: pulled, source: 'registry' };
  } catch (err) {
    // A missing skopeo says so in the message; a failed pull in its last line of stderr
    // (logrus style: time=... level=fatal msg="...").
    const last = err instanceof CommandError && err.exitCode !== undefined ? err.stderr.trim().split('\n').pop() : undefined;
    why = (last && (/msg="(.*)"\s*$/.exec(last)?.[1]?.replace(/\\"/g, '"') ?? last)) || (err as Error).message.split('\n')[0]!;
  }
  const standIn = path.join(work, 'base-stand-in.tar');
  opts.log.warn(
    `\n${standInBanner([
      `cannot pull ${opts.baseRef} (${opts.platform}): ${why.slice(0, 400)}`,
      'building the runtime image FROM A GENERATED STAND-IN instead of rancher/rke2-runtime.',
      `The image is labelled ${STAND_IN_LABEL}=true: it has no real containerd, runc or charts`,
      'and must never reach a node or a release (the publish stage refuses it).',
      'For a real image pass --base-image-archive <docker-archive of the base>.',
    ])}`,
  );
  await makeStandInBaseArchive({ ref: opts.baseRef, platform: opts.platform, outFile: standIn });
  return { archive: standIn, source: 'stand-in' };
}

/** Paths (normalised) present in any of the layers, for a sanity check of the base. */
async function layerPaths(layers: ArchiveLayer[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const l of layers) for (const m of await listTar(l.file)) out.add(normalMemberName(m.path));
  return out;
}

// ---------------------------------------------------------------------------------------------

/** Labels of the image an archive holds (reads only manifest.json and the config). */
export async function readRuntimeImageLabels(file: string, ref?: string): Promise<Record<string, string>> {
  const work = await mkdtemp(path.join(path.dirname(file), '.labels-'));
  try {
    const { config } = await readDockerArchiveConfig(file, { ref, workDir: work });
    return { ...(config.config?.Labels ?? {}) };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Whether an image archive was built from a stand-in base (never ship those). */
export async function isStandInImage(file: string, ref?: string): Promise<boolean> {
  return (await readRuntimeImageLabels(file, ref))[STAND_IN_LABEL] === 'true';
}

export async function buildRuntimeImage(opts: RuntimeImageOptions): Promise<PackagedFile[]> {
  const { platform, log, mtime } = opts;
  const arch = archOf(platform);
  const kubelet = opts.kubeletByPlatform[platform];
  if (!kubelet) throw new Error(`no kubelet for ${platform} to put in the runtime image`);
  await assertElfArch(kubelet, platform);
  const { tag } = parseImageRef(opts.targetRef);
  if (!/^v[0-9]/.test(tag)) throw new Error(`runtime image tag ${tag} of ${opts.targetRef} must match ^v[0-9]: RKE2 refuses other runtime-image tags`);
  if (opts.targetRef === opts.baseRef) throw new Error(`the runtime image needs its own tag (${opts.targetRef} is the base's): RKE2 never re-extracts a reference`);

  await mkdir(opts.outDir, { recursive: true });
  const work = await mkdtemp(path.join(opts.outDir, `.runtime-image-${arch}-`));
  try {
    const base = await obtainBase(opts, work);
    const step = log.step(`runtime image ${opts.targetRef} (${platform}) from ${opts.baseRef} [${base.source}]`);
    const image = await readDockerArchive(base.archive, { ref: opts.baseRef, workDir: path.join(work, 'base') });
    if (image.config.os !== 'linux' || image.config.architecture !== arch) {
      throw new Error(`${base.archive}: ${opts.baseRef} there is ${image.config.os}/${image.config.architecture}, not ${platform}`);
    }
    const present = await layerPaths(image.layers);
    if (!present.has('bin/kubelet') || ![...present].some((p) => p.startsWith('charts/'))) {
      throw new Error(`${base.archive}: ${opts.baseRef} is not an rke2-runtime image (it needs /bin/kubelet and /charts)`);
    }
    const missing = RUNTIME_BINARIES.filter((b) => !present.has(`bin/${b}`));
    if (missing.length) log.warn(`${opts.baseRef} has no /bin/${missing.join(', /bin/')}; kept as it is`);
    const standIn = base.source === 'stand-in' || image.config.config?.Labels?.[STAND_IN_LABEL] === 'true';
    if (standIn && base.source !== 'stand-in') log.warn(`${base.archive} is a STAND-IN base (label ${STAND_IN_LABEL}=true): the image is marked the same way`);

    // The one added layer: bin/kubelet, 0755, uid/gid 0, fixed mtime.
    const layerFile = path.join(work, 'kubelet-layer.tar');
    await writeDeterministicTar(layerFile, [{ name: 'bin/kubelet', source: kubelet, mode: 0o755 }], { mtime });
    const kubeletLayer: ArchiveLayer = { file: layerFile, diffId: `sha256:${await fileHash(layerFile)}` };

    const created = mtime.toISOString().replace(/\.\d{3}Z$/, 'Z');
    const kubeletSha = await fileHash(kubelet);
    const config: ImageConfig = structuredClone(image.config);
    config.created = created;
    config.config = { ...(config.config ?? {}) };
    config.config.Labels = {
      ...(config.config.Labels ?? {}),
      'org.opencontainers.image.base.name': opts.baseRef,
      [`${LABEL_PREFIX}.base-ref`]: opts.baseRef,
      [`${LABEL_PREFIX}.base-image-id`]: image.configDigest,
      [`${LABEL_PREFIX}.kubelet-sha256`]: kubeletSha,
      ...(standIn ? { [STAND_IN_LABEL]: 'true' } : {}),
    };
    config.rootfs = { type: 'layers', diff_ids: [...image.config.rootfs.diff_ids, kubeletLayer.diffId] };
    if (Array.isArray(image.config.history)) {
      config.history = [
        ...image.config.history,
        {
          created,
          created_by: 'kubelet-lxc: COPY kubelet /bin/kubelet',
          comment: `kubelet-lxc: /bin/kubelet replaced (sha256 ${kubeletSha})${standIn ? '; STAND-IN BASE, do not ship' : ''}`,
        },
      ];
    }

    const fileBase = runtimeImageFileBase(opts.targetRef, platform);
    const plain = path.join(opts.outDir, `${fileBase}.tar`);
    const zst = path.join(opts.outDir, `${fileBase}.tar.zst`);
    const { configDigest } = await writeDockerArchive(plain, { config, repoTags: [opts.targetRef], layers: [...image.layers, kubeletLayer] }, { mtime, workDir: work });
    step.update(`image ${configDigest}; compressing with zstd --long=25`);
    await compressZstdForRke2(plain, zst, opts.zstdLevel ?? 12);

    const snippet = path.join(opts.outDir, RUNTIME_IMAGE_SNIPPET_NAME);
    const text = renderRuntimeImageDropIn({
      targetRef: opts.targetRef,
      rke2Version: parseImageRef(opts.baseRef).tag.replace(/-(rke2r\d+)$/, '+$1'),
      imageFiles: [`${runtimeImageFileBase(opts.targetRef, platform).replace(`linux-${arch}`, 'linux-<arch>')}.tar.zst`],
      standIn,
    });
    if ((await readFile(snippet, 'utf8').catch(() => undefined)) !== text) await writeFileAtomic(snippet, text);
    step.succeed(`runtime image ${opts.targetRef} (${platform})${standIn ? ' FROM A STAND-IN BASE' : ''}: ${path.basename(plain)}, ${path.basename(zst)}`);

    const suffix = standIn ? '-stand-in' : '';
    return [
      await packagedFile(plain, `rke2-runtime-image${suffix}`, platform, { standIn }),
      await packagedFile(zst, `rke2-runtime-image-zstd${suffix}`, platform, { standIn }),
      await packagedFile(snippet, `rke2-config-runtime-image${suffix}`, undefined, { standIn }),
    ];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
