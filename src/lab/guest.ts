// The lab guest: a Debian trixie root file system with the Proxmox VE 9 container
// stack (lxc 6, lxcfs 6), containerd 2 and runc from Debian testing (RKE2 ships containerd
// 2.x on every supported minor, and Kubernetes 1.37 needs it), Debian's kernel and initrd, and the
// two lab images, built from packages with debootstrap and cached under
// <cacheDir>/guest-<key>/ (key = hash of the package list, the recipe version and the
// files baked into the image). Built in a temporary directory that is renamed into
// place when complete: an interrupted build never leaves a half-made guest where a
// finished one is expected.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, readFile, readdir, readlink, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { writeLabImages } from './images.js';
import { hostDebianMirror } from './mirror.js';
import { labFile } from './paths.js';
import { run } from '../lib/exec.js';
import { exists, pidAlive } from '../lib/fsutil.js';

export const GUEST_SUITE = 'trixie';
export const GUEST_ARCH = 'amd64';
/** Debian packages of the guest (debootstrap --variant=minbase --include=...). */
export const GUEST_PACKAGES: readonly string[] = Object.freeze([
  'linux-image-amd64', // kernel, its modules (fuse, overlay, veth, bridge, 9p) and initrd
  'lxc',
  'lxcfs',
  'busybox-static', // the lab images, wget for /healthz, poweroff
  'kmod',
  'iproute2',
  'procps',
  // L2 (server node): pod networking, the host's path to the apiserver, TLS checks
  'containernetworking-plugins', // bridge, host-local, loopback CNI plug-ins
  'socat', // forwards the guest's user-net port 6443 to the container's apiserver
  'curl', // /readyz checks in the container; with its libraries, the agnhost image's curl
]);
/**
 * containerd 2 and its runc, at exact versions, from Debian testing: trixie's containerd is 1.7.
 * Installed with apt inside the guest root (the suite's Release file checked against the
 * guest's own Debian archive keyring, every .deb against it). When testing moves on and a
 * version is no longer served, the guest build says so: update the versions here.
 */
export const GUEST_TESTING = Object.freeze({ suite: 'forky', packages: Object.freeze({ containerd: '2.1.9+ds1-5', runc: '1.3.6+ds1-1' }) });
/** Bump when the build steps below change what ends up in the image. */
export const GUEST_RECIPE_VERSION = 5;
/** Programs the L2 test images take from the guest's Debian root, with their shared libraries. */
export const IMAGE_FILES_FROM_GUEST: readonly string[] = Object.freeze(['/bin/busybox', '/usr/bin/curl']);
/** Files of lab/ baked into the image (everything else comes over 9p at run time). */
export const GUEST_BAKED_FILES: readonly string[] = Object.freeze(['guest/lab-init']);
/** Free space in the guest disk for the kubelets, containerd and kubelet state. */
const HEADROOM_MB = 2048;

export interface GuestImage {
  key: string;
  dir: string;
  kernel: string;
  initrd: string;
  rootfs: string;
  /** files for the L2 test images, laid out as in the guest's root (IMAGE_FILES_FROM_GUEST and their libraries) */
  imageFiles: string;
  cached: boolean;
  meta: GuestMeta;
}

export interface GuestMeta {
  key: string;
  suite: string;
  arch: string;
  packages: string[];
  versions: Record<string, string>;
  builtAt: string;
  buildSeconds: number;
  kernelRelease: string;
}

export async function guestKey(): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify({ suite: GUEST_SUITE, arch: GUEST_ARCH, packages: GUEST_PACKAGES, testing: GUEST_TESTING, recipe: GUEST_RECIPE_VERSION }));
  for (const f of GUEST_BAKED_FILES) {
    h.update(`\0${f}\0`);
    h.update(await readFile(labFile(f)));
  }
  return h.digest('hex').slice(0, 16);
}

const OWNER_FILE = '.owner';
/** A directory of another PID namespace (another container on the same cache) is only abandoned when this old. */
const FOREIGN_LEFTOVER_MS = 24 * 3600_000;

async function pidNamespace(): Promise<string> {
  return readlink('/proc/self/ns/pid').catch(() => '');
}

/** Records which PID namespace the directory's pid belongs to (see ownerGone). */
export async function claimDir(dir: string): Promise<void> {
  await writeFile(join(dir, OWNER_FILE), `${await pidNamespace()}\n`);
}

/**
 * Whether the process that made dir (named with its pid) is gone. Checked by pid only
 * within the PID namespace that claimed the directory: in another one (two containers
 * sharing a cache) the same pid means nothing, and only the directory's age says so.
 */
export async function ownerGone(dir: string, pid: number): Promise<boolean> {
  const ns = await pidNamespace();
  const owner = (await readFile(join(dir, OWNER_FILE), 'utf8').catch(() => '')).trim();
  if (ns && owner === ns) return !pidAlive(pid);
  const st = await stat(dir).catch(() => undefined);
  return !st || Date.now() - st.mtimeMs > FOREIGN_LEFTOVER_MS;
}

/** Unmounts everything mounted below dir (an interrupted debootstrap leaves /proc, /sys, maybe /dev there). */
export async function unmountUnder(dir: string): Promise<void> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const points = info
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => !!m)
    .map((m) => m.replace(/\\040/g, ' '))
    .filter((m) => m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
  for (const m of points) await run('umount', ['-l', m], { signal: null }).catch(() => undefined);
}

/** Removes a build directory, never following a mount out of it. */
async function removeBuildDir(dir: string): Promise<void> {
  await unmountUnder(dir);
  await rm(dir, { recursive: true, force: true });
}

/** Removes temporary build directories whose builder process is gone. */
async function removeStaleBuilds(cacheDir: string, log: (l: string) => void): Promise<void> {
  for (const name of await readdir(cacheDir).catch(() => [] as string[])) {
    const m = /^\.tmp-guest-[0-9a-f]+-(\d+)-[0-9a-f]+$/.exec(name);
    if (m?.[1] && (await ownerGone(join(cacheDir, name), Number(m[1])))) {
      log(`guest: removing the leftover of an interrupted build: ${name}`);
      await removeBuildDir(join(cacheDir, name));
    }
  }
}

async function loadGuest(dir: string, key: string, cached: boolean): Promise<GuestImage | undefined> {
  try {
    const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as GuestMeta;
    const g = { key, dir, kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.img'), rootfs: join(dir, 'rootfs.img'), imageFiles: join(dir, 'image-files'), cached, meta };
    for (const f of [g.kernel, g.initrd, g.rootfs, g.imageFiles]) if (!(await exists(f))) return undefined;
    return g;
  } catch {
    return undefined;
  }
}

/**
 * Copies programs out of the guest's root with every shared library the dynamic loader says
 * they need (ld.so --list, run in the root), at the paths the loader looks them up at.
 */
async function exportImageFiles(rootfs: string, dest: string, opts: { signal?: AbortSignal }): Promise<void> {
  const wanted = new Set<string>();
  for (const prog of IMAGE_FILES_FROM_GUEST) {
    wanted.add(prog);
    const elf = await readFile(join(rootfs, prog));
    if (elf.subarray(0, 4).toString('latin1') !== '\x7fELF') throw new Error(`${prog} in the guest is not an ELF program`);
    // a static program has no interpreter: nothing to list
    if (!elf.includes(Buffer.from('/lib64/ld-linux-x86-64.so.2'))) continue;
    const listed = await run('chroot', [rootfs, '/lib64/ld-linux-x86-64.so.2', '--list', prog], { signal: opts.signal });
    for (const line of listed.stdout.split('\n')) {
      const m = /=>\s*(\/\S+)|^\s*(\/\S+)\s+\(0x/.exec(line);
      const lib = m?.[1] ?? m?.[2];
      if (lib) wanted.add(lib);
    }
  }
  for (const f of [...wanted].sort()) {
    const target = join(dest, f);
    await mkdir(dirname(target), { recursive: true });
    // the bytes of the file the name resolves to inside the guest root (links followed there, not on the host)
    await copyFile(await resolveIn(rootfs, f), target);
  }
  await writeFile(join(dest, '.files'), [...wanted].sort().join('\n') + '\n');
}

/** The host path of what `p` names inside root, following symbolic links within root. */
async function resolveIn(root: string, p: string, depth = 0): Promise<string> {
  if (depth > 40) throw new Error(`too many links resolving ${p} in ${root}`);
  const parts = p.split('/').filter(Boolean);
  let cur = '/';
  for (let i = 0; i < parts.length; i++) {
    const next = posix.join(cur, parts[i]!);
    const link = await readlink(join(root, next)).catch(() => undefined);
    if (link === undefined) {
      cur = next;
      continue;
    }
    const rest = parts.slice(i + 1).join('/');
    const target = link.startsWith('/') ? link : posix.join(cur, link);
    return resolveIn(root, posix.join(target, rest), depth + 1);
  }
  return join(root, cur);
}

export interface EnsureGuestOptions {
  cacheDir: string;
  log: (line: string) => void;
  signal?: AbortSignal;
  mirror?: string;
  /** time budget of the whole build */
  timeoutMs?: number;
}

/** The cached guest, built first when there is none for the current key. */
export async function ensureGuest(opts: EnsureGuestOptions): Promise<GuestImage> {
  const { cacheDir, log, signal } = opts;
  await mkdir(cacheDir, { recursive: true });
  const key = await guestKey();
  const dir = join(cacheDir, `guest-${key}`);
  const have = await loadGuest(dir, key, true);
  if (have) {
    log(`guest: cached image ${dir}`);
    return have;
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('building the lab guest needs root (debootstrap, mkfs.ext4 -d of a root-owned tree)');
  }
  await removeStaleBuilds(cacheDir, log);
  const started = Date.now();
  const deadline = opts.timeoutMs ? started + opts.timeoutMs : undefined;
  const left = (): number | undefined => (deadline ? Math.max(1000, deadline - Date.now()) : undefined);
  const tmp = join(cacheDir, `.tmp-guest-${key}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const rootfs = join(tmp, 'rootfs');
  await mkdir(tmp, { recursive: true });
  await claimDir(tmp);
  try {
    const mirror = opts.mirror ?? (await hostDebianMirror());
    const debs = join(cacheDir, 'debs');
    await mkdir(debs, { recursive: true });
    log(`guest: debootstrap ${GUEST_SUITE} (${GUEST_PACKAGES.join(', ')}) from the host's mirror`);
    let lastProgress = 0;
    await run(
      'debootstrap',
      [
        '--variant=minbase',
        `--arch=${GUEST_ARCH}`,
        `--include=${GUEST_PACKAGES.join(',')}`,
        `--cache-dir=${debs}`,
        GUEST_SUITE,
        rootfs,
        mirror,
      ],
      {
        signal,
        timeoutMs: left(),
        wholeTree: true,
        onLine: (l) => {
          // debootstrap is chatty: pass on its phase changes, at most every 10 s
          if (/^I: (Retrieving|Validating|Extracting|Installing|Configuring|Unpacking|Base system)/.test(l) && Date.now() - lastProgress > 10_000) {
            lastProgress = Date.now();
            log(`guest: ${l.slice(3)}`);
          }
        },
      },
    );
    log(`guest: debootstrap done in ${Math.round((Date.now() - started) / 1000)} s`);
    await installFromTesting(rootfs, mirror, { signal, timeoutMs: left(), log });

    const boot = await readdir(join(rootfs, 'boot'));
    const vmlinuz = boot.find((f) => f.startsWith('vmlinuz-'));
    const initrd = boot.find((f) => f.startsWith('initrd.img-'));
    if (!vmlinuz || !initrd) throw new Error(`the guest has no kernel or initrd in /boot (found: ${boot.join(', ')})`);
    await copyFile(join(rootfs, 'boot', vmlinuz), join(tmp, 'vmlinuz'));
    await copyFile(join(rootfs, 'boot', initrd), join(tmp, 'initrd.img'));

    for (const f of GUEST_BAKED_FILES) {
      if (f === 'guest/lab-init') {
        await copyFile(labFile(f), join(rootfs, 'sbin', 'lab-init'));
        await chmod(join(rootfs, 'sbin', 'lab-init'), 0o755);
      }
    }
    await mkdir(join(rootfs, 'opt', 'lab', 'images'), { recursive: true });
    await writeLabImages(join(rootfs, 'opt', 'lab', 'images', 'lab-images.tar'), await resolveIn(rootfs, '/bin/busybox'));
    log('guest: lab images built from busybox-static (lab.local/busybox:1, lab.local/pause:1)');
    await exportImageFiles(rootfs, join(tmp, 'image-files'), { signal });
    log(`guest: ${IMAGE_FILES_FROM_GUEST.join(', ')} and their libraries kept for the L2 test images`);

    const versions: Record<string, string> = {};
    const q = await run('dpkg-query', [`--admindir=${join(rootfs, 'var', 'lib', 'dpkg')}`, '-W', '-f', '${Package} ${Version}\n', ...GUEST_PACKAGES, ...Object.keys(GUEST_TESTING.packages)], { signal });
    for (const line of q.stdout.split('\n')) {
      const [p, v] = line.trim().split(/\s+/);
      if (p && v) versions[p] = v;
    }
    const du = await run('du', ['-s', '--block-size=1M', rootfs], { signal });
    const usedMb = Number(du.stdout.split(/\s+/)[0]);
    const sizeMb = Math.ceil((usedMb * 1.1 + HEADROOM_MB) / 256) * 256;
    log(`guest: mkfs.ext4 -d (${usedMb} MB used, ${sizeMb} MB disk)`);
    await run('mkfs.ext4', ['-q', '-F', '-L', 'labroot', '-d', rootfs, join(tmp, 'rootfs.img'), `${sizeMb}M`], { signal, timeoutMs: left(), wholeTree: true });
    await removeBuildDir(rootfs);

    const meta: GuestMeta = {
      key,
      suite: GUEST_SUITE,
      arch: GUEST_ARCH,
      packages: [...GUEST_PACKAGES, ...Object.keys(GUEST_TESTING.packages)],
      versions,
      builtAt: new Date().toISOString(),
      buildSeconds: Math.round((Date.now() - started) / 100) / 10,
      kernelRelease: vmlinuz.replace(/^vmlinuz-/, ''),
    };
    await writeFile(join(tmp, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
    try {
      await rename(tmp, dir);
    } catch (e) {
      // another lab finished the same key first: use its guest
      const code = (e as NodeJS.ErrnoException).code;
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await loadGuest(dir, key, true))) {
        await rm(tmp, { recursive: true, force: true });
      } else {
        throw e;
      }
    }
    log(`guest: built in ${meta.buildSeconds} s: ${dir}`);
    const g = await loadGuest(dir, key, false);
    if (!g) throw new Error(`guest image at ${dir} is incomplete after the build`);
    return g;
  } catch (e) {
    await removeBuildDir(tmp);
    throw e;
  }
}

/**
 * GUEST_TESTING's packages into the debootstrapped root, with the root's own apt: a testing
 * source pinned below trixie (only what is asked for comes from it), services kept from
 * starting (policy-rc.d), and every trace of the source removed afterwards.
 */
async function installFromTesting(rootfs: string, mirror: string, o: { signal?: AbortSignal; timeoutMs?: number; log: (line: string) => void }): Promise<void> {
  const { suite, packages } = GUEST_TESTING;
  const list = join(rootfs, 'etc', 'apt', 'sources.list.d', `lab-${suite}.list`);
  const pref = join(rootfs, 'etc', 'apt', 'preferences.d', `lab-${suite}`);
  const policy = join(rootfs, 'usr', 'sbin', 'policy-rc.d');
  const resolv = join(rootfs, 'etc', 'resolv.conf');
  const hadResolv = await exists(resolv);
  await writeFile(list, `deb ${mirror} ${suite} main\n`);
  await writeFile(pref, `Package: *\nPin: release n=${suite}\nPin-Priority: 100\n`);
  await writeFile(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  if (!hadResolv) await copyFile('/etc/resolv.conf', resolv).catch(() => undefined);
  const wanted = Object.entries(packages).map(([p, v]) => `${p}=${v}`);
  o.log(`guest: apt-get install ${wanted.join(' ')} from Debian ${suite}`);
  try {
    // Check-Valid-Until off: a mirror that is a snapshot serves a testing Release file past its
    // Valid-Until date (debootstrap does not check it either); its signature is still checked,
    // and the versions are pinned exactly.
    const apt = (args: string[]) => run('chroot', [rootfs, 'apt-get', '-q', '-o', 'Acquire::Languages=none', '-o', 'Acquire::Check-Valid-Until=false', ...args], { signal: o.signal, timeoutMs: o.timeoutMs, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, reject: false });
    const update = await apt(['update']);
    if (update.exitCode !== 0) throw new Error(`apt-get update in the guest root failed (Debian ${suite} from the host's mirror):\n${update.all.trim().split('\n').slice(-10).join('\n')}`);
    const install = await apt(['install', '-y', '--no-install-recommends', ...wanted]);
    if (install.exitCode !== 0) {
      const gone = /Version '[^']+' for '[^']+' was not found|Unable to locate package/.test(install.all);
      throw new Error(
        `installing ${wanted.join(' ')} from Debian ${suite} into the guest failed${gone ? `: that version is no longer in ${suite}; update GUEST_TESTING in src/lab/guest.ts to the version ${suite} serves now` : ''}:\n${install.all.trim().split('\n').slice(-10).join('\n')}`,
      );
    }
    await apt(['clean']);
  } finally {
    await rm(list, { force: true });
    await rm(pref, { force: true });
    await rm(policy, { force: true });
    if (!hadResolv) await rm(resolv, { force: true });
    await rm(join(rootfs, 'var', 'lib', 'apt', 'lists'), { recursive: true, force: true });
    await mkdir(join(rootfs, 'var', 'lib', 'apt', 'lists', 'partial'), { recursive: true });
  }
}
