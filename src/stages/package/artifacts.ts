// The package stage's artifact list: what each file in dist/ is (kind, platform, size, digests,
// stand-in or not), one list per platform (artifacts-linux-<arch>.json), so the dist/ folders of
// several platform jobs merge without clobbering each other. Publish, the checksum files and the
// release workflow read these lists; nothing guesses a file's kind from its name.
//
// The checksum files are derived from the lists, here and nowhere else: per platform
// sha256sum-<arch>.txt / sha512sum-<arch>.txt over its kubelet tarball, and SHA256SUMS /
// SHA512SUMS over every other file in dist/ (the lists and the per-platform sums included).
import { createHash } from 'node:crypto';
import { copyFile, readdir, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileHash, tempBeside, writeFileAtomic } from '../../lib/fsutil.js';
import { schemaProblems, z } from '../../lib/schema.js';
import { PLATFORMS, archOf, type Platform } from '../../manifest.js';

/** Names GitHub keeps as given (it rewrites others, which would break matching by name). */
export const SAFE_ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const artifactSchema = z.object({
  name: z.string().regex(SAFE_ASSET_NAME, 'a file name of letters, digits, ".", "-", "_"'),
  /** kubelet-tarball, sbom, kubelet-path-bundle, checksum, rke2-runtime-image, rke2-runtime-image-zstd, rke2-config-*, conformance-*, … */
  kind: z.string().min(1),
  /** absent for files that are the same for every platform (the RKE2 config snippets) */
  platform: z.enum(PLATFORMS).optional(),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  sha512: z.string().regex(/^[0-9a-f]{128}$/),
  /** built on the generated stand-in base image: never published without --allow-stand-in */
  standIn: z.boolean(),
});

const artifactListSchema = z.object({
  schema: z.literal(1),
  platform: z.enum(PLATFORMS),
  artifacts: z.array(artifactSchema),
});

export type Artifact = z.infer<typeof artifactSchema>;
export type ArtifactList = z.infer<typeof artifactListSchema>;

export class ArtifactListError extends Error {}

export const SUMS256 = 'SHA256SUMS';
export const SUMS512 = 'SHA512SUMS';

export function artifactListName(platform: Platform): string {
  return `artifacts-linux-${archOf(platform)}.json`;
}

const LIST_NAME = /^artifacts-linux-[a-z0-9]+\.json$/;
const PER_PLATFORM_SUMS = /^sha(256|512)sum-[a-z0-9]+\.txt$/;

/** What a file in dist/ is, by role: listed in an artifact list, a list, or a checksum file derived from the lists (or a signature of one, added later). */
export function roleOf(name: string): 'list' | 'derived-sums' | 'sums-companion' | 'artifact' {
  if (LIST_NAME.test(name)) return 'list';
  if (name === SUMS256 || name === SUMS512 || PER_PLATFORM_SUMS.test(name)) return 'derived-sums';
  // e.g. SHA256SUMS.sigstore.json: the release workflow's provenance bundle over the sums
  if (/^SHA(256|512)SUMS\..+$/.test(name)) return 'sums-companion';
  return 'artifact';
}

/** One file of dir described for the list: size and both digests from its bytes. */
export async function describeArtifact(file: string, kind: string, o: { platform?: Platform; standIn?: boolean } = {}): Promise<Artifact> {
  const [s, sha256, sha512] = await Promise.all([stat(file), fileHash(file, 'sha256'), fileHash(file, 'sha512')]);
  return { name: path.basename(file), kind, ...(o.platform ? { platform: o.platform } : {}), size: s.size, sha256, sha512, standIn: o.standIn ?? false };
}

export async function writeArtifactList(dir: string, list: ArtifactList): Promise<void> {
  const sorted = { ...list, artifacts: [...list.artifacts].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) };
  await writeFileAtomic(path.join(dir, artifactListName(list.platform)), `${JSON.stringify(sorted, null, 2)}\n`);
}

export interface DistContents {
  /** the lists, by file name */
  lists: Map<string, ArtifactList>;
  /** every listed artifact once (a file listed by several platforms, such as a config snippet, must be the same file in each) */
  artifacts: Artifact[];
}

/** The artifact lists in dir, checked against their schema and against each other. */
export async function readArtifactLists(dir: string): Promise<DistContents> {
  const names = (await readdir(dir)).filter((n) => roleOf(n) === 'list').sort();
  const lists = new Map<string, ArtifactList>();
  const byName = new Map<string, { a: Artifact; list: string }>();
  for (const n of names) {
    let data: unknown;
    try {
      data = JSON.parse(await readFile(path.join(dir, n), 'utf8'));
    } catch (err) {
      throw new ArtifactListError(`artifact list ${path.join(dir, n)} is not JSON (${(err as Error).message}): rerun the package stage`);
    }
    const { value, problems } = schemaProblems(artifactListSchema, data);
    if (!value) throw new ArtifactListError(`artifact list ${path.join(dir, n)} is not valid:\n${problems.map((p) => `  ${p}`).join('\n')}\nrerun the package stage`);
    if (n !== artifactListName(value.platform)) throw new ArtifactListError(`artifact list ${n} is for ${value.platform}: its name must be ${artifactListName(value.platform)}`);
    lists.set(n, value);
    for (const a of value.artifacts) {
      if (roleOf(a.name) !== 'artifact') throw new ArtifactListError(`${n} lists ${a.name}, a name kept for the lists and checksum files`);
      const seen = byName.get(a.name);
      if (seen && seen.a.sha256 !== a.sha256) throw new ArtifactListError(`${a.name} is listed by ${seen.list} and by ${n} with different contents: the platforms' dist/ folders do not fit together`);
      if (!seen) byName.set(a.name, { a, list: n });
    }
  }
  return { lists, artifacts: [...byName.values()].map((v) => v.a).sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0)) };
}

/** sha256sum/sha512sum text over entries, sorted by name (byte order, as `LC_ALL=C sort`). */
export function renderSums(entries: readonly { name: string; digest: string }[]): string {
  return [...entries]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((e) => `${e.digest}  ${e.name}\n`)
    .join('');
}

/**
 * The checksum files the lists in dir call for, by name, with their text: per platform the sums
 * of its kubelet tarball, then SHA256SUMS and SHA512SUMS over every artifact, list and
 * per-platform sums file. Only the lists' own bytes are read; artifacts by their listed digests.
 */
export async function derivedChecksums(dir: string, contents?: DistContents): Promise<Map<string, string>> {
  const { lists, artifacts } = contents ?? (await readArtifactLists(dir));
  const files = new Map<string, string>();
  for (const list of lists.values()) {
    const tarballs = list.artifacts.filter((a) => a.kind === 'kubelet-tarball');
    if (!tarballs.length) continue;
    const arch = archOf(list.platform);
    files.set(`sha256sum-${arch}.txt`, renderSums(tarballs.map((a) => ({ name: a.name, digest: a.sha256 }))));
    files.set(`sha512sum-${arch}.txt`, renderSums(tarballs.map((a) => ({ name: a.name, digest: a.sha512 }))));
  }
  const covered: { name: string; sha256: string; sha512: string }[] = [...artifacts];
  const digestOf = (data: Buffer | string, algo: 'sha256' | 'sha512') => createHash(algo).update(data).digest('hex');
  for (const n of lists.keys()) {
    const data = await readFile(path.join(dir, n));
    covered.push({ name: n, sha256: digestOf(data, 'sha256'), sha512: digestOf(data, 'sha512') });
  }
  for (const [n, text] of files) covered.push({ name: n, sha256: digestOf(text, 'sha256'), sha512: digestOf(text, 'sha512') });
  files.set(SUMS256, renderSums(covered.map((c) => ({ name: c.name, digest: c.sha256 }))));
  files.set(SUMS512, renderSums(covered.map((c) => ({ name: c.name, digest: c.sha512 }))));
  return files;
}

/** Writes every checksum file the lists in dir call for (each atomically); returns their names. */
export async function writeChecksums(dir: string): Promise<string[]> {
  const files = await derivedChecksums(dir);
  for (const [n, text] of files) await writeFileAtomic(path.join(dir, n), text);
  return [...files.keys()];
}

/** One sums file for one file (such as a bundle's .sha256 beside it): the same format as the rest. */
export async function writeSumsFor(file: string, sumsFile: string): Promise<void> {
  await writeFileAtomic(sumsFile, renderSums([{ name: path.basename(file), digest: await fileHash(file) }]));
}

/**
 * Adds files made after the package stage (the lab's conformance results) to dist/ and to
 * platform's list: copied in atomically, listed with their digests. The checksum files are then
 * stale until writeChecksums runs.
 */
export async function addArtifacts(dir: string, platform: Platform, files: readonly string[], kind: string): Promise<Artifact[]> {
  const listFile = path.join(dir, artifactListName(platform));
  const { lists } = await readArtifactLists(dir);
  const list = lists.get(artifactListName(platform));
  if (!list) throw new ArtifactListError(`${listFile} does not exist: ${dir} holds no package stage output for ${platform}`);
  const added: Artifact[] = [];
  for (const f of files) {
    const name = path.basename(f);
    if (!SAFE_ASSET_NAME.test(name) || roleOf(name) !== 'artifact') throw new ArtifactListError(`${name}: not a name an artifact can have (letters, digits, ".", "-", "_"; not a list or checksum name)`);
    const other = [...lists.values()].flatMap((l) => l.artifacts).find((a) => a.name === name);
    if (other && other.kind !== kind) throw new ArtifactListError(`${name} is already in dist/ as a ${other.kind}`);
    const target = path.join(dir, name);
    if (path.resolve(f) !== target) {
      const tmp = tempBeside(target);
      await copyFile(f, tmp);
      await rename(tmp, target);
    }
    added.push(await describeArtifact(target, kind, { platform }));
  }
  const keep = list.artifacts.filter((a) => !added.some((b) => b.name === a.name));
  await writeArtifactList(dir, { ...list, artifacts: [...keep, ...added] });
  return added;
}
