// Git through argument arrays, with a fixed identity and dates so that commits we make
// (the goproxy tree, applied patches) get the same SHA on every machine.
import { run, type RunResult } from './exec.js';

export const GIT_IDENTITY = { name: 'kubelet-lxc', email: 'kubelet-lxc@users.noreply.github.com' };

export function gitEnv(dateIso?: string): Record<string, string> {
  const env: Record<string, string> = {
    GIT_AUTHOR_NAME: GIT_IDENTITY.name,
    GIT_AUTHOR_EMAIL: GIT_IDENTITY.email,
    GIT_COMMITTER_NAME: GIT_IDENTITY.name,
    GIT_COMMITTER_EMAIL: GIT_IDENTITY.email,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    LC_ALL: 'C',
  };
  if (dateIso) {
    env.GIT_AUTHOR_DATE = dateIso;
    env.GIT_COMMITTER_DATE = dateIso;
  }
  return env;
}

export function git(cwd: string, args: string[], opts: { env?: Record<string, string>; reject?: boolean; signal?: AbortSignal; onLine?: (l: string) => void } = {}): Promise<RunResult> {
  return run('git', ['-c', 'core.autocrlf=false', '-c', 'advice.detachedHead=false', ...args], {
    cwd,
    env: { ...process.env, ...gitEnv(), ...opts.env },
    reject: opts.reject,
    signal: opts.signal,
    onLine: opts.onLine,
  });
}

export async function headCommit(cwd: string): Promise<string> {
  return (await git(cwd, ['rev-parse', 'HEAD'])).stdout.trim();
}

export async function isClean(cwd: string): Promise<boolean> {
  return (await git(cwd, ['status', '--porcelain', '--untracked-files=all'])).stdout.trim() === '';
}
