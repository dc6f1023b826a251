// `kubelet-lxc install <bundle>`: the Node twin of the bundle's install.sh. Same checks, same files,
// same rollback state (so either one can roll back what the other installed):
// checksum beside the bundle -> refuse absolute, `..` and link entries -> SHA256SUMS inside ->
// `kubelet --version` of the new kubelet -> back up what is replaced -> atomic installs (kubelet,
// then the drop-in whose rename is the switch) -> `kubelet --version` in place -> restart hint.
import { chmod, copyFile, lstat, mkdir, mkdtemp, open, readFile, readlink, realpath, rename, rm, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileHash, exists } from '../lib/fsutil.js';
import { binaryVersion } from '../lib/exec.js';
import type { Logger } from '../lib/progress.js';
import { extractTar, listTar, unsafeMembers } from '../lib/tarball.js';
import { acquireLock, LockBusyError } from '../lib/lock.js';
import { DROPIN_INSTALL_PATH, INSTALL_LOCK_PATH, KUBELET_INSTALL_ROOT, ROLLBACK_STATE_DIR } from './names.js';

/** Where INSTALL may put things: the kubelet below the kubelet-lxc folder, the drop-in in RKE2's config.yaml.d/. */
const DROPIN_DIR = path.posix.dirname(DROPIN_INSTALL_PATH);

export class InstallError extends Error {}

export interface InstallOptions {
  /** The bundle tar.gz (its .sha256 must be beside it); not needed with rollback. */
  bundle?: string;
  /** '/' on a node; a temp dir in tests. */
  root: string;
  rollback?: boolean;
  log: Logger;
}

export interface InstallReport {
  action: 'installed' | 'unchanged' | 'rolled-back';
  root: string;
  version?: string;
  /** Node paths (without the root). */
  kubeletPath?: string;
  dropinPath?: string;
  /** Node path of the rollback state. */
  stateDir: string;
  /** What `kubelet --version` printed for the kubelet now in place. */
  kubeletVersion?: string;
  /** Node paths written or removed. */
  changed: string[];
  /** What a rollback did to each path. */
  undone?: { path: string; action: 'restored' | 'removed' | 'relinked' }[];
  /** The step the operator still has to do. */
  next: string;
}

export const RESTART_HINT = 'restart RKE2 on this node to use it: systemctl restart rke2-agent (rke2-server on server nodes)';

const SAFE_ABS = /^\/[A-Za-z0-9._+/-]*$/;
function safeAbsPath(p: string | undefined): p is string {
  return p !== undefined && SAFE_ABS.test(p) && !p.split('/').some((c) => c === '..' || c === '.') && !p.includes('//');
}

function parseInstallFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)=(.*)$/.exec(line);
    if (m && !(m[1]! in out)) out[m[1]!] = m[2]!;
  }
  return out;
}

async function atomicCopy(src: string, dest: string, mode: number): Promise<void> {
  await mkdir(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.kubelet-lxc-tmp.${process.pid}`;
  try {
    await copyFile(src, tmp);
    await chmod(tmp, mode);
    await rename(tmp, dest);
  } finally {
    await rm(tmp, { force: true });
  }
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  if (!(await exists(a)) || !(await exists(b))) return false;
  // b is the installed file: a symlink there is not our file, whatever it points at
  const [sa, sb] = await Promise.all([stat(a), lstat(b)]);
  if (!sa.isFile() || !sb.isFile() || sa.size !== sb.size) return false;
  return (await fileHash(a)) === (await fileHash(b));
}

/** Folders (node paths) from dir upwards that do not exist yet below root, deepest first. */
async function missingDirs(root: string, dir: string): Promise<string[]> {
  const out: string[] = [];
  for (let d = dir; d !== '/' && d !== '.' && d !== ''; d = path.posix.dirname(d)) {
    if (await exists(path.join(root, d))) break;
    out.push(d);
  }
  return out;
}

function nodeRoot(root: string): string {
  return path.resolve(root);
}

/**
 * Refuse a node folder whose deepest existing part resolves outside the root (a symlink inside
 * --root pointing out of it): nothing is written through it.
 */
async function assertInsideRoot(root: string, nodeDir: string): Promise<void> {
  const realRoot = await realpath(root);
  let d = nodeDir;
  while (d !== '/' && !(await lstat(path.join(root, d)).catch(() => undefined))) d = path.posix.dirname(d);
  const real = await realpath(path.join(root, d)).catch(() => undefined);
  if (real === undefined || (real !== realRoot && !real.startsWith(`${realRoot}/`))) {
    throw new InstallError(`${nodeDir} leads out of --root ${root} through a symbolic link (${d} -> ${real ?? 'a dangling link'}): refusing to write there`);
  }
}

export async function installBundle(opts: InstallOptions): Promise<InstallReport> {
  const root = nodeRoot(opts.root);
  const st = await stat(root).catch(() => undefined);
  if (!st?.isDirectory()) throw new InstallError(`--root ${opts.root} is not a directory`);
  if (!opts.rollback && !opts.bundle) throw new InstallError('no bundle given');
  // One install or rollback at a time per root, with the lock install.sh takes too.
  await assertInsideRoot(root, path.posix.dirname(INSTALL_LOCK_PATH));
  const lockCreated = await missingDirs(root, path.posix.dirname(INSTALL_LOCK_PATH));
  let lock;
  try {
    lock = await acquireLock(path.join(root, INSTALL_LOCK_PATH), {
      what: `--root ${root}`,
      hint: 'another install or rollback runs there: wait for it to finish',
      command: ['kubelet-lxc install', ...(opts.rollback ? ['--rollback'] : [opts.bundle!])].join(' '),
      warn: (t) => opts.log.warn(t),
    });
  } catch (err) {
    if (err instanceof LockBusyError) throw new InstallError(err.message);
    throw err;
  }
  // folders to remove (if empty) once the lock file is gone
  const emptyDirs = [...lockCreated];
  try {
    if (opts.rollback) return await rollback(root, opts.log, emptyDirs);
    return await install(opts.bundle!, root, opts.log, lockCreated);
  } finally {
    await lock.release();
    emptyDirs.sort((a, b) => b.split('/').length - a.split('/').length);
    for (const d of emptyDirs) await rmdir(path.join(root, d)).catch(() => undefined);
  }
}

/** The first bytes of a gzip file. */
async function isGzip(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(2);
    const { bytesRead } = await fh.read(b, 0, 2, 0);
    return bytesRead === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

async function install(bundle: string, root: string, log: Logger, lockCreated: string[]): Promise<InstallReport> {
  const at = (p: string) => path.join(root, p);
  const bst = await stat(bundle).catch(() => undefined);
  if (bst?.isDirectory()) throw new InstallError(`${bundle} is a folder, not a bundle file: give the kubelet-lxc-<version>-linux-<arch>.tar.gz`);
  if (!bst?.isFile()) throw new InstallError(`bundle ${bundle} does not exist`);
  const sumFile = `${bundle}.sha256`;
  const sumText = await readFile(sumFile, 'utf8').catch(() => {
    throw new InstallError(`checksum file ${sumFile} is missing: download it beside the bundle`);
  });
  const expected = /^([0-9a-f]{64})(\s|$)/.exec(sumText)?.[1];
  if (!expected) throw new InstallError(`${sumFile} does not start with a sha256 hex digest`);
  const actual = await fileHash(bundle);
  if (actual !== expected) throw new InstallError(`checksum mismatch for ${bundle}: expected ${expected}, got ${actual} (damaged or tampered with: download it again)`);
  log.info(`checksum ok: ${actual}`);
  if (!(await isGzip(bundle))) throw new InstallError(`${bundle} is not a gzip file (a bundle is the kubelet-lxc-<version>-linux-<arch>.tar.gz of a release): refusing it`);

  // Refuse absolute, parent-directory, link and special entries before anything is extracted.
  const members = await listTar(bundle).catch((err: Error) => {
    throw new InstallError(`cannot list ${bundle} (not a tar.gz?): ${err.message}`);
  });
  const bad = unsafeMembers(members);
  if (bad.length) throw new InstallError(`refusing ${bundle}: unsafe entries ${bad.join(', ')}`);
  const special = members.filter((m) => m.type !== 'File' && m.type !== 'OldFile' && m.type !== 'Directory');
  if (special.length) throw new InstallError(`refusing ${bundle}: entries that are not files or folders: ${special.map((m) => `${m.path} (${m.type})`).join(', ')}`);
  if (members.length === 0) throw new InstallError(`refusing ${bundle}: it is empty`);
  const top = members[0]!.path.split('/')[0]!;
  const outside = members.filter((m) => m.path.split('/')[0] !== top);
  if (outside.length) throw new InstallError(`refusing ${bundle}: entry ${outside[0]!.path} is outside its single top folder ${top}`);

  const staging = await mkdtemp(path.join(os.tmpdir(), 'kubelet-lxc-install-'));
  try {
    await extractTar(bundle, staging);
    const src = path.join(staging, top);
    const installText = await readFile(path.join(src, 'INSTALL'), 'utf8').catch(() => {
      throw new InstallError(`refusing ${bundle}: no ${top}/INSTALL (not a kubelet-lxc bundle)`);
    });
    const info = parseInstallFile(installText);
    if (info.format !== '1') throw new InstallError(`${bundle}: unknown bundle format ${info.format ?? '(none)'} (newer installer needed)`);
    const version = info.version ?? '';
    if (!/^[A-Za-z0-9._+-]+$/.test(version)) throw new InstallError(`${bundle}: bad version '${version}' in INSTALL`);
    const kubeletPath = info.kubelet_path;
    const dropinPath = info.dropin_path;
    const dropinFile = info.dropin_file ?? '';
    if (!safeAbsPath(kubeletPath)) throw new InstallError(`${bundle}: bad kubelet_path '${kubeletPath}' in INSTALL`);
    if (!safeAbsPath(dropinPath)) throw new InstallError(`${bundle}: bad dropin_path '${dropinPath}' in INSTALL`);
    if (!kubeletPath.startsWith(`${KUBELET_INSTALL_ROOT}/`)) {
      throw new InstallError(`${bundle}: kubelet_path '${kubeletPath}' in INSTALL is not under ${KUBELET_INSTALL_ROOT}/ (where kubelet-lxc installs): refusing it`);
    }
    if (path.posix.dirname(dropinPath) !== DROPIN_DIR || !dropinPath.endsWith('.yaml')) {
      throw new InstallError(`${bundle}: dropin_path '${dropinPath}' in INSTALL is not a .yaml file in ${DROPIN_DIR}/ (where RKE2 reads drop-ins): refusing it`);
    }
    if (!/^[A-Za-z0-9._-]+$/.test(dropinFile)) throw new InstallError(`${bundle}: bad dropin_file '${dropinFile}' in INSTALL`);

    const sums = await readFile(path.join(src, 'SHA256SUMS'), 'utf8').catch(() => {
      throw new InstallError(`${bundle}: no SHA256SUMS inside`);
    });
    const listed = new Map<string, string>();
    for (const line of sums.split('\n')) {
      const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
      if (m) listed.set(m[2]!, m[1]!);
    }
    // The same files install.sh checks: what BUNDLE_FILES ships, with the drop-in named by INSTALL.
    for (const f of new Set<string>(['kubelet', dropinFile, 'INSTALL', 'README.md', 'install.sh'])) {
      const want = listed.get(f);
      if (!want) throw new InstallError(`${bundle}: ${f} is not listed in SHA256SUMS`);
      if (!(await exists(path.join(src, f)))) throw new InstallError(`${bundle}: ${f} is listed in SHA256SUMS but missing`);
      const got = await fileHash(path.join(src, f));
      if (got !== want) throw new InstallError(`${bundle}: ${f} does not match SHA256SUMS (expected ${want}, got ${got})`);
    }
    log.info(`contents ok: kubelet ${version}`);

    const newKubelet = path.join(src, 'kubelet');
    await chmod(newKubelet, 0o755);
    const pre = await binaryVersion(newKubelet);
    if (!pre.ok || pre.out !== `Kubernetes ${version}`) {
      throw new InstallError(`refusing ${bundle}: its kubelet --version gave '${pre.out}', expected 'Kubernetes ${version}' (wrong architecture?)`);
    }

    const K = at(kubeletPath);
    const D = at(dropinPath);
    const newDropin = path.join(src, dropinFile);
    const stateDir = at(ROLLBACK_STATE_DIR);
    if ((await sameBytes(newKubelet, K)) && (await sameBytes(newDropin, D))) {
      log.info(`kubelet-lxc ${version} is already installed; nothing changed`);
      return { action: 'unchanged', root, version, kubeletPath, dropinPath, stateDir: ROLLBACK_STATE_DIR, kubeletVersion: pre.out, changed: [], next: RESTART_HINT };
    }

    for (const d of [kubeletPath, dropinPath, ROLLBACK_STATE_DIR].map((p) => path.posix.dirname(p))) await assertInsideRoot(root, d);
    // Record what is replaced, in a new state folder swapped in whole.
    const created = [
      ...lockCreated,
      ...(await missingDirs(root, path.posix.dirname(kubeletPath))),
      ...(await missingDirs(root, path.posix.dirname(dropinPath))),
      ...(await missingDirs(root, path.posix.dirname(ROLLBACK_STATE_DIR))),
    ];
    const newState = `${stateDir}.new.${process.pid}`;
    await rm(newState, { recursive: true, force: true });
    await mkdir(path.join(newState, 'files'), { recursive: true });
    const lines: string[] = [];
    for (const [key, p] of [
      ['dropin', dropinPath],
      ['kubelet', kubeletPath],
    ] as const) {
      const s = await lstat(at(p)).catch(() => undefined);
      if (s?.isSymbolicLink()) {
        // the link itself is what was there: its target goes in the backup, restored as a link
        await writeFile(path.join(newState, 'files', key), await readlink(at(p)));
        lines.push(`${key} link ${p}`);
      } else if (s) {
        if (!s.isFile()) throw new InstallError(`${p} exists and is not a regular file: refusing to replace it`);
        await copyFile(at(p), path.join(newState, 'files', key));
        await chmod(path.join(newState, 'files', key), s.mode & 0o7777);
        lines.push(`${key} present ${p}`);
      } else {
        lines.push(`${key} absent ${p}`);
      }
    }
    for (const d of created) lines.push(`dir dir ${d}`);
    await writeFile(path.join(newState, 'entries'), `${lines.join('\n')}\n`);
    await mkdir(path.dirname(stateDir), { recursive: true });
    const old = `${stateDir}.old.${process.pid}`;
    await rm(old, { recursive: true, force: true });
    if (await exists(stateDir)) await rename(stateDir, old);
    await rename(newState, stateDir);
    await rm(old, { recursive: true, force: true });
    log.info(`backup of what is replaced: ${ROLLBACK_STATE_DIR}`);

    // The kubelet first (a new path nothing points at yet), then the drop-in: its rename is the switch.
    await atomicCopy(newKubelet, K, 0o755);
    await atomicCopy(newDropin, D, 0o644);
    log.info(`installed ${kubeletPath}`);
    log.info(`installed ${dropinPath}`);
    const post = await binaryVersion(K);
    if (!post.ok || post.out !== `Kubernetes ${version}`) {
      log.warn(`the installed kubelet does not run ('${post.out}'): rolling back`);
      await rollback(root, log, []);
      throw new InstallError(`install of ${bundle} failed and was rolled back: ${kubeletPath} --version gave '${post.out}'`);
    }
    log.info(`${kubeletPath} --version: ${post.out}`);
    log.info(`next: ${RESTART_HINT}`);
    log.info(`to undo: kubelet-lxc install --rollback${root === '/' ? '' : ` --root ${root}`}`);
    return { action: 'installed', root, version, kubeletPath, dropinPath, stateDir: ROLLBACK_STATE_DIR, kubeletVersion: post.out, changed: [kubeletPath, dropinPath], next: RESTART_HINT };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Undo the last install; the folders it had created are added to emptyDirs (removed by the caller once unlocked). */
async function rollback(root: string, log: Logger, emptyDirs: string[]): Promise<InstallReport> {
  const at = (p: string) => path.join(root, p);
  const stateDir = at(ROLLBACK_STATE_DIR);
  const entriesFile = path.join(stateDir, 'entries');
  const text = await readFile(entriesFile, 'utf8').catch(() => {
    throw new InstallError(`nothing to roll back: ${ROLLBACK_STATE_DIR}/entries does not exist (no install recorded)`);
  });
  const changed: string[] = [];
  const undone: NonNullable<InstallReport['undone']> = [];
  const createdDirs: string[] = [];
  let kubeletWas: string | undefined;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [key, how, p, ...rest] = line.split(' ');
    if (!key || !how || rest.length || !safeAbsPath(p)) throw new InstallError(`bad line in ${entriesFile}: ${line}`);
    if (how !== 'dir') await assertInsideRoot(root, path.posix.dirname(p));
    if (how === 'link') {
      const backup = path.join(stateDir, 'files', key);
      const target = await readFile(backup, 'utf8').catch(() => {
        throw new InstallError(`backup ${backup} is missing`);
      });
      const tmp = `${at(p)}.kubelet-lxc-tmp.${process.pid}`;
      await rm(tmp, { force: true });
      await symlink(target, tmp);
      await rename(tmp, at(p));
      log.info(`restored ${p} (a symbolic link to ${target})`);
      changed.push(p);
      undone.push({ path: p, action: 'relinked' });
    } else if (how === 'present') {
      const backup = path.join(stateDir, 'files', key);
      if (!(await exists(backup))) throw new InstallError(`backup ${backup} is missing`);
      await atomicCopy(backup, at(p), (await stat(backup)).mode & 0o7777);
      if (key === 'kubelet') kubeletWas = p;
      log.info(`restored ${p}`);
      changed.push(p);
      undone.push({ path: p, action: 'restored' });
    } else if (how === 'absent') {
      await rm(at(p), { force: true });
      log.info(`removed ${p} (it did not exist before the install)`);
      changed.push(p);
      undone.push({ path: p, action: 'removed' });
    } else if (how === 'dir') {
      createdDirs.push(p);
    } else {
      throw new InstallError(`bad line in ${entriesFile}: ${line}`);
    }
  }
  await rm(stateDir, { recursive: true, force: true });
  // Remove the folders the install created (if empty), deepest first.
  createdDirs.sort((a, b) => b.split('/').length - a.split('/').length);
  for (const d of createdDirs) await rmdir(at(d)).catch(() => undefined);
  // the lock's folder among them goes once the lock is released
  emptyDirs.push(...createdDirs);
  let version: string | undefined;
  if (kubeletWas) {
    const v = await binaryVersion(at(kubeletWas));
    if (v.ok) version = v.out;
    else log.warn(`the restored kubelet ${kubeletWas} does not run: ${v.out}`);
  }
  log.info('rolled back');
  log.info(`next: ${RESTART_HINT}`);
  return { action: 'rolled-back', root, stateDir: ROLLBACK_STATE_DIR, kubeletPath: kubeletWas, kubeletVersion: version, changed, undone, next: RESTART_HINT };
}
