// The local side of a publish: the release assets in dist/, their hashes, and the aggregate
// checksums asset (SHA256SUMS) that covers every other asset.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileHash } from '../lib/fsutil.js';
import type { AssetBody } from './github.js';

/** The aggregate checksums asset: `sha256sum -c SHA256SUMS` verifies every other asset. */
export const SUMS_NAME = 'SHA256SUMS';

export interface LocalAsset {
  name: string;
  size: number;
  sha256: string;
  contentType: string;
  /** dist: a file in dist/; generated: made by the publisher (SHA256SUMS when dist has none). */
  source: 'dist' | 'generated';
  /** The file in dist/, when source is dist. */
  path?: string;
  body: AssetBody;
}

export class AssetError extends Error {}

/** Names GitHub keeps as given (it rewrites others, which would break matching by name). */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

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

/** The optional SHA-512 twin the package stage writes beside SHA256SUMS; verified the same way when present. */
export const SUMS512_NAME = 'SHA512SUMS';

/** Whether an asset is covered by the aggregate sums (everything but SHA256SUMS, SHA512SUMS and their signatures/bundles). */
export function coveredBySums(name: string): boolean {
  return !/^SHA(256|512)SUMS(\..*)?$/.test(name);
}

export function renderSums(assets: readonly { name: string; sha256: string }[]): string {
  return assets
    .filter((a) => coveredBySums(a.name))
    .map((a) => `${a.sha256}  ${a.name}\n`)
    .sort((a, b) => (a.slice(66) < b.slice(66) ? -1 : a.slice(66) > b.slice(66) ? 1 : 0))
    .join('');
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

/**
 * Every regular file directly in distDir, hashed, plus SHA256SUMS: verified when dist has one
 * (it must list exactly the other assets with their hashes), generated when it does not.
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
  const bad = files.filter((n) => !SAFE_NAME.test(n));
  if (bad.length) {
    throw new AssetError(
      `asset names GitHub would rewrite (use letters, digits, ".", "-", "_"): ${bad.map((b) => JSON.stringify(b)).join(', ')}`,
    );
  }
  const assets: LocalAsset[] = [];
  for (const name of files.sort()) {
    const file = path.join(distDir, name);
    const size = (await stat(file)).size;
    const sha256 = await fileHash(file);
    assets.push({ name, size, sha256, contentType: contentTypeOf(name), source: 'dist', path: file, body: { kind: 'stream', open: () => createReadStream(file) } });
  }
  if (assets.filter((a) => coveredBySums(a.name)).length === 0) {
    throw new AssetError(`no release assets in ${distDir}: only ${files.join(', ')}. ${runBuildHint}`);
  }
  const expected = renderSums(assets);
  const existing = assets.find((a) => a.name === SUMS_NAME);
  if (existing) {
    const problems = compareSums(await readFile(existing.path!, 'utf8'), assets);
    if (problems.length) {
      throw new AssetError(
        `${existing.path} does not match the files in ${distDir}:\n${problems.map((p) => `  ${p}`).join('\n')}\n` +
          `Delete it (the publisher then makes one) or regenerate it: cd ${distDir} && sha256sum $(ls | grep -Ev '^SHA(256|512)SUMS') > ${SUMS_NAME}`,
      );
    }
  }
  const sums512 = assets.find((a) => a.name === SUMS512_NAME);
  if (sums512) {
    const sha512 = new Map<string, string>();
    for (const a of assets) if (coveredBySums(a.name)) sha512.set(a.name, await fileHash(a.path!, 'sha512'));
    const problems = compareSums(await readFile(sums512.path!, 'utf8'), assets, 'sha512', (n) => sha512.get(n)!);
    if (problems.length) {
      throw new AssetError(
        `${sums512.path} does not match the files in ${distDir}:\n${problems.map((p) => `  ${p}`).join('\n')}\n` +
          `Delete it or regenerate it: cd ${distDir} && sha512sum $(ls | grep -Ev '^SHA(256|512)SUMS') > ${SUMS512_NAME}`,
      );
    }
  }
  if (!existing) {
    const data = Buffer.from(expected, 'utf8');
    assets.push({
      name: SUMS_NAME,
      size: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
      contentType: contentTypeOf(SUMS_NAME),
      source: 'generated',
      body: { kind: 'buffer', data },
    });
  }
  assets.sort((a, b) => uploadOrder(a.name, b.name));
  return { assets, ignored };
}
