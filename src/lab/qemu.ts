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
  ];
}

/** KVM when asked for and working; 'auto' probes it (a /dev/kvm that qemu cannot use counts as none). */
export async function chooseAccel(mode: 'auto' | 'on' | 'off', log: (l: string) => void): Promise<Accel> {
  if (mode === 'off') return 'tcg';
  let why = '';
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
    // paused (-S) probe: qemu fails at once when it cannot set the vCPU up
    const probe = spawnChild(QEMU, ['-accel', 'kvm', '-machine', 'q35', '-cpu', 'host', '-m', '64', '-nodefaults', '-display', 'none', '-monitor', 'none', '-S'], {
      timeoutMs: 2500,
    });
    const r = await probe;
    if (r.timedOut) return 'kvm';
    why = `qemu -accel kvm exited ${r.exitCode ?? r.signal}: ${String(r.stderr).split('\n').filter(Boolean).slice(-1)[0] ?? ''}`;
  } catch (e) {
    why = `/dev/kvm not usable (${(e as Error).message})`;
  }
  if (mode === 'on') throw new Error(`KVM requested (kvm: 'on') but not available: ${why}`);
  log(`qemu: no KVM (${why}), using TCG`);
  return 'tcg';
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
  /** every "@@LAB <event> <args...>" line of the guest console */
  onMarker: (event: string, args: string[]) => void;
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
  });
  const child: ChildProcess = spawnChild('setpriv', ['--pdeathsig', 'KILL', '--', QEMU, ...args], { buffer: false, forceKillAfterDelayMs: 5000 });
  const consoleOut = createWriteStream(o.consoleLog);
  if (child.stdout) {
    child.stdout.pipe(consoleOut, { end: false });
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      const at = line.indexOf('@@LAB ');
      if (at < 0) return;
      const [event, ...rest] = line.slice(at + 6).trim().split(/\s+/);
      if (event) o.onMarker(event, rest);
    });
  }
  child.stderr?.pipe(consoleOut, { end: false });
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
