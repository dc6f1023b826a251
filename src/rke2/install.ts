// `kubelet-lxc install <bundle>`: runs the installer the bundle ships (install.sh, POSIX sh), the
// one implementation of install and rollback, so what an operator runs by hand on a node and
// what this command does cannot drift. Its lines stream as progress; the report is read from them.
import { run } from '../lib/exec.js';
import type { Logger } from '../lib/progress.js';
import { INSTALL_SCRIPT_PATH } from './bundle.js';
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
  /** The installer's own lines, as it printed them. */
  output: string[];
}

export const RESTART_HINT = 'restart RKE2 on this node to use it: systemctl restart rke2-agent (rke2-server on server nodes)';

const PREFIX = 'kubelet-lxc install: ';

export async function installBundle(opts: InstallOptions): Promise<InstallReport> {
  const args = ['--root', opts.root, ...(opts.rollback ? ['--rollback'] : []), ...(opts.bundle ? [opts.bundle] : [])];
  const lines: string[] = [];
  const r = await run('sh', [INSTALL_SCRIPT_PATH, ...args], {
    reject: false,
    onLine: (l) => {
      lines.push(l);
      if (!l.startsWith(`${PREFIX}error: `)) opts.log.info(l);
    },
  });
  const said = lines.filter((l) => l.startsWith(PREFIX)).map((l) => l.slice(PREFIX.length));
  if (r.exitCode !== 0) {
    const errors = said.filter((l) => l.startsWith('error: ')).map((l) => l.slice('error: '.length));
    throw new InstallError(errors.length ? errors.join('\n') : `install.sh exited ${r.exitCode}: ${r.all.trim().split('\n').slice(-5).join('\n')}`);
  }
  return reportFrom(said, opts.root);
}

/** The report, from what install.sh said (its lines without the prefix). */
export function reportFrom(said: string[], root: string): InstallReport {
  const versions = said.map((l) => /--version: (.*)$/.exec(l)?.[1]).filter((v): v is string => v !== undefined);
  const installed = said.map((l) => /^installed (\/\S+)$/.exec(l)?.[1]).filter((p): p is string => p !== undefined);
  const base = { root, stateDir: ROLLBACK_STATE_DIR, kubeletVersion: versions.at(-1), next: RESTART_HINT, output: said };
  if (said.includes('rolled back')) {
    const undone: NonNullable<InstallReport['undone']> = [];
    for (const l of said) {
      const m = /^(restored|removed) (\/\S+)( \(a symbolic link to .*\))?/.exec(l);
      if (m) undone.push({ path: m[2]!, action: m[1] === 'removed' ? 'removed' : m[3] ? 'relinked' : 'restored' });
    }
    const kubelet = undone.find((u) => u.path.endsWith('/kubelet'));
    return { action: 'rolled-back', ...base, kubeletPath: kubelet?.action === 'removed' ? undefined : kubelet?.path, changed: undone.map((u) => u.path), undone };
  }
  const inPlace = said.map((l) => /^in place: (\/\S+) and (\/\S+)$/.exec(l)).find(Boolean);
  if (inPlace) return { action: 'unchanged', ...base, kubeletPath: inPlace[1], dropinPath: inPlace[2], changed: [] };
  return { action: 'installed', ...base, kubeletPath: installed.find((p) => p.endsWith('/kubelet')), dropinPath: installed.find((p) => p.endsWith('.yaml')), changed: installed };
}
