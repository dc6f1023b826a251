// The images the L2 lab's pods and conformance tests use, built locally under the exact names
// the tests expect (lab/conformance.json, checked against `e2e.test --list-images`): no
// registry is ever contacted, and with versioned tags the kubelet never tries to pull them.
//   busybox     Debian's busybox-static with a /bin link for every applet (as upstream's image)
//   agnhost     agnhost from the tree over busybox, with Debian's curl and its libraries (exec
//               lifecycle hooks run `sh -c "curl ..."`), porter's certificates, /uploads
//   nonewprivs  nnp from the tree, setuid root, over busybox
//   pause       build/pause's pause.c, static, running as 65535 (the pods' sandbox too)
import path from 'node:path';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import { run } from '../../lib/exec.js';
import type { SyntheticEntry } from '../../lib/tarball.js';
import { writeImageArchive, writeLayer, type ImageSpec } from '../images.js';
import type { L2Binaries } from './binaries.js';

export interface L2ImageRefs {
  busybox: string;
  agnhost: string;
  nonewprivs: string;
  pause: string;
}

/** The image names of the conformance list, by the image they are (registry and tag as the tests compute them). */
export function imageRefsFrom(names: string[]): L2ImageRefs {
  const pick = (re: RegExp, what: string): string => {
    const hit = names.find((n) => re.test(n));
    if (!hit) throw new Error(`lab/conformance.json lists no ${what} image (have: ${names.join(', ')})`);
    return hit;
  };
  return {
    busybox: pick(/\/busybox:[^/]+$/, 'busybox'),
    agnhost: pick(/\/agnhost:[^/]+$/, 'agnhost'),
    nonewprivs: pick(/\/nonewprivs:[^/]+$/, 'nonewprivs'),
    pause: pick(/\/pause:[^/]+$/, 'pause'),
  };
}

/** manifest.go's config key of each lab image (test/utils/image/manifest.go). */
const IMAGE_CONFIG_KEYS: Record<keyof L2ImageRefs, string> = { busybox: 'BusyBox', agnhost: 'Agnhost', nonewprivs: 'Nonewprivs', pause: 'Pause' };

/** The refs with the tags the release's manifest.go gives (a new minor bumps agnhost, busybox, ...). */
export function retagImageRefs(refs: L2ImageRefs, tags: Record<string, string>): L2ImageRefs {
  const out = { ...refs };
  for (const k of Object.keys(IMAGE_CONFIG_KEYS) as (keyof L2ImageRefs)[]) {
    const tag = tags[IMAGE_CONFIG_KEYS[k]];
    if (tag) out[k] = `${refs[k].slice(0, refs[k].lastIndexOf(':'))}:${tag}`;
  }
  return out;
}

const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const dir = (name: string, mode = 0o755): SyntheticEntry => ({ type: 'dir', name, mode });
const text = (name: string, body: string, mode = 0o644): SyntheticEntry => ({ type: 'file', name, mode, data: Buffer.from(body) });

/** Parent directories of every entry, each once, before the entries (layers need no implicit dirs). */
function withParents(entries: SyntheticEntry[], have: Set<string> = new Set()): SyntheticEntry[] {
  const out: SyntheticEntry[] = [];
  for (const e of entries) {
    const parts = e.name.replace(/\/$/, '').split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (have.has(d)) continue;
      have.add(d);
      out.push(dir(d));
    }
    if (e.type === 'dir') have.add(e.name.replace(/\/$/, ''));
    out.push(e);
  }
  return out;
}

/**
 * Writes the docker-archive with the four images to target. imageFiles: busybox and curl with
 * its libraries from the guest's Debian root (GuestImage.imageFiles); tree: the pinned tree.
 */
export async function writeL2Images(target: string, o: { refs: L2ImageRefs; imageFiles: string; bins: L2Binaries; tree: string }): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'kubelet-lxc-l2-images-'));
  try {
    const busybox = path.join(o.imageFiles, 'bin', 'busybox');
    const applets = (await run(busybox, ['--list'])).stdout.split('\n').map((a) => a.trim()).filter((a) => a && a !== 'busybox' && /^[\w.[-]+$/.test(a));
    const base = await writeLayer(path.join(work, 'busybox.tar'), [
      dir('bin'),
      { type: 'file', name: 'bin/busybox', mode: 0o755, source: busybox },
      ...applets.sort().map((a): SyntheticEntry => ({ type: 'symlink', name: `bin/${a}`, target: 'busybox' })),
      dir('etc'),
      text('etc/group', 'root:x:0:\nnogroup:x:65534:\n'),
      text('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n'),
      dir('home'),
      dir('root', 0o700),
      dir('tmp', 0o1777),
      dir('usr'),
      dir('var'),
    ]);
    // curl and every library the loader resolves for it, at the paths it resolves them at
    const files = (await readFile(path.join(o.imageFiles, '.files'), 'utf8')).split('\n').filter((f) => f && f !== '/bin/busybox');
    const have = new Set(['bin', 'etc', 'home', 'root', 'tmp', 'usr', 'var']);
    const curl = await writeLayer(
      path.join(work, 'curl.tar'),
      withParents(
        files.map((f): SyntheticEntry => ({ type: 'file', name: f.replace(/^\//, ''), mode: 0o755, source: path.join(o.imageFiles, f) })),
        have,
      ),
    );
    const porter = path.join(o.tree, 'test', 'images', 'agnhost', 'porter');
    const agnhost = await writeLayer(path.join(work, 'agnhost.tar'), [
      { type: 'file', name: 'agnhost', mode: 0o755, source: o.bins.paths.agnhost },
      { type: 'symlink', name: 'agnhost-2', target: 'agnhost' },
      // the user and group one supplemental-groups test expects to be defined in the image
      text('etc/group', 'root:x:0:\nnogroup:x:65534:\ngroup-defined-in-image:x:50000:user-defined-in-image\nuser-defined-in-image:x:1000:\n'),
      text('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nuser-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n'),
      { type: 'file', name: 'localhost.crt', mode: 0o644, source: path.join(porter, 'localhost.crt') },
      { type: 'file', name: 'localhost.key', mode: 0o644, source: path.join(porter, 'localhost.key') },
      dir('uploads'),
    ]);
    const nnp = await writeLayer(path.join(work, 'nnp.tar'), [dir('usr/local'), dir('usr/local/bin'), { type: 'file', name: 'usr/local/bin/nnp', mode: 0o4755, source: o.bins.paths.nonewprivs }]);
    const pause = await writeLayer(path.join(work, 'pause.tar'), [{ type: 'file', name: 'pause', mode: 0o755, source: o.bins.paths.pause }]);
    const images: ImageSpec[] = [
      { ref: o.refs.busybox, layers: [base], config: { Env: [PATH_ENV], Cmd: ['sh'] }, comment: 'kubelet-lxc L2: Debian busybox-static, every applet in /bin' },
      { ref: o.refs.agnhost, layers: [base, curl, agnhost], config: { Env: [PATH_ENV], Entrypoint: ['/agnhost'], Cmd: ['pause'] }, comment: 'kubelet-lxc L2: test/images/agnhost over busybox, with Debian curl' },
      { ref: o.refs.nonewprivs, layers: [base, nnp], config: { Env: [PATH_ENV], Cmd: ['nnp'] }, comment: 'kubelet-lxc L2: test/images/nonewprivs (setuid nnp) over busybox' },
      { ref: o.refs.pause, layers: [pause], config: { User: '65535:65535', Entrypoint: ['/pause'] }, comment: 'kubelet-lxc L2: build/pause/linux/pause.c, static' },
    ];
    await writeImageArchive(target, images);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
