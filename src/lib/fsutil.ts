// File helpers: content hashes, and atomic writes so that an interrupted run never leaves a
// half-written file where a finished one is expected.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, writeFile, readFile, stat, readdir } from 'node:fs/promises';
import path from 'node:path';

export async function fileHash(file: string, algo: 'sha256' | 'sha512' = 'sha256'): Promise<string> {
  const h = createHash(algo);
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export function hashJson(value: unknown): string {
  return createHash('sha256').update(stableStringify(value)).digest('hex');
}

/** JSON with sorted object keys, so equal values hash equally. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** A temp path beside the target (same file system, so the final rename is atomic). */
export function tempBeside(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${Date.now()}`);
}

export async function writeFileAtomic(target: string, data: string | Buffer, mode?: number): Promise<void> {
  await mkdir(path.dirname(target), { recursive: true });
  const tmp = tempBeside(target);
  try {
    await writeFile(tmp, data, mode === undefined ? undefined : { mode });
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Whether a process exists in this PID namespace (EPERM: it exists but is not ours). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes what runs killed outright (kill -9, power loss) left at temp paths beside target; a live run's temp stays. */
async function removeDeadTemps(target: string): Promise<void> {
  const prefix = `.${path.basename(target)}.tmp-`;
  for (const e of await readdir(path.dirname(target)).catch(() => [] as string[])) {
    const m = e.startsWith(prefix) ? /^(\d+)-\d+$/.exec(e.slice(prefix.length)) : null;
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) await rm(path.join(path.dirname(target), e), { recursive: true, force: true });
  }
}

/** Build a directory at a temp path with `fill`, then move it into place whole. */
export async function buildDirAtomic(target: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  await mkdir(path.dirname(target), { recursive: true });
  await removeDeadTemps(target);
  const tmp = tempBeside(target);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await fill(tmp);
    await rm(target, { recursive: true, force: true });
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

export async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/**
 * One hash over the contents of files and folders (every file below a folder), each named by its
 * path relative to base, so that a moved checkout hashes the same; a missing path counts too.
 */
export async function hashFiles(paths: string[], base: string): Promise<string> {
  const parts: [string, string][] = [];
  for (const p of paths) {
    const name = path.relative(base, p);
    const st = await stat(p).catch(() => undefined);
    if (!st) parts.push([name, 'missing']);
    else if (st.isDirectory()) for (const f of await listFiles(p)) parts.push([`${name}/${f}`, await fileHash(path.join(p, f))]);
    else parts.push([name, await fileHash(p)]);
  }
  return hashJson(parts);
}

/** Every regular file below dir, relative, sorted. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string) {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) out.push(r);
    }
  }
  await walk('');
  return out.sort();
}
