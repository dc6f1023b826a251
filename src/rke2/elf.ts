// Cheap guard against shipping a kubelet of the wrong architecture: read the ELF header.
import { open } from 'node:fs/promises';
import { archOf, type Platform } from '../manifest.js';

const MACHINES: Record<number, string> = { 0x3e: 'amd64', 0xb7: 'arm64', 0x03: '386', 0x28: 'arm', 0xf3: 'riscv64', 0x15: 'ppc64le', 0x16: 's390x' };

/** The Go architecture name of a Linux ELF executable, or throws saying why it is not one. */
export async function elfArch(file: string): Promise<string> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(20);
    const { bytesRead } = await fh.read(buf, 0, 20, 0);
    if (bytesRead < 20 || buf.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF executable`);
    const little = buf[5] === 1;
    const machine = little ? buf.readUInt16LE(18) : buf.readUInt16BE(18);
    return MACHINES[machine] ?? `elf-machine-0x${machine.toString(16)}`;
  } finally {
    await fh.close();
  }
}

export async function assertElfArch(file: string, platform: Platform): Promise<void> {
  const got = await elfArch(file);
  const want = archOf(platform);
  if (got !== want) throw new Error(`${file} is a ${got} executable, but it is packaged for ${platform}`);
}
