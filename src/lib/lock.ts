// One run at a time per work directory, one install at a time per root: a lock file created with
// O_EXCL holding key=value lines (pid, host, since, command). A plain file rather than a library
// (proper-lockfile uses mkdir plus mtime refreshes) because the bundle's POSIX install.sh must
// take and read the very same lock, with `set -C` (O_EXCL) and kill -0.
import { open, readFile, rm, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pidAlive } from './fsutil.js';

export interface LockOwner {
  pid: number;
  host: string;
  since: string;
  command: string;
}

export interface HeldLock {
  file: string;
  release(): Promise<void>;
}

/** Thrown when another live process holds the lock; the message says who. */
export class LockBusyError extends Error {
  constructor(
    message: string,
    readonly owner: LockOwner,
  ) {
    super(message);
    this.name = 'LockBusyError';
  }
}

export function parseLockText(text: string): LockOwner | undefined {
  const v: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z]+)=(.*)$/.exec(line);
    if (m) v[m[1]!] = m[2]!;
  }
  const pid = Number(v.pid);
  if (!Number.isInteger(pid) || pid < 1 || !v.host) return undefined;
  return { pid, host: v.host, since: v.since ?? '?', command: v.command ?? '?' };
}

function describeOwner(o: LockOwner): string {
  return `pid ${o.pid} on ${o.host} since ${o.since} (${o.command})`;
}

/**
 * Take the lock at `file` for `command`. `what` names the thing locked in the busy message
 * ("work directory /w"), `hint` says what to do then. A lock of a process that is gone (same
 * host, no such pid) is removed, with a note through `warn`; an unreadable lock counts as held.
 */
export async function acquireLock(file: string, o: { what: string; hint: string; command: string; warn: (text: string) => void }): Promise<HeldLock> {
  await mkdir(path.dirname(file), { recursive: true });
  const me: LockOwner = { pid: process.pid, host: os.hostname(), since: new Date().toISOString(), command: o.command.replace(/\n/g, ' ') };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(file, 'wx', 0o644);
      try {
        await fh.writeFile(`pid=${me.pid}\nhost=${me.host}\nsince=${me.since}\ncommand=${me.command}\n`);
      } finally {
        await fh.close();
      }
      return {
        file,
        release: async () => {
          // only our own lock: a stale-lock takeover by another run must not be undone
          const owner = parseLockText(await readFile(file, 'utf8').catch(() => ''));
          if (owner?.pid === me.pid && owner.host === me.host) await rm(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue; // released meanwhile: try again
    const owner = parseLockText(text);
    if (!owner) {
      throw new LockBusyError(`${o.what} is locked by ${file}, which cannot be read as a lock: if no other kubelet-lxc runs, remove it`, { pid: 0, host: '?', since: '?', command: '?' });
    }
    if (owner.host === me.host && !pidAlive(owner.pid)) {
      o.warn(`removing a stale lock of pid ${owner.pid} on ${owner.host} (the process is gone): ${file}`);
      await rm(file, { force: true });
      continue;
    }
    throw new LockBusyError(`${o.what} is in use by ${describeOwner(owner)}: ${o.hint}`, owner);
  }
  throw new Error(`cannot take the lock ${file}: it keeps changing hands`);
}
