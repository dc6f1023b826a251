// Container images of the lab, built without any registry as docker-archive tarballs (what
// `ctr images import` reads): layers written entry by entry through the tar seam (modes, owners
// and links are part of an image), deterministic (fixed mtime, given order), so the same inputs
// give the same bytes.
//   L1: lab.local/busybox:1 (the static pod) and lab.local/pause:1 (the sandbox), one shared
//       layer from Debian's busybox-static.
//   L2: the images the conformance tests name (see l2/images.ts).
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileHash } from '../lib/fsutil.js';
import { writeDeterministicTar, writeTarEntries, type SyntheticEntry, type TarEntry } from '../lib/tarball.js';

export const BUSYBOX_IMAGE = 'lab.local/busybox:1';
export const PAUSE_IMAGE = 'lab.local/pause:1';
export const EPOCH = new Date(0);

export interface Layer {
  file: string;
  /** sha256:<hex> of the uncompressed layer */
  diffId: string;
}

export interface ImageSpec {
  ref: string;
  layers: Layer[];
  /** the image config's "config" part: Env, Cmd, Entrypoint, User, WorkingDir, ... */
  config: Record<string, unknown>;
  /** what built it, for the image history */
  comment: string;
}

/** Writes one layer tarball; its diff id is the sha256 of its bytes. */
export async function writeLayer(file: string, entries: SyntheticEntry[]): Promise<Layer> {
  await writeTarEntries(file, entries, { mtime: EPOCH });
  return { file, diffId: `sha256:${await fileHash(file)}` };
}

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/**
 * A docker-archive holding every image (manifest.json first, each config named by its digest,
 * each distinct layer once, named by its diff id), written atomically.
 */
export async function writeImageArchive(target: string, images: ImageSpec[]): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'kubelet-lxc-images-'));
  try {
    const manifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
    const configs: TarEntry[] = [];
    const layers = new Map<string, string>();
    for (const img of images) {
      const config = JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        created: EPOCH.toISOString().replace('.000Z', 'Z'),
        config: img.config,
        rootfs: { type: 'layers', diff_ids: img.layers.map((l) => l.diffId) },
        history: img.layers.map(() => ({ created: EPOCH.toISOString().replace('.000Z', 'Z'), created_by: img.comment })),
      });
      const name = `${sha256(config)}.json`;
      if (!configs.some((c) => c.name === name)) {
        await writeFile(join(work, name), config);
        configs.push({ name, source: join(work, name), mode: 0o644 });
      }
      const layerNames = img.layers.map((l) => `${l.diffId.replace(/^sha256:/, '')}/layer.tar`);
      img.layers.forEach((l, i) => layers.set(layerNames[i]!, l.file));
      manifest.push({ Config: name, RepoTags: [img.ref], Layers: layerNames });
    }
    await writeFile(join(work, 'manifest.json'), JSON.stringify(manifest));
    const entries: TarEntry[] = [
      { name: 'manifest.json', source: join(work, 'manifest.json'), mode: 0o644 },
      ...configs,
      ...[...layers.entries()].map(([name, source]) => ({ name, source, mode: 0o644 })),
    ];
    await writeDeterministicTar(target, entries, { mtime: EPOCH, order: 'given' });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The L1 lab's images (static pod and sandbox), both over one layer of Debian's busybox-static. */
export async function writeLabImages(target: string, busybox: string): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'kubelet-lxc-lab-images-'));
  try {
    await mkdir(work, { recursive: true });
    const layer = await writeLayer(join(work, 'busybox.tar'), [
      { type: 'dir', name: 'bin', mode: 0o755 },
      { type: 'file', name: 'bin/busybox', mode: 0o755, source: busybox },
      { type: 'symlink', name: 'bin/sh', target: 'busybox' },
      { type: 'dir', name: 'etc', mode: 0o755 },
      { type: 'dir', name: 'tmp', mode: 0o1777 },
    ]);
    await writeImageArchive(target, [
      { ref: BUSYBOX_IMAGE, layers: [layer], config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'], WorkingDir: '/' }, comment: 'kubelet-lxc lab: Debian busybox-static' },
      // The sandbox only has to exist and sleep; a pod's sandbox is killed with SIGKILL.
      { ref: PAUSE_IMAGE, layers: [layer], config: { Env: ['PATH=/bin'], Cmd: ['/bin/busybox', 'sleep', '2147483647'], WorkingDir: '/' }, comment: 'kubelet-lxc lab: pause from Debian busybox-static' },
    ]);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
