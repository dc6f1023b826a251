// package: what operators download. Per platform a deterministic kubelet tarball with sha256
// and sha512 sums, and aggregate sums over everything in dist/.
import path from 'node:path';
import { readdir, rm, stat } from 'node:fs/promises';
import { buildDirAtomic, exists, fileHash, writeFileAtomic } from '../lib/fsutil.js';
import { writeDeterministicTar } from '../lib/tarball.js';
import { archOf } from '../manifest.js';
import type { PackagedFile, Stage, StageContext } from './types.js';

async function describe(dir: string, name: string, kind: string, platform?: PackagedFile['platform']): Promise<PackagedFile> {
  const p = path.join(dir, name);
  return { path: p, name, kind, platform, sha256: await fileHash(p), size: (await stat(p)).size };
}

export const packageStage: Stage<'package'> = {
  name: 'package',
  description: 'package kubelet tarballs and checksums',
  revision: 1,
  async inputs(ctx, prev) {
    return {
      binaries: prev.build?.binaries.filter((b) => b.variant === 'patched').map((b) => ({ p: b.platform, sha256: b.sha256 })),
      mtime: prev.source?.sourceDateEpoch,
      version: ctx.manifest.data.stamp.version,
    };
  },
  async run(ctx, prev) {
    const mtime = new Date(prev.source!.sourceDateEpoch * 1000);
    const patched = prev.build!.binaries.filter((b) => b.variant === 'patched');
    const dist = ctx.paths.dist;
    // dist/ is rebuilt whole, so it never mixes files of two runs.
    await buildDirAtomic(dist, async (dir) => {
      for (const b of patched) {
        const arch = archOf(b.platform);
        const name = `kubelet-linux-${arch}.tar.gz`;
        await writeDeterministicTar(path.join(dir, name), [{ name: 'kubelet', source: b.path, mode: 0o755 }], { mtime, gzip: true });
        await writeSums(dir, `sha256sum-${arch}.txt`, [name], 'sha256');
        await writeSums(dir, `sha512sum-${arch}.txt`, [name], 'sha512');
      }
      await writeAggregateSums(dir);
    });
    return { dir: dist, files: await describeDist(dist) };
  },
  async intact(_ctx, out) {
    for (const f of out.files) if (!(await exists(f.path)) || (await fileHash(f.path)) !== f.sha256) return false;
    return true;
  },
};

export async function writeSums(dir: string, sumsName: string, names: string[], algo: 'sha256' | 'sha512'): Promise<void> {
  const lines = await Promise.all([...names].sort().map(async (n) => `${await fileHash(path.join(dir, n), algo)}  ${n}`));
  await writeFileAtomic(path.join(dir, sumsName), `${lines.join('\n')}\n`);
}

/** SHA256SUMS / SHA512SUMS over every other file in dir. */
export async function writeAggregateSums(dir: string): Promise<void> {
  const names = (await readdir(dir)).filter((n) => !/^SHA(256|512)SUMS$/.test(n) && !n.startsWith('.')).sort();
  await writeSums(dir, 'SHA256SUMS', names, 'sha256');
  await writeSums(dir, 'SHA512SUMS', names, 'sha512');
}

export async function describeDist(dir: string): Promise<PackagedFile[]> {
  const names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  return Promise.all(
    names.map((n) => {
      const arch = /linux-(amd64|arm64)/.exec(n)?.[1] ?? /-(amd64|arm64)\.txt$/.exec(n)?.[1];
      const kind = n.endsWith('.tar.gz') ? 'kubelet-tarball' : /sum/i.test(n) ? 'checksums' : 'file';
      return describe(dir, n, kind, arch ? (`linux/${arch}` as PackagedFile['platform']) : undefined);
    }),
  );
}

export async function removeDist(ctx: StageContext): Promise<void> {
  await rm(ctx.paths.dist, { recursive: true, force: true });
}
