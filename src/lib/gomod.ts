// Go module helpers: the module proxy through the real `go` command, and the h1: directory
// hash (golang.org/x/mod/sumdb/dirhash Hash1) computed here over the exact files we use.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { listFiles } from './fsutil.js';
import { run } from './exec.js';

export interface DownloadedModule {
  Path: string;
  Version: string;
  Info?: string;
  GoMod?: string;
  Zip?: string;
  Dir?: string;
  Sum?: string;
  GoModSum?: string;
  Error?: string;
}

/** Hash1 over a module directory as its zip would hold it: lines "<sha256>  <mod>@<ver>/<file>". */
export async function hashModuleDir(dir: string, modPath: string, version: string): Promise<string> {
  const files = await listFiles(dir);
  const summary = createHash('sha256');
  for (const rel of files) {
    const h = createHash('sha256').update(await readFile(path.join(dir, rel))).digest('hex');
    summary.update(`${h}  ${modPath}@${version}/${rel}\n`);
  }
  return `h1:${summary.digest('base64')}`;
}

/** h1 of a go.mod file alone (the `/go.mod` line of go.sum) */
export async function hashGoMod(file: string): Promise<string> {
  const h = createHash('sha256').update(await readFile(file)).digest('hex');
  // As modfetch does: Hash1 over the single file named plain "go.mod".
  return `h1:${createHash('sha256').update(`${h}  go.mod\n`).digest('base64')}`;
}

export function goEnv(extra: Record<string, string | undefined>): Record<string, string | undefined> {
  return { ...process.env, GOFLAGS: '-mod=mod', ...extra };
}

/** `go mod download -json` of several modules in one call; errors are per module. */
export async function goModDownload(
  cwd: string,
  mods: string[],
  env: Record<string, string | undefined>,
  onLine?: (l: string) => void,
): Promise<DownloadedModule[]> {
  const res = await run('go', ['mod', 'download', '-json', ...mods], { cwd, env, reject: false, onLine });
  // The output is a stream of indented JSON objects, each closed by "}" alone on a line.
  const out: DownloadedModule[] = [];
  let buf: string[] = [];
  for (const line of res.stdout.split('\n')) {
    buf.push(line);
    if (line === '}') {
      out.push(JSON.parse(buf.join('\n')) as DownloadedModule);
      buf = [];
    }
  }
  if (out.length === 0 && res.exitCode !== 0) throw new Error(`go mod download failed: ${res.stderr.trim()}`);
  return out;
}
