// Just enough ELF reading to tell a binary's architecture and whether it is statically linked:
// the smoke test's L0 checks and the packagers' guard against shipping the wrong architecture.
import { open } from 'node:fs/promises';
import { archOf, type Platform } from '../manifest.js';

/** e_machine to the Go architecture name */
const MACHINES: Record<number, string> = { 62: 'amd64', 183: 'arm64', 3: '386', 40: 'arm', 243: 'riscv64', 21: 'ppc64le', 22: 's390x' };
const PT_INTERP = 3;
const PT_DYNAMIC = 2;

export interface ElfInfo {
  arch: string;
  static: boolean;
  class: 64 | 32;
}

/** The ELF header and program headers of a file, or throws saying it is not an ELF executable. */
export async function readElf(file: string): Promise<ElfInfo> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(64);
    const { bytesRead } = await fh.read(head, 0, 64, 0);
    if (bytesRead < 52 || head.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF executable`);
    const is64 = head[4] === 2;
    const le = head[5] === 1;
    const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const machine = u16(head, 18);
    const phoff = is64 ? Number(le ? head.readBigUInt64LE(32) : head.readBigUInt64BE(32)) : u32(head, 28);
    const phentsize = u16(head, is64 ? 54 : 42);
    const phnum = u16(head, is64 ? 56 : 44);
    const ph = Buffer.alloc(phentsize * phnum);
    await fh.read(ph, 0, ph.length, phoff);
    let dynamic = false;
    for (let i = 0; i < phnum; i++) {
      const type = u32(ph, i * phentsize);
      if (type === PT_INTERP || type === PT_DYNAMIC) dynamic = true;
    }
    return { arch: MACHINES[machine] ?? `machine-${machine}`, static: !dynamic, class: is64 ? 64 : 32 };
  } finally {
    await fh.close();
  }
}

/** Refuses to package a binary for a platform whose architecture it is not built for. */
export async function assertElfArch(file: string, platform: Platform): Promise<void> {
  const got = (await readElf(file)).arch;
  const want = archOf(platform);
  if (got !== want) throw new Error(`${file} is a ${got} executable, but it is packaged for ${platform}`);
}
