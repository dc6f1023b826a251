// The local side of a publish: the release assets in dist/ as the package stage's artifact lists
// describe them (kind, platform, digests, stand-in or not), each file checked against its list,
// and the checksum files (SHA256SUMS covers every other asset) checked against the lists.
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileHash } from '../lib/fsutil.js';
import { ArtifactListError, derivedChecksums, readArtifactLists, roleOf, SAFE_ASSET_NAME, SUMS256, SUMS512 } from '../stages/package/artifacts.js';
import type { AssetBody } from './github.js';

/** The aggregate checksums asset: `sha256sum -c SHA256SUMS` verifies every other asset. */
export const SUMS_NAME = SUMS256;

export interface LocalAsset {
  name: string;
  size: number;
  sha256: string;
  contentType: string;
  /** From the artifact list; artifact-list, checksums and signature for the files around the lists. */
  kind: string;
  /** Built on the generated stand-in base image, as its list says. */
  standIn: boolean;
  /** The file in dist/. */
  path: string;
  body: AssetBody;
}

export class AssetError extends Error {}

export function contentTypeOf(name: string): string {
  if (name.endsWith('.json')) return 'application/json';
  if (name.endsWith('.tar.gz') || name.endsWith('.tgz') || name.endsWith('.gz')) return 'application/gzip';
  if (name.endsWith('.tar.zst') || name.endsWith('.zst') || name.endsWith('.tzst')) return 'application/zstd';
  if (name.endsWith('.tar')) return 'application/x-tar';
  if (name.endsWith('.txt') || name === SUMS_NAME || /^SHA(256|512)SUMS/.test(name) || name.endsWith('.sha256') || name.endsWith('.sha512'))
    return 'text/plain';
  if (name.endsWith('.yaml') || name.endsWith('.yml')) return 'application/yaml';
  if (name.endsWith('.xml')) return 'application/xml';
  return 'application/octet-stream';
}

/** The SHA-512 twin of SHA256SUMS, written from the artifact lists too and checked the same way. */
export const SUMS512_NAME = SUMS512;

/** Whether an asset is covered by the aggregate sums (everything but SHA256SUMS, SHA512SUMS and their signatures/bundles). */
export function coveredBySums(name: string): boolean {
  return !/^SHA(256|512)SUMS(\..*)?$/.test(name);
}

/** Upload order: the covered assets by name, then SHA256SUMS and SHA512SUMS, then their signatures. */
export function uploadOrder(a: string, b: string): number {
  const rank = (n: string) => (coveredBySums(n) ? 0 : n === SUMS_NAME || n === SUMS512_NAME ? 1 : 2);
  return rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
}

/** What is wrong with a sums file's text (sha256sum format, any order) against the assets it must cover. */
export function compareSums(text: string, assets: readonly { name: string; sha256: string }[], algo: 'sha256' | 'sha512' = 'sha256', hashOf?: (name: string) => string): string[] {
  const want = new Map(assets.filter((a) => coveredBySums(a.name)).map((a) => [a.name, hashOf ? hashOf(a.name) : a.sha256]));
  const hexLen = algo === 'sha256' ? 64 : 128;
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const m = new RegExp(`^([0-9a-f]{${hexLen}}) [ *](.+)$`).exec(line);
    if (!m) {
      problems.push(`not a ${algo}sum line: ${JSON.stringify(line)}`);
      continue;
    }
    const [, sha, name] = m as unknown as [string, string, string];
    if (seen.has(name)) problems.push(`listed twice: ${name}`);
    seen.add(name);
    const w = want.get(name);
    if (w === undefined) problems.push(`lists a file that is not in dist: ${name}`);
    else if (w !== sha) problems.push(`wrong hash for ${name}: lists ${sha}, the file has ${w}`);
  }
  for (const name of want.keys()) if (!seen.has(name)) problems.push(`does not list ${name}`);
  return problems;
}

export interface ReadAssetsResult {
  assets: LocalAsset[];
  /** Entries in dist/ that are not published, with why. */
  ignored: { name: string; why: string }[];
}

/** Lines of a sums text as name -> digest. */
function sumsEntries(text: string): { name: string; sha256: string }[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => ({ sha256: l.slice(0, l.indexOf(' ')), name: l.slice(l.indexOf(' ') + 2) }));
}

/**
 * Every regular file directly in distDir, as the artifact lists describe it: each listed file
 * present with its listed size and sha256, no file outside the lists, and the checksum files
 * exactly what the lists call for. Any mismatch is an AssetError that says how to fix it.
 */
export async function readAssets(distDir: string, runBuildHint: string): Promise<ReadAssetsResult> {
  let entries;
  try {
    entries = await readdir(distDir, { withFileTypes: true });
  } catch {
    throw new AssetError(`no release assets: ${distDir} does not exist. ${runBuildHint}`);
  }
  const ignored: { name: string; why: string }[] = [];
  const files: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) ignored.push({ name: e.name, why: 'hidden (an interrupted write leaves such files)' });
    else if (e.isFile()) files.push(e.name);
    else ignored.push({ name: e.name, why: e.isDirectory() ? 'a directory (assets are the files directly in dist/)' : 'not a regular file' });
  }
  if (files.length === 0) throw new AssetError(`no release assets: ${distDir} has no files. ${runBuildHint}`);
  const bad = files.filter((n) => !SAFE_ASSET_NAME.test(n));
  if (bad.length) {
    throw new AssetError(
      `asset names GitHub would rewrite (use letters, digits, ".", "-", "_"): ${bad.map((b) => JSON.stringify(b)).join(', ')}`,
    );
  }
  let contents;
  try {
    contents = await readArtifactLists(distDir);
  } catch (err) {
    if (err instanceof ArtifactListError) throw new AssetError(err.message);
    throw err;
  }
  if (contents.lists.size === 0) {
    throw new AssetError(`no artifact list (artifacts-linux-<arch>.json) in ${distDir}, so nothing says what its files are: they were not made by the package stage. ${runBuildHint}`);
  }
  const fixHint = `Add files made after the package stage with "kubelet-lxc artifacts add --dist ${distDir} --platform <platform> --kind <kind> <file>", then rewrite the checksum files with "kubelet-lxc artifacts sums --dist ${distDir}"; or rebuild.`;
  const listed = new Map(contents.artifacts.map((a) => [a.name, a]));
  const derived = await derivedChecksums(distDir, contents);
  const present = new Set(files);
  const problems: string[] = [];
  for (const a of contents.artifacts) if (!present.has(a.name)) problems.push(`${a.name}: listed (${a.kind}), but not in dist/`);
  for (const n of files) {
    if (roleOf(n) === 'artifact' && !listed.has(n)) problems.push(`${n}: in dist/, but in no artifact list`);
    if (roleOf(n) === 'derived-sums' && !derived.has(n)) problems.push(`${n}: a checksum file the artifact lists do not call for`);
  }
  for (const n of derived.keys()) if (!present.has(n)) problems.push(`${n}: missing (the checksum files are written from the artifact lists)`);

  const assets: LocalAsset[] = [];
  for (const name of files.sort()) {
    const file = path.join(distDir, name);
    const size = (await stat(file)).size;
    const sha256 = await fileHash(file);
    const a = listed.get(name);
    const role = roleOf(name);
    if (a && (a.size !== size || a.sha256 !== sha256)) {
      problems.push(`${name}: changed since it was listed (the list says ${a.size} bytes sha256 ${a.sha256}, the file has ${size} bytes sha256 ${sha256})`);
    }
    const want = derived.get(name);
    if (want !== undefined) {
      const text = await readFile(file, 'utf8');
      if (text !== want) {
        const algo = /512/.test(name) ? 'sha512' : 'sha256';
        const expected = sumsEntries(want);
        const why = compareSums(text, expected, algo, (n) => expected.find((e) => e.name === n)!.sha256);
        problems.push(`${name} does not match the files in ${distDir}: ${why.length ? why.join('; ') : 'same entries, other formatting'}`);
      }
    }
    const kind = a?.kind ?? (role === 'list' ? 'artifact-list' : role === 'derived-sums' ? 'checksums' : 'signature');
    assets.push({ name, size, sha256, contentType: contentTypeOf(name), kind, standIn: a?.standIn ?? false, path: file, body: { kind: 'stream', open: () => createReadStream(file) } });
  }
  if (problems.length) {
    throw new AssetError(`${distDir} does not match its artifact lists:\n${problems.map((p) => `  ${p}`).join('\n')}\n${fixHint}`);
  }
  assets.sort((a, b) => uploadOrder(a.name, b.name));
  return { assets, ignored };
}
