// Booting the lab guest with qemu. The qemu process is started through
// `setpriv --pdeathsig KILL`, so it dies with the lab process however that ends
// (Ctrl-C, kill -9, a crash); an abort or a budget overrun kills it explicitly
// (SIGTERM, then SIGKILL) and waits until it is gone.
import { createWriteStream } from 'node:fs';
import { access, constants } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { spawnChild, type ChildProcess } from '../lib/exec.js';
import type { GuestImage } from './guest.js';

export type Accel = 'kvm' | 'tcg';
export const QEMU = 'qemu-system-x86_64';

export interface QemuConfig {
  kernel: string;
  initrd: string;
  rootfs: string;
  /** read-only ext4 image with kubelet-stock and kubelet-patched (the guest's /dev/vdb) */
  kubeletDisk: string;
  shareDir: string;
  accel: Accel;
  memoryMiB: number;
  cpus: number;
  /** L2: qemu's user network (restricted: the guest reaches nothing) with a port of the host's loopback forwarded to the guest */
  hostForward?: { hostPort: number; guestPort: number };
}

/** qemu's arguments: no display, serial console on stdout, the guest disk copy-on-write (snapshot=on: the cached image is never written). */
export function qemuArgs(c: QemuConfig): string[] {
  return [
    '-machine',
    `q35,accel=${c.accel}`,
    '-cpu',
    c.accel === 'kvm' ? 'host' : 'max',
    '-smp',
    String(c.cpus),
    '-m',
    String(c.memoryMiB),
    '-nodefaults',
    '-display',
    'none',
    '-no-reboot',
    '-monitor',
    'none',
    '-serial',
    'stdio',
    '-kernel',
    c.kernel,
    '-initrd',
    c.initrd,
    '-append',
    'root=/dev/vda rw console=ttyS0 init=/sbin/lab-init panic=1 loglevel=3 random.trust_cpu=on',
    '-drive',
    `file=${c.rootfs},if=virtio,format=raw,snapshot=on`,
    '-drive',
    `file=${c.kubeletDisk},if=virtio,format=raw,readonly=on`,
    '-virtfs',
    `local,path=${c.shareDir},mount_tag=lab,security_model=none,id=lab`,
    '-device',
    'virtio-rng-pci',
    ...(c.hostForward
      ? ['-netdev', `user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${c.hostForward.hostPort}-:${c.hostForward.guestPort}`, '-device', 'virtio-net-pci,netdev=n0']
      : []),
  ];
}

/** How the lab picks its accelerator: 'auto' tries KVM and falls back to TCG, 'on' is KVM or a failure, 'off' is TCG. */
export type KvmMode = 'auto' | 'on' | 'off';
export const KVM_MODES: readonly KvmMode[] = Object.freeze(['auto', 'on', 'off'] as const);
/** The environment variable CI and the workflows set to force a choice (the --kvm flag wins over it). */
export const KVM_ENV = 'KUBELET_LXC_KVM';

/** --kvm, else $KUBELET_LXC_KVM, else auto; anything else is an error that names both. */
export function kvmModeFrom(flag: string | undefined, env: Record<string, string | undefined> = process.env): KvmMode {
  const value = flag ?? env[KVM_ENV] ?? 'auto';
  if (!(KVM_MODES as readonly string[]).includes(value)) {
    throw new Error(`${flag !== undefined ? '--kvm' : KVM_ENV} must be one of ${KVM_MODES.join(', ')}, got "${value}"`);
  }
  return value as KvmMode;
}

/**
 * Seconds the guest gets under KVM to print its first console marker. Under working KVM it
 * takes a few seconds; a KVM that cannot run the guest (an "emulation failure" with qemu
 * still alive) never gets there, so this bounds what the attempt can cost.
 */
export const KVM_PROOF_SECONDS = 45;

/** How long qemu may go on writing after its first KVM error line before it is stopped (the rest of its message). */
export const KVM_ERROR_GRACE_MS = 1000;

/** qemu's own words when KVM cannot run the guest (console or stderr). */
const KVM_FAILURE = /KVM internal error|emulation failure|kvm run failed|failed to initialize kvm|Could not access KVM kernel module|KVM_(CREATE|SET|RUN)[A-Z_]* failed/i;

/** The KVM failure a console line shows, if any. */
export function kvmFailureIn(line: string): string | undefined {
  return KVM_FAILURE.test(line) ? line.trim().slice(0, 200) : undefined;
}

/**
 * The accelerators to try, in order. KVM is only a candidate: it counts once the guest has
 * booted under it to its first console marker (see runLab). A /dev/kvm that is missing or
 * not read-write rules it out at once ('on' then fails with the reason).
 */
export async function accelCandidates(mode: KvmMode, kvmDevice = '/dev/kvm'): Promise<{ candidates: Accel[]; note?: string }> {
  if (mode === 'off') return { candidates: ['tcg'], note: `KVM off (--kvm off or ${KVM_ENV}=off)` };
  try {
    await access(kvmDevice, constants.R_OK | constants.W_OK);
  } catch (e) {
    const why = `${kvmDevice} is not usable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
    if (mode === 'on') throw new Error(`KVM forced (--kvm on or ${KVM_ENV}=on), but ${why}`);
    return { candidates: ['tcg'], note: why };
  }
  return { candidates: mode === 'on' ? ['kvm'] : ['kvm', 'tcg'] };
}

export interface VmHandle {
  /** resolves when qemu has exited */
  done: Promise<{ exitCode: number | null; signal: string | null }>;
  /** ends qemu (SIGTERM, SIGKILL after 5 s) and waits for it */
  kill(): Promise<void>;
  pid: number | undefined;
}

export interface StartVmOptions {
  guest: GuestImage;
  kubeletDisk: string;
  shareDir: string;
  accel: Accel;
  memoryMiB: number;
  consoleLog: string;
  hostForward?: QemuConfig['hostForward'];
  /** every "@@LAB <event> <args...>" line of the guest console */
  onMarker: (event: string, args: string[]) => void;
  /** every line qemu prints, console and stderr (KVM failures show up here) */
  onLine?: (line: string) => void;
  /** the qemu binary (default qemu-system-x86_64; tests put a wrapper here) */
  qemu?: string;
}

export function startVm(o: StartVmOptions): VmHandle {
  const args = qemuArgs({
    kernel: o.guest.kernel,
    initrd: o.guest.initrd,
    rootfs: o.guest.rootfs,
    kubeletDisk: o.kubeletDisk,
    shareDir: o.shareDir,
    accel: o.accel,
    memoryMiB: o.memoryMiB,
    cpus: 2,
    hostForward: o.hostForward,
  });
  const child: ChildProcess = spawnChild('setpriv', ['--pdeathsig', 'KILL', '--', o.qemu ?? QEMU, ...args], { buffer: false, forceKillAfterDelayMs: 5000 });
  const consoleOut = createWriteStream(o.consoleLog);
  if (child.stdout) {
    child.stdout.pipe(consoleOut, { end: false });
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      o.onLine?.(line);
      const at = line.indexOf('@@LAB ');
      if (at < 0) return;
      const [event, ...rest] = line.slice(at + 6).trim().split(/\s+/);
      if (event) o.onMarker(event, rest);
    });
  }
  if (child.stderr) {
    child.stderr.pipe(consoleOut, { end: false });
    if (o.onLine) createInterface({ input: child.stderr }).on('line', o.onLine);
  }
  const done = (async () => {
    const r = await child;
    // both streams are drained once execa settles: close the log so readers see all of it
    await new Promise<void>((res) => consoleOut.end(res));
    return { exitCode: r.exitCode ?? null, signal: r.signal ?? null };
  })();
  let killing: Promise<void> | undefined;
  return {
    pid: child.pid,
    done,
    kill: () => {
      killing ??= (async () => {
        child.kill('SIGTERM');
        await done;
      })();
      return killing;
    },
  };
}
