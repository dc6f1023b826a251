// One description of a file the package stage produced: name, kind, platform, size and sha256.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { fileHash } from '../lib/fsutil.js';
import type { PackagedFile } from '../stages/types.js';

export async function packagedFile(file: string, kind: string, platform?: PackagedFile['platform']): Promise<PackagedFile> {
  const s = await stat(file);
  return { path: file, name: path.basename(file), sha256: await fileHash(file), size: s.size, kind, ...(platform ? { platform } : {}) };
}
