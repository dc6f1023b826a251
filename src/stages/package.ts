// package: what operators download. Per platform a deterministic kubelet tarball, its SBOM, the
// RKE2 kubelet-path bundle and runtime image, and an artifact list saying what each file is;
// then the checksum files, derived from the lists (package/artifacts.ts).
import path from 'node:path';
import { chmod, copyFile, readFile } from 'node:fs/promises';
import { buildDirAtomic, exists, fileHash, writeFileAtomic } from '../lib/fsutil.js';
import { derivedChecksums, readArtifactLists, writeArtifactList, writeChecksums } from './package/artifacts.js';
import { writeDeterministicTar } from '../lib/tarball.js';
import { PROJECT_ROOT, archOf } from '../manifest.js';
import { hasCommand, run } from '../lib/exec.js';
import { makeSpdxSbom, moduleHashesFromGoSum } from './package/sbom.js';
import { buildKubeletPathBundle, buildRuntimeImage, parseImageRef, resolvesNowhere, runtimeImageTag, RUNTIME_IMAGE_REPO } from '../rke2/index.js';
import { packagedFile } from '../rke2/packaged.js';
import { StageError, type PackagedFile, type Stage, type StageContext, type StageOutputs } from './types.js';


export const packageStage: Stage<'package'> = {
  name: 'package',
  description: 'package tarballs, SBOMs, RKE2 bundles and runtime images, checksums',
  // src/rke2 holds install.sh and the drop-in and README templates
  sources: () => ['src/stages/package.ts', 'src/stages/package', 'src/rke2', 'src/lib/tarball.ts'].map((f) => path.join(PROJECT_ROOT, f)),
  async verify(ctx) {
    const { baseImageArchive, runtimeImageRepo, runtimeImageRevision } = ctx.opts.packaging;
    if (baseImageArchive) {
      for (const p of ctx.opts.platforms) {
        const f = baseImageArchive.replaceAll('{arch}', archOf(p));
        if (!(await exists(f))) {
          throw new StageError(
            `--base-image-archive ${f} does not exist (the docker-archive of ${ctx.manifest.data.rke2.runtimeImage} for ${p}; {arch} in the path stands for the architecture)`,
            'package',
            { hint: `save it first: skopeo copy --override-arch ${archOf(p)} docker://${ctx.manifest.data.rke2.runtimeImage} docker-archive:${f}:${ctx.manifest.data.rke2.runtimeImage}` },
          );
        }
      }
    }
    try {
      parseImageRef(`${runtimeImageRepo}:${runtimeImageTag(ctx.manifest.data.rke2.version, runtimeImageRevision)}`);
    } catch (err) {
      throw new StageError(`--runtime-image-repo ${runtimeImageRepo}: ${(err as Error).message}`, 'package');
    }
    if (!resolvesNowhere(`${runtimeImageRepo}:x`)) {
      ctx.log.warn(`--runtime-image-repo ${runtimeImageRepo} can be pulled: a node without the image tarball in agent/images/ then pulls it from that registry (the default ${RUNTIME_IMAGE_REPO} cannot resolve)`);
    }
    if (!(await hasCommand('zstd'))) throw new StageError('zstd is not installed (the runtime image\'s .tar.zst for RKE2): apt-get install -y zstd', 'package', { hint: 'apt-get install -y zstd' });
  },
  async inputs(ctx, prev) {
    const base = ctx.opts.packaging.baseImageArchive;
    return {
      binaries: prev.build?.binaries.filter((b) => b.variant === 'patched').map((b) => ({ program: b.program, p: b.platform, sha256: b.sha256 })),
      mtime: prev.source?.sourceDateEpoch,
      version: ctx.manifest.data.stamp.version,
      rke2: ctx.manifest.data.rke2,
      // the base archive by content, per platform ({arch} in the path): a new base reruns package
      packaging: {
        ...ctx.opts.packaging,
        baseImageArchive: base
          ? await Promise.all(
              ctx.opts.platforms.map(async (p) => {
                const f = base.replaceAll('{arch}', archOf(p));
                return [p, await fileHash(f).catch(() => `missing:${f}`)];
              }),
            )
          : undefined,
      },
    };
  },
  async run(ctx, prev) {
    const mtime = new Date(prev.source!.sourceDateEpoch * 1000);
    const patched = prev.build!.binaries.filter((b) => b.variant === 'patched' && b.program === 'kubelet');
    const dist = ctx.paths.dist;
    const m = ctx.manifest.data;
    // dist/ is rebuilt whole, so it never mixes files of two runs.
    await buildDirAtomic(dist, async (dir) => {
      for (const b of patched) {
        const arch = archOf(b.platform);
        const tarball = path.join(dir, `kubelet-linux-${arch}.tar.gz`);
        await writeDeterministicTar(tarball, [{ name: 'kubelet', source: b.path, mode: 0o755 }], { mtime, gzip: true });
        const sbom = path.join(dir, `kubelet-linux-${arch}.spdx.json`);
        await writeSbom(ctx, prev, b, sbom, mtime);
        const doctor = prev.build!.binaries.find((d) => d.program === 'doctor' && d.platform === b.platform);
        if (!doctor) throw new StageError(`the build has no kubelet-lxc-doctor for ${b.platform}: rerun the build stage`, 'package');
        // the doctor on its own too: operators run it before they download a bundle
        const doctorAsset = path.join(dir, `kubelet-lxc-doctor-linux-${arch}`);
        await copyFile(doctor.path, doctorAsset);
        await chmod(doctorAsset, 0o755);
        const bundle = await buildKubeletPathBundle({ kubelet: b.path, doctor: doctor.path, platform: b.platform, version: m.stamp.version, rke2Version: m.rke2.version, outDir: dir, mtime });
        const image = await buildRuntimeImage({
          kubeletByPlatform: { [b.platform]: b.path },
          platform: b.platform,
          baseArchive: ctx.opts.packaging.baseImageArchive,
          baseRef: m.rke2.runtimeImage,
          targetRef: `${ctx.opts.packaging.runtimeImageRepo}:${runtimeImageTag(m.rke2.version, ctx.opts.packaging.runtimeImageRevision)}`,
          outDir: dir,
          mtime,
          log: ctx.log,
        });
        // what the builders say each file is (a stand-in runtime image says so)
        const files = [await packagedFile(tarball, 'kubelet-tarball', b.platform), await packagedFile(sbom, 'sbom', b.platform), await packagedFile(doctorAsset, 'doctor', b.platform), ...bundle, ...image];
        await writeArtifactList(dir, { schema: 1, platform: b.platform, artifacts: files.map(({ path: _path, ...a }) => a) });
      }
      await writeChecksums(dir);
    });
    return { dir: dist, files: await describeDist(dist) };
  },
  async intact(_ctx, out) {
    for (const f of out.files) if (!(await exists(f.path)) || (await fileHash(f.path)) !== f.sha256) return false;
    return true;
  },
};

/** Every file in dist/: the listed artifacts as their lists say, then the lists and the checksum files derived from them. */
export async function describeDist(dir: string): Promise<PackagedFile[]> {
  const contents = await readArtifactLists(dir);
  const listed = contents.artifacts.map((a) => ({ path: path.join(dir, a.name), ...a }));
  const lists = await Promise.all([...contents.lists.keys()].map((n) => packagedFile(path.join(dir, n), 'artifact-list')));
  const sums = await Promise.all([...(await derivedChecksums(dir, contents)).keys()].map((n) => packagedFile(path.join(dir, n), 'checksums')));
  return [...listed, ...lists, ...sums].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** SPDX SBOM of one kubelet: its build info, with module hashes from the tree's go.sum and the pins. */
async function writeSbom(ctx: StageContext, prev: StageOutputs, b: { path: string; sha256: string; platform: string; version: string }, file: string, created: Date): Promise<void> {
  const goVersionM = (await run('go', ['version', '-m', b.path], { env: { ...process.env, GOTOOLCHAIN: 'local' } })).stdout;
  const tree = prev.patch!.tree;
  const goSum = await readFile(path.join(tree, 'go.sum'), 'utf8').catch(() => '');
  const pins = ctx.manifest.data.source.goproxy;
  const modules = [
    ...moduleHashesFromGoSum(goSum),
    ...(pins ? pins.staging.map((p) => ({ path: p.path, version: p.version, h1: p.h1, source: 'the release manifest pins' })) : []),
  ];
  const sbom = makeSpdxSbom({
    name: `kubelet-linux-${b.platform.split('/')[1]}`,
    version: b.version,
    binaryPath: b.path,
    sha256: b.sha256,
    goVersionM,
    modules,
    mainModule: { version: ctx.manifest.data.kubernetes.version, note: `with the kubelet-lxc patch series, commit ${prev.patch!.commit}` },
    created,
  });
  await writeFileAtomic(file, `${JSON.stringify(sbom, null, 2)}\n`);
}
