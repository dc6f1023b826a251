// The lab's two container images, built from Debian's busybox-static without any
// registry: a docker-archive tarball (what `ctr images import` reads) holding
//   lab.local/busybox:1  the static pod's image
//   lab.local/pause:1    the sandbox ("pause") image containerd's CRI starts per pod
// Both share one layer: /bin/busybox plus the /bin/sh link. Deterministic: fixed
// mtimes, uid/gid 0, sorted entries, so the same busybox gives the same bytes.
import { createHash } from 'node:crypto';

export const BUSYBOX_IMAGE = 'lab.local/busybox:1';
export const PAUSE_IMAGE = 'lab.local/pause:1';

type Entry =
  | { type: 'dir'; name: string; mode: number }
  | { type: 'file'; name: string; mode: number; data: Buffer }
  | { type: 'symlink'; name: string; target: string };

const BLOCK = 512;

function octal(n: number, width: number): string {
  // width includes the trailing NUL
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(e: Entry): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  const name = Buffer.from(e.name, 'utf8');
  if (name.length > 100) throw new Error(`tar entry name too long: ${e.name}`);
  name.copy(h, 0);
  const mode = e.type === 'symlink' ? 0o777 : e.mode;
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  const size = e.type === 'file' ? e.data.length : 0;
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(0, 12), 136, 'ascii'); // mtime: the epoch, for reproducibility
  h.fill(' ', 148, 156); // checksum placeholder
  h.write(e.type === 'file' ? '0' : e.type === 'dir' ? '5' : '2', 156, 'ascii');
  if (e.type === 'symlink') {
    if (Buffer.byteLength(e.target) > 100) throw new Error(`symlink target too long: ${e.target}`);
    h.write(e.target, 157, 'utf8');
  }
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

/** A ustar archive of the given entries, in the given order. */
export function ustar(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e));
    if (e.type === 'file') {
      parts.push(e.data);
      const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
      if (pad) parts.push(Buffer.alloc(pad, 0));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2, 0));
  return Buffer.concat(parts);
}

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** The docker-archive tarball with both lab images, from the bytes of a static busybox. */
export function buildLabImages(busybox: Buffer): Buffer {
  const layer = ustar([
    { type: 'dir', name: 'bin/', mode: 0o755 },
    { type: 'file', name: 'bin/busybox', mode: 0o755, data: busybox },
    { type: 'symlink', name: 'bin/sh', target: 'busybox' },
    { type: 'dir', name: 'etc/', mode: 0o755 },
    { type: 'dir', name: 'tmp/', mode: 0o1777 },
  ]);
  const layerId = sha256(layer);
  const config = (cmd: string[], comment: string): string =>
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '1970-01-01T00:00:00Z',
      config: { Env: ['PATH=/bin'], Cmd: cmd, WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layerId}`] },
      history: [{ created: '1970-01-01T00:00:00Z', created_by: comment }],
    });
  const busyboxConfig = config(['/bin/sh'], 'kubelet-lxc lab: Debian busybox-static');
  // The sandbox only has to exist and sleep; a pod's sandbox is killed with SIGKILL.
  const pauseConfig = config(['/bin/busybox', 'sleep', '2147483647'], 'kubelet-lxc lab: pause from Debian busybox-static');
  const busyboxConfigName = `${sha256(busyboxConfig)}.json`;
  const pauseConfigName = `${sha256(pauseConfig)}.json`;
  const manifest = JSON.stringify([
    { Config: busyboxConfigName, RepoTags: [BUSYBOX_IMAGE], Layers: [`${layerId}/layer.tar`] },
    { Config: pauseConfigName, RepoTags: [PAUSE_IMAGE], Layers: [`${layerId}/layer.tar`] },
  ]);
  return ustar([
    { type: 'file', name: 'manifest.json', mode: 0o644, data: Buffer.from(manifest) },
    { type: 'file', name: busyboxConfigName, mode: 0o644, data: Buffer.from(busyboxConfig) },
    { type: 'file', name: pauseConfigName, mode: 0o644, data: Buffer.from(pauseConfig) },
    { type: 'dir', name: `${layerId}/`, mode: 0o755 },
    { type: 'file', name: `${layerId}/layer.tar`, mode: 0o644, data: layer },
  ]);
}
