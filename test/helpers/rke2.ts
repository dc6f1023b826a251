// Test helpers for the RKE2 packaging tests: required tools (a missing one FAILS the test with the
// install command), the Go stand-in kubelet, the real-RKE2 extraction helper, a private containerd,
// a capturing logger and a raw tar writer for hostile archives.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa, type ResultPromise } from 'execa';
import type { Logger } from '../../src/lib/progress.js';

export const HELPERS_DIR = path.dirname(new URL(import.meta.url).pathname);

/** Host architecture as Go names it (the stand-in kubelet only runs for this one). */
export const HOST_ARCH = process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;

const INSTALL: Record<string, string> = {
  docker: 'apt-get install -y docker.io   # then start the engine: dockerd &',
  skopeo: 'apt-get install -y skopeo',
  ctr: 'apt-get install -y containerd',
  containerd: 'apt-get install -y containerd',
  zstd: 'apt-get install -y zstd',
  go: 'install Go 1.24 or newer on PATH (Debian: apt-get install -y -t trixie-backports golang-go)',
  dash: 'apt-get install -y dash',
  busybox: 'apt-get install -y busybox',
  tar: 'apt-get install -y tar',
  sha256sum: 'apt-get install -y coreutils',
};

/** Fail (never skip) when a tool is missing, naming the exact install command. */
export async function requireTool(cmd: string, args: string[] = ['--version']): Promise<void> {
  const r = await execa(cmd, args, { reject: false, timeout: 30_000 });
  if (r.failed && (r as { code?: string }).code === 'ENOENT') {
    throw new Error(`${cmd} is needed by this test and is not installed: ${INSTALL[cmd] ?? `install ${cmd}`}`);
  }
}

export async function requireDockerEngine(): Promise<void> {
  await requireTool('docker', ['--version']);
  const r = await execa('docker', ['info', '--format', '{{.ServerVersion}}'], { reject: false, timeout: 60_000 });
  if (r.exitCode !== 0) {
    throw new Error(`docker load needs a running Docker engine and \`docker info\` failed:\n${r.stderr}\nStart one: apt-get install -y docker.io && (dockerd >/tmp/dockerd.log 2>&1 &)`);
  }
}

/** Build the Go stand-in for kubelet: static, prints "Kubernetes <version>" for --version. */
export async function buildFakeKubelet(o: { out: string; arch: string; version: string; flavour?: string }): Promise<string> {
  const out = path.resolve(o.out); // go build runs in the helper's folder
  await mkdir(path.dirname(out), { recursive: true });
  await execa(
    'go',
    ['build', '-trimpath', '-ldflags', `-s -w -X main.version=${o.version} -X main.flavour=${o.flavour ?? 'patched'}`, '-o', out, '.'],
    { cwd: path.join(HELPERS_DIR, 'fake-kubelet'), env: { CGO_ENABLED: '0', GOOS: 'linux', GOARCH: o.arch } },
  );
  return out;
}

/** Build the helper that loads and extracts a runtime image with RKE2's own code (wharfie + go-containerregistry). */
export async function buildRke2Extract(output: string): Promise<string> {
  const out = path.resolve(output);
  await execa('go', ['build', '-o', out, '.'], { cwd: path.join(HELPERS_DIR, 'rke2-extract'), env: { CGO_ENABLED: '0' } });
  return out;
}

/** Run it: images dir + reference -> out dir with bin/ and charts/ as RKE2 writes them. */
export async function rke2Extract(helper: string, imagesDir: string, ref: string, outDir: string): Promise<{ dataDir: string; reference: string }> {
  const r = await execa(helper, [imagesDir, ref, outDir]);
  return JSON.parse(r.stdout) as { dataDir: string; reference: string };
}

export interface PrivateContainerd {
  address: string;
  stop(): Promise<void>;
}

/** A containerd of our own (root, state, socket under dir), stopped by stop(). */
export async function startPrivateContainerd(dir: string): Promise<PrivateContainerd> {
  await requireTool('containerd', ['--version']);
  await requireTool('ctr', ['--version']);
  await mkdir(dir, { recursive: true });
  const address = path.join(dir, 'c.sock');
  const config = path.join(dir, 'config.toml');
  await writeFile(
    config,
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${address}.ttrpc"`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${dir}/opt"`,
      '',
    ].join('\n'),
  );
  const proc: ResultPromise = execa('containerd', ['--config', config], {
    reject: false,
    stdout: { file: path.join(dir, 'containerd.out') },
    stderr: { file: path.join(dir, 'containerd.log') },
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await execa('ctr', ['--address', address, 'version'], { reject: false, timeout: 10_000 });
    if (r.exitCode === 0) break;
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`private containerd did not come up (log: ${dir}/containerd.log): ${r.stderr}`);
    }
    await new Promise((res) => setTimeout(res, 300));
  }
  return {
    address,
    async stop() {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await proc;
      clearTimeout(t);
    },
  };
}

export interface CapturedLog extends Logger {
  lines: string[];
  warnings: string[];
}

export function captureLogger(): CapturedLog {
  const lines: string[] = [];
  const warnings: string[] = [];
  return {
    lines,
    warnings,
    info: (t) => void lines.push(t),
    warn: (t) => void (warnings.push(t), lines.push(`warning: ${t}`)),
    detail: (t) => void lines.push(t),
    step: (t) => {
      lines.push(`-> ${t}`);
      return {
        update: (u) => void lines.push(`   ${u}`),
        succeed: (u) => void lines.push(`ok ${u ?? t}`),
        fail: (u) => void lines.push(`FAILED ${u ?? t}`),
        skip: (u) => void lines.push(`skip ${u}`),
      };
    },
  };
}

/** A ustar archive written byte by byte, so tests can make entries no well-behaved writer makes. */
export function rawTar(entries: { name: string; body?: string | Buffer; type?: 'file' | 'dir' | 'symlink'; linkname?: string; mode?: number }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const h = Buffer.alloc(512);
    if (Buffer.byteLength(e.name) > 100) throw new Error(`rawTar: name too long: ${e.name}`);
    h.write(e.name, 0, 'utf8');
    const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, '0') + '\0';
    h.write(octal(e.mode ?? (e.type === 'dir' ? 0o755 : 0o644), 8), 100);
    h.write(octal(0, 8), 108);
    h.write(octal(0, 8), 116);
    h.write(octal(e.type === 'file' || e.type === undefined ? body.length : 0, 12), 124);
    h.write(octal(0, 12), 136);
    h.write(e.type === 'dir' ? '5' : e.type === 'symlink' ? '2' : '0', 156);
    if (e.linkname) h.write(e.linkname, 157);
    h.write('ustar\0', 257);
    h.write('00', 263);
    h.fill(' ', 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(octal(sum, 7) + ' ', 148);
    blocks.push(h);
    if ((e.type ?? 'file') === 'file' && body.length) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export function rawTarGz(entries: Parameters<typeof rawTar>[0]): Buffer {
  return gzipSync(rawTar(entries));
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
