// Stand-in policy: a runtime image built on the generated stand-in base (no real
// rancher/rke2-runtime was available) must never reach a release. Found by content, the label
// every stand-in image carries, not by file name: a renamed archive is caught the same way.
import path from 'node:path';
import { readdir } from 'node:fs/promises';
import { listTar } from '../lib/tarball.js';
import { isStandInImage } from '../rke2/runtime-image.js';

/** The image archives (docker-archive .tar) in dist/ built on a stand-in base. */
export async function standInImages(distDir: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of (await readdir(distDir)).filter((n) => n.endsWith('.tar') && !n.startsWith('.')).sort()) {
    const file = path.join(distDir, name);
    // not a tar, or a tar that is not an image archive: no image, no stand-in
    const members = await listTar(file).catch(() => []);
    if (!members.some((m) => m.path === 'manifest.json')) continue;
    // an image archive that cannot be read is an error, never a pass
    if (await isStandInImage(file).catch((err: Error) => Promise.reject(new Error(`cannot read the image archive ${name} to check its base: ${err.message}`)))) found.push(name);
  }
  return found;
}
