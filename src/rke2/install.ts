// `kubelet-lxc install <bundle>`: the Node twin of the bundle's install.sh. Same checks, same files,
// same rollback state (so either one can roll back what the other installed):
// checksum beside the bundle -> refuse absolute, `..` and link entries -> SHA256SUMS inside ->
// `kubelet --version` of the new kubelet -> back up what is replaced -> atomic installs (kubelet,
// then the drop-in whose rename is the switch) -> `kubelet --version` in place -> restart hint.
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileHash, exists } from '../lib/fsutil.js';
import { run } from '../lib/exec.js';
import type { Logger } from '../lib/progress.js';
import { extractTar, listTar, unsafeMembers } from '../lib/tarball.js';
import { ROLLBACK_STATE_DIR } from './names.js';

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

async function kubeletVersion(binary: string): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await run(binary, ['--version'], { reject: false, timeoutMs: 60_000 });
    return { ok: r.exitCode === 0, out: r.all.trim() };
  } catch (err) {
    return { ok: false, out: (err as Error).message };
  }
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  if (!(await exists(a)) || !(await exists(b))) return false;
  const [sa, sb] = await Promise.all([stat(a), stat(b)]);
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

export async function installBundle(opts: InstallOptions): Promise<InstallReport> {
  const root = nodeRoot(opts.root);
  const st = await stat(root).catch(() => undefined);
  if (!st?.isDirectory()) throw new InstallError(`--root ${opts.root} is not a directory`);
  if (opts.rollback) return rollback(root, opts.log);
  if (!opts.bundle) throw new InstallError('no bundle given');
  return install(opts.bundle, root, opts.log);
}

async function install(bundle: string, root: string, log: Logger): Promise<InstallReport> {
  const at = (p: string) => path.join(root, p);
  if (!(await stat(bundle).catch(() => undefined))?.isFile()) throw new InstallError(`bundle ${bundle} does not exist`);
  const sumFile = `${bundle}.sha256`;
  const sumText = await readFile(sumFile, 'utf8').catch(() => {
    throw new InstallError(`checksum file ${sumFile} is missing: download it beside the bundle`);
  });
  const expected = /^([0-9a-f]{64})(\s|$)/.exec(sumText)?.[1];
  if (!expected) throw new InstallError(`${sumFile} does not start with a sha256 hex digest`);
  const actual = await fileHash(bundle);
  if (actual !== expected) throw new InstallError(`checksum mismatch for ${bundle}: expected ${expected}, got ${actual} (damaged or tampered with: download it again)`);
  log.info(`checksum ok: ${actual}`);

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
    const pre = await kubeletVersion(newKubelet);
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

    // Record what is replaced, in a new state folder swapped in whole.
    const created = [
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
      const s = await stat(at(p)).catch(() => undefined);
      if (s) {
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
    const post = await kubeletVersion(K);
    if (!post.ok || post.out !== `Kubernetes ${version}`) {
      log.warn(`the installed kubelet does not run ('${post.out}'): rolling back`);
      await rollback(root, log);
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

async function rollback(root: string, log: Logger): Promise<InstallReport> {
  const at = (p: string) => path.join(root, p);
  const stateDir = at(ROLLBACK_STATE_DIR);
  const entriesFile = path.join(stateDir, 'entries');
  const text = await readFile(entriesFile, 'utf8').catch(() => {
    throw new InstallError(`nothing to roll back: ${ROLLBACK_STATE_DIR}/entries does not exist (no install recorded)`);
  });
  const changed: string[] = [];
  const createdDirs: string[] = [];
  let kubeletWas: string | undefined;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [key, how, p, ...rest] = line.split(' ');
    if (!key || !how || rest.length || !safeAbsPath(p)) throw new InstallError(`bad line in ${entriesFile}: ${line}`);
    if (how === 'present') {
      const backup = path.join(stateDir, 'files', key);
      if (!(await exists(backup))) throw new InstallError(`backup ${backup} is missing`);
      await atomicCopy(backup, at(p), (await stat(backup)).mode & 0o7777);
      if (key === 'kubelet') kubeletWas = p;
      log.info(`restored ${p}`);
      changed.push(p);
    } else if (how === 'absent') {
      await rm(at(p), { force: true });
      log.info(`removed ${p} (it did not exist before the install)`);
      changed.push(p);
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
  let version: string | undefined;
  if (kubeletWas) {
    const v = await kubeletVersion(at(kubeletWas));
    if (v.ok) version = v.out;
    else log.warn(`the restored kubelet ${kubeletWas} does not run: ${v.out}`);
  }
  log.info('rolled back');
  log.info(`next: ${RESTART_HINT}`);
  return { action: 'rolled-back', root, stateDir: ROLLBACK_STATE_DIR, kubeletPath: kubeletWas, kubeletVersion: version, changed, next: RESTART_HINT };
}
