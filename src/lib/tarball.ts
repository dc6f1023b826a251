// The one seam to the tar library: deterministic archives (sorted entries, fixed mtime,
// uid/gid 0, no user names) so that rebuilding gives the same bytes; and safe extraction.
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip, constants as zlib } from 'node:zlib';
import * as tar from 'tar';
import { tempBeside } from './fsutil.js';

export interface TarEntry {
  /** Path inside the archive (relative, forward slashes). */
  name: string;
  /** File on disk whose bytes go in. */
  source: string;
  /** Permission bits; default from the source's mode (0755 for executables, else 0644). */
  mode?: number;
}

/** Fixed mtime for every entry: the source date of the release (SOURCE_DATE_EPOCH). */
export interface DeterministicTarOptions {
  mtime: Date;
  gzip?: boolean;
  /**
   * Entry order: 'sorted' (default) by name; 'given' keeps the caller's order (each implied
   * directory goes right before its first entry), for formats that need a member first, such as
   * a docker-archive's manifest.json. The caller's order must itself be deterministic.
   */
  order?: 'sorted' | 'given';
}

/**
 * Write a tar(.gz) of exactly these entries, sorted by name (or in the given order), atomically.
 * Entries are staged in a temp dir laid out as in the archive, then packed with portable headers.
 */
export async function writeDeterministicTar(target: string, entries: TarEntry[], opts: DeterministicTarOptions): Promise<void> {
  const stage = `${tempBeside(target)}.d`;
  const tmp = tempBeside(target);
  const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const sorted = opts.order === 'given' ? [...entries] : [...entries].sort((a, b) => byName(a.name, b.name));
  if (new Set(sorted.map((e) => e.name)).size !== sorted.length) throw new Error(`duplicate archive entry names for ${target}`);
  const { copyFile, chmod, utimes } = await import('node:fs/promises');
  try {
    const dirs = new Set<string>();
    for (const e of sorted) {
      if (e.name.startsWith('/') || e.name.split('/').includes('..')) throw new Error(`unsafe archive entry name: ${e.name}`);
      const dest = path.join(stage, e.name);
      await mkdir(path.dirname(dest), { recursive: true });
      await copyFile(e.source, dest);
      const mode = e.mode ?? ((await stat(e.source)).mode & 0o111 ? 0o755 : 0o644);
      await chmod(dest, mode);
      await utimes(dest, opts.mtime, opts.mtime);
      let d = path.posix.dirname(e.name);
      while (d !== '.' && d !== '/') {
        dirs.add(d);
        d = path.posix.dirname(d);
      }
    }
    // Fixed directory modes whatever the umask (directory mtimes are left out by portable mode).
    for (const d of dirs) {
      await chmod(path.join(stage, d), 0o755);
      await utimes(path.join(stage, d), opts.mtime, opts.mtime);
    }
    // Directories before their contents, each followed by nothing implicit (noDirRecurse).
    let names: string[];
    if (opts.order === 'given') {
      names = [];
      const placed = new Set<string>();
      for (const e of sorted) {
        const parents: string[] = [];
        for (let d = path.posix.dirname(e.name); d !== '.' && d !== '/'; d = path.posix.dirname(d)) parents.unshift(d);
        for (const d of parents) {
          if (placed.has(d)) continue;
          placed.add(d);
          names.push(`${d}/`);
        }
        names.push(e.name);
      }
    } else {
      names = [...[...dirs].map((d) => `${d}/`), ...sorted.map((e) => e.name)].sort();
    }
    const packer = tar.create(
      { cwd: stage, portable: true, noDirRecurse: true, mtime: opts.mtime, noPax: true, follow: false },
      names,
    );
    const sink = createWriteStream(tmp);
    if (opts.gzip) await pipeline(packer, createGzip({ level: zlib.Z_BEST_COMPRESSION }), sink);
    else await pipeline(packer, sink);
    await rename(tmp, target);
  } finally {
    await rm(stage, { recursive: true, force: true });
    await rm(tmp, { force: true });
  }
}

export interface ArchiveMember {
  path: string;
  type: string;
  size: number;
  mode: number;
}

export async function listTar(file: string): Promise<ArchiveMember[]> {
  const out: ArchiveMember[] = [];
  await tar.list({
    file,
    onReadEntry: (e) => {
      out.push({ path: e.path, type: e.type, size: e.size ?? 0, mode: e.mode ?? 0 });
    },
  });
  return out;
}

/** Refuse archives with absolute paths, `..` components or links that leave the tree. */
export function unsafeMembers(members: ArchiveMember[]): string[] {
  return members
    .filter((m) => m.path.startsWith('/') || m.path.split('/').includes('..') || /Link$/.test(m.type))
    .map((m) => `${m.path} (${m.type})`);
}

export async function extractTar(file: string, dest: string): Promise<void> {
  const bad = unsafeMembers(await listTar(file));
  if (bad.length) throw new Error(`refusing ${file}: unsafe entries ${bad.join(', ')}`);
  await mkdir(dest, { recursive: true });
  await tar.extract({ file, cwd: dest, strict: true, preserveOwner: false });
}

/** Entry names as a reader sees them: without a leading "./" or a trailing "/". */
export function normalMemberName(name: string): string {
  return name.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
}

/**
 * Extract only the named regular files (safe names only) of an archive into dest, keeping their
 * relative paths; other members, links included, are never written. Fails naming any member that
 * is missing or is not a regular file. For reading formats such as docker-archive, whose members
 * are referenced by name from an index file.
 */
export async function extractTarMembers(file: string, dest: string, names: string[]): Promise<void> {
  const wanted = new Set(names.map(normalMemberName));
  for (const n of wanted) {
    if (!n || n.startsWith('/') || n.split('/').includes('..')) throw new Error(`refusing to extract unsafe member name ${JSON.stringify(n)} from ${file}`);
  }
  const found = new Map<string, string>();
  for (const m of await listTar(file)) {
    const n = normalMemberName(m.path);
    if (wanted.has(n)) found.set(n, m.type);
  }
  const problems = [...wanted].filter((n) => found.get(n) !== 'File' && found.get(n) !== 'OldFile').map((n) => (found.has(n) ? `${n} (${found.get(n)}, not a regular file)` : `${n} (missing)`));
  if (problems.length) throw new Error(`${file}: cannot read member(s) ${problems.join(', ')}`);
  await mkdir(dest, { recursive: true });
  await tar.extract({
    file,
    cwd: dest,
    strict: true,
    preserveOwner: false,
    filter: (p, entry) => wanted.has(normalMemberName(p)) && 'type' in entry && (entry.type === 'File' || entry.type === 'OldFile'),
  });
}

/** An entry made from scratch: a file (bytes or a file on disk), a directory or a symbolic link, with its owner and mode. */
export type SyntheticEntry =
  | { type: 'file'; name: string; mode: number; uid?: number; gid?: number; data: Buffer }
  | { type: 'file'; name: string; mode: number; uid?: number; gid?: number; source: string }
  | { type: 'dir'; name: string; mode: number; uid?: number; gid?: number }
  | { type: 'symlink'; name: string; target: string };

const BLOCK = 512;

/**
 * A tar of exactly these entries, in the given order, written atomically: for image layers, whose
 * modes (setuid, sticky), owners and links are part of the content. Headers are the tar library's
 * (ustar, with a pax header where a name is too long); mtime fixed, uid/gid as given, no user names.
 */
export async function writeTarEntries(target: string, entries: SyntheticEntry[], opts: { mtime: Date }): Promise<void> {
  const tmp = tempBeside(target);
  const names = new Set<string>();
  const out = createWriteStream(tmp);
  const write = (b: Buffer) => new Promise<void>((res, rej) => out.write(b, (e) => (e ? rej(e) : res())));
  try {
    for (const e of entries) {
      const name = e.type === 'dir' && !e.name.endsWith('/') ? `${e.name}/` : e.name;
      if (name.startsWith('/') || name.split('/').includes('..')) throw new Error(`unsafe archive entry name: ${name}`);
      if (names.has(name)) throw new Error(`duplicate archive entry ${name} for ${target}`);
      names.add(name);
      let body: Buffer | undefined;
      let size = 0;
      if (e.type === 'file') {
        body = 'data' in e ? e.data : await readFile(e.source);
        size = body.length;
      }
      const h = new tar.Header({
        path: name,
        mode: e.type === 'symlink' ? 0o777 : e.mode,
        uid: e.type === 'symlink' ? 0 : (e.uid ?? 0),
        gid: e.type === 'symlink' ? 0 : (e.gid ?? 0),
        size,
        mtime: opts.mtime,
        type: e.type === 'file' ? 'File' : e.type === 'dir' ? 'Directory' : 'SymbolicLink',
        linkpath: e.type === 'symlink' ? e.target : '',
        uname: '',
        gname: '',
      });
      if (h.encode()) await write(new tar.Pax({ path: name, linkpath: e.type === 'symlink' ? e.target : undefined, mtime: opts.mtime }).encode());
      await write(h.block!);
      if (body) {
        await write(body);
        const pad = (BLOCK - (size % BLOCK)) % BLOCK;
        if (pad) await write(Buffer.alloc(pad));
      }
    }
    await write(Buffer.alloc(BLOCK * 2));
    await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
    await rename(tmp, target);
  } catch (err) {
    out.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
}
