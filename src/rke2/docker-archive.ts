// docker-archive (the `docker save` format): read one image from such a tar, and write one,
// without a container engine. Written archives have manifest.json first (RKE2 reads it before the
// blobs), uncompressed layers named by their diff_id, a config named by its digest, fixed mtime
// and uid/gid 0.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { fileHash } from '../lib/fsutil.js';
import { run } from '../lib/exec.js';
import { extractTarMembers, normalMemberName, writeDeterministicTar, type TarEntry } from '../lib/tarball.js';
import { normalizeRef } from './names.js';

export interface ManifestEntry {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

/** The parts of an image config this code reads or writes; everything else is kept as is. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  created?: string;
  config?: { Labels?: Record<string, string> | null; [k: string]: unknown };
  rootfs: { type: string; diff_ids: string[] };
  history?: { created?: string; created_by?: string; comment?: string; empty_layer?: boolean }[];
  [k: string]: unknown;
}

export interface ArchiveLayer {
  /** Uncompressed layer tar on disk. */
  file: string;
  /** `sha256:<hex>` of the uncompressed tar. */
  diffId: string;
}

export interface DockerArchiveImage {
  repoTags: string[];
  config: ImageConfig;
  /** `sha256:<hex>` of the config bytes: the image ID. */
  configDigest: string;
  layers: ArchiveLayer[];
}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

async function head(file: string, n: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Decompress a layer blob in place if it is gzip or zstd (docker-archives may hold either). */
async function uncompressedLayer(file: string): Promise<string> {
  const magic = await head(file, 4);
  if (magic.subarray(0, 2).equals(GZIP_MAGIC)) {
    const out = `${file}.tar`;
    await pipeline(createReadStream(file), createGunzip(), createWriteStream(out));
    return out;
  }
  if (magic.equals(ZSTD_MAGIC)) {
    const out = `${file}.tar`;
    await run('zstd', ['-d', '-q', '-f', '--long=31', '-o', out, file]);
    return out;
  }
  return file;
}

function pickImage(entries: ManifestEntry[], file: string, ref: string | undefined): ManifestEntry {
  if (!Array.isArray(entries) || entries.length === 0) throw new Error(`${file}: manifest.json lists no image (not a docker-archive?)`);
  if (ref === undefined) {
    if (entries.length !== 1) throw new Error(`${file} holds ${entries.length} images: name the one to use`);
    return entries[0]!;
  }
  const want = normalizeRef(ref);
  const hit = entries.find((e) => (e.RepoTags ?? []).some((t) => normalizeRef(t) === want));
  if (!hit) {
    const tags = entries.flatMap((e) => e.RepoTags ?? []);
    throw new Error(`${file} does not hold ${ref}; it holds ${tags.length ? tags.join(', ') : 'only untagged images'}`);
  }
  return hit;
}

/** The index and config of one image in a docker-archive, without its layers. */
export async function readDockerArchiveConfig(
  file: string,
  opts: { ref?: string; workDir: string },
): Promise<{ repoTags: string[]; config: ImageConfig; configDigest: string; layerNames: string[] }> {
  const dir = opts.workDir;
  await extractTarMembers(file, dir, ['manifest.json']).catch((err: Error) => {
    throw new Error(`${file} is not a docker-archive (no manifest.json): ${err.message}`);
  });
  const entries = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as ManifestEntry[];
  const entry = pickImage(entries, file, opts.ref);
  const configName = normalMemberName(entry.Config);
  await extractTarMembers(file, dir, [configName]);
  const configBytes = await readFile(path.join(dir, configName));
  const config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
  const layerNames = entry.Layers.map(normalMemberName);
  const diffIds = config.rootfs?.diff_ids;
  if (config.rootfs?.type !== 'layers' || !Array.isArray(diffIds)) throw new Error(`${file}: image config ${configName} has no rootfs.diff_ids`);
  if (diffIds.length !== layerNames.length) {
    throw new Error(`${file}: manifest.json lists ${layerNames.length} layers but the config has ${diffIds.length} diff_ids`);
  }
  return {
    repoTags: entry.RepoTags ?? [],
    config,
    configDigest: `sha256:${createHash('sha256').update(configBytes).digest('hex')}`,
    layerNames,
  };
}

/**
 * Read one image of a docker-archive into workDir: its config and uncompressed layers, each layer
 * checked against the config's diff_ids (so a damaged or mislabelled archive is refused).
 * With `ref`, the image whose RepoTags hold that reference; else the archive's only image.
 */
export async function readDockerArchive(file: string, opts: { ref?: string; workDir: string }): Promise<DockerArchiveImage> {
  const idx = await readDockerArchiveConfig(file, opts);
  const { layerNames, config } = idx;
  await extractTarMembers(file, opts.workDir, [...new Set(layerNames)]);
  const layers: ArchiveLayer[] = [];
  for (const [i, name] of layerNames.entries()) {
    const raw = await uncompressedLayer(path.join(opts.workDir, name));
    const diffId = `sha256:${await fileHash(raw)}`;
    const want = config.rootfs.diff_ids[i];
    if (diffId !== want) throw new Error(`${file}: layer ${i} (${name}) is ${diffId} uncompressed, but the config says ${want}: damaged archive`);
    layers.push({ file: raw, diffId });
  }
  return { repoTags: idx.repoTags, config, configDigest: idx.configDigest, layers };
}

/** Serialise a config the way it is stored (compact JSON); its sha256 is the image ID. */
export function configBytesOf(config: ImageConfig): Buffer {
  return Buffer.from(JSON.stringify(config), 'utf8');
}

/**
 * Write a single-image docker-archive: manifest.json first, then the config, then the layers
 * (uncompressed, `<diff_id hex>.tar`), atomically. Deterministic for the same inputs and mtime.
 */
export async function writeDockerArchive(
  target: string,
  image: { config: ImageConfig; repoTags: string[]; layers: ArchiveLayer[] },
  opts: { mtime: Date; workDir: string },
): Promise<{ configDigest: string }> {
  const configBytes = configBytesOf(image.config);
  const configHex = createHash('sha256').update(configBytes).digest('hex');
  const ids = image.config.rootfs.diff_ids;
  if (ids.length !== image.layers.length || image.layers.some((l, i) => l.diffId !== ids[i])) {
    throw new Error(`writing ${target}: the layers do not match the config's diff_ids`);
  }
  const layerName = (l: ArchiveLayer) => `${l.diffId.replace(/^sha256:/, '')}.tar`;
  const manifest = [{ Config: `${configHex}.json`, RepoTags: image.repoTags, Layers: image.layers.map(layerName) }];
  const manifestFile = path.join(opts.workDir, `manifest-${configHex}.json`);
  const configFile = path.join(opts.workDir, `${configHex}.json`);
  await writeFile(manifestFile, JSON.stringify(manifest));
  await writeFile(configFile, configBytes);
  const entries: TarEntry[] = [
    { name: 'manifest.json', source: manifestFile, mode: 0o644 },
    { name: `${configHex}.json`, source: configFile, mode: 0o644 },
  ];
  const seen = new Set<string>();
  for (const l of image.layers) {
    const name = layerName(l);
    if (seen.has(name)) continue; // an identical layer twice (e.g. empty ones) is stored once
    seen.add(name);
    entries.push({ name, source: l.file, mode: 0o644 });
  }
  try {
    await writeDeterministicTar(target, entries, { mtime: opts.mtime, order: 'given' });
  } finally {
    await rm(manifestFile, { force: true });
    await rm(configFile, { force: true });
  }
  return { configDigest: `sha256:${configHex}` };
}
