// Stand-in policy: a runtime image built on the generated stand-in base (no real
// rancher/rke2-runtime was available) must never reach a release. Found by content, the label
// every stand-in image carries, not by file name: a renamed archive is caught the same way.
import { listTar } from '../lib/tarball.js';
import { isStandInImage } from '../rke2/runtime-image.js';

/** The image archives (docker-archive .tar) among the assets to publish that were built on a stand-in base. */
export async function standInImages(assets: readonly { name: string; path?: string }[]): Promise<string[]> {
  const found: string[] = [];
  for (const a of assets.filter((x) => x.path && x.name.endsWith('.tar'))) {
    // not a tar, or a tar that is not an image archive: no image, no stand-in
    const members = await listTar(a.path!).catch(() => []);
    if (!members.some((m) => m.path === 'manifest.json')) continue;
    // an image archive that cannot be read is an error, never a pass
    if (await isStandInImage(a.path!).catch((err: Error) => Promise.reject(new Error(`cannot read the image archive ${a.name} to check its base: ${err.message}`)))) found.push(a.name);
  }
  return found;
}
