// The RKE2 runtime image: built in TS from a (stand-in) rke2-runtime docker-archive, then handed to
// the real consumers: docker load, skopeo, containerd's ctr import, and RKE2's own loader/extractor
// (wharfie + go-containerregistry, built from test/helpers/rke2-extract).
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORMS, archOf, type Platform } from '../src/manifest.js';
import { extractTarMembers, listTar, writeDeterministicTar } from '../src/lib/tarball.js';
import type { PackagedFile } from '../src/stages/types.js';
import { artifactListName, readArtifactLists, writeArtifactList, writeChecksums } from '../src/stages/package/artifacts.js';
import { startFakeGitHub } from './helpers/fake-github.js';
import { makeFixture, newToken, OWNER, publishCli, REPO, TAG as TAG_PUBLISHED } from './publish-harness.js';
import {
  KUBELET_DROPIN_NAME,
  RKE2_MAX_ZSTD_WINDOW,
  RUNTIME_BINARIES,
  RUNTIME_IMAGE_SNIPPET_NAME,
  STAND_IN_LABEL,
  assertZstdWindow,
  buildKubeletPathBundle,
  buildRuntimeImage,
  compressZstdForRke2,
  isStandInImage,
  makeStandInBaseArchive,
  readDockerArchive,
  runtimeImageTag,
  zstdWindowSize,
} from '../src/rke2/index.js';
import {
  HOST_ARCH,
  buildFakeKubelet,
  buildRke2Extract,
  captureLogger,
  requireDockerEngine,
  requireTool,
  rke2Extract,
  sha256,
  startPrivateContainerd,
  type PrivateContainerd,
} from './helpers/rke2.js';

const RKE2 = 'v1.36.4+rke2r1';
const BASE_REF = 'rancher/rke2-runtime:v1.36.4-rke2r1';
// A revision of our own so that loading into the shared docker engine cannot clash with anyone's.
const REVISION = 7000 + (process.pid % 1000);
const TAG = runtimeImageTag(RKE2, REVISION);
const TARGET_REF = `kubelet-lxc-test/rke2-runtime:${TAG}`;
const MTIME = new Date('2026-03-01T12:00:00Z');

interface Built {
  platform: Platform;
  kubelet: string;
  base: string;
  files: PackagedFile[];
  plain: string;
  zst: string;
}

let tmp: string;
let rke2ExtractBin: string;
const built = new Map<Platform, Built>();
const dockerLoaded: string[] = [];

beforeAll(async () => {
  await requireTool('go', ['version']);
  await requireTool('zstd');
  await requireTool('skopeo');
  tmp = await mkdtemp(path.join(os.tmpdir(), 'rke2-image-'));
  rke2ExtractBin = await buildRke2Extract(path.join(tmp, 'rke2-extract'));
  for (const platform of PLATFORMS) {
    const arch = archOf(platform);
    const kubelet = await buildFakeKubelet({ out: path.join(tmp, 'bin', arch, 'kubelet'), arch, version: RKE2 });
    const base = path.join(tmp, 'bases', `rke2-runtime-${arch}.tar`);
    await makeStandInBaseArchive({ ref: BASE_REF, platform, outFile: base });
    const files = await buildRuntimeImage({
      kubeletByPlatform: { [platform]: kubelet },
      platform,
      baseArchive: path.join(tmp, 'bases', 'rke2-runtime-{arch}.tar'),
      baseRef: BASE_REF,
      targetRef: TARGET_REF,
      outDir: path.join(tmp, 'dist'),
      mtime: MTIME,
      log: captureLogger(),
    });
    built.set(platform, { platform, kubelet, base, files, plain: files[0]!.path, zst: files[1]!.path });
  }
});

afterAll(async () => {
  for (const ref of dockerLoaded) await execa('docker', ['rmi', '-f', ref], { reject: false });
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function get(platform: Platform): Built {
  const b = built.get(platform);
  if (!b) throw new Error(`no image built for ${platform}`);
  return b;
}

/** Every file below dir: relative path -> sha256:mode. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(rel: string) {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else out[r] = `${sha256(await readFile(path.join(dir, r)))}:${((await stat(path.join(dir, r))).mode & 0o7777).toString(8)}`;
    }
  }
  await walk('');
  return out;
}

/** The base image as RKE2 would extract it (the reference for "every other file equals the base's"). */
async function baseTree(b: Built): Promise<Record<string, string>> {
  const images = await mkdtemp(path.join(tmp, 'base-images-'));
  await copyFile(b.base, path.join(images, 'base.tar'));
  const out = await mkdtemp(path.join(tmp, 'base-x-'));
  await rke2Extract(rke2ExtractBin, images, BASE_REF, out);
  return tree(out);
}

describe('runtime image archive', () => {
  it.each(PLATFORMS)('%s: manifest.json first, RepoTags exactly the reference, base layers byte for byte plus one kubelet layer', async (platform) => {
    const b = get(platform);
    const arch = archOf(platform);
    expect(b.files.map((f) => [f.name, f.kind, f.platform])).toEqual([
      [`rke2-runtime-${TAG}.linux-${arch}.tar`, 'rke2-runtime-image-stand-in', platform],
      [`rke2-runtime-${TAG}.linux-${arch}.tar.zst`, 'rke2-runtime-image-zstd-stand-in', platform],
      [RUNTIME_IMAGE_SNIPPET_NAME, 'rke2-config-runtime-image-stand-in', undefined],
    ]);
    const members = await listTar(b.plain);
    expect(members[0]!.path).toBe('manifest.json');
    expect(members.every((m) => m.type === 'File')).toBe(true);

    const x = await mkdtemp(path.join(tmp, 'archive-'));
    await extractTarMembers(b.plain, x, ['manifest.json']);
    const manifest = JSON.parse(await readFile(path.join(x, 'manifest.json'), 'utf8')) as { Config: string; RepoTags: string[]; Layers: string[] }[];
    expect(manifest).toHaveLength(1);
    expect(manifest[0]!.RepoTags).toEqual([TARGET_REF]);

    const base = await readDockerArchive(b.base, { ref: BASE_REF, workDir: await mkdtemp(path.join(tmp, 'base-read-')) });
    const image = await readDockerArchive(b.plain, { ref: TARGET_REF, workDir: await mkdtemp(path.join(tmp, 'image-read-')) });
    expect(base.layers.length).toBe(2);
    expect(image.layers.length).toBe(base.layers.length + 1);
    for (const [i, l] of base.layers.entries()) {
      expect(image.layers[i]!.diffId).toBe(l.diffId);
      expect(sha256(await readFile(image.layers[i]!.file))).toBe(sha256(await readFile(l.file)));
    }
    const top = image.layers.at(-1)!;
    expect((await listTar(top.file)).map((m) => [m.path, m.type, (m.mode & 0o7777).toString(8)])).toEqual([
      ['bin/', 'Directory', '755'],
      ['bin/kubelet', 'File', '755'],
    ]);
    await extractTarMembers(top.file, path.join(x, 'top'), ['bin/kubelet']);
    expect(sha256(await readFile(path.join(x, 'top/bin/kubelet')))).toBe(sha256(await readFile(b.kubelet)));

    expect(image.config.architecture).toBe(arch);
    expect(image.config.os).toBe('linux');
    expect(image.config.rootfs.diff_ids).toEqual(image.layers.map((l) => l.diffId));
    expect(image.config.history).toHaveLength(3);
    expect(image.config.config?.Labels).toMatchObject({
      [STAND_IN_LABEL]: 'true',
      'io.kubelet-lxc.base-ref': BASE_REF,
      'io.kubelet-lxc.base-image-id': base.configDigest,
      'io.kubelet-lxc.kubelet-sha256': sha256(await readFile(b.kubelet)),
    });
    expect(await isStandInImage(b.plain)).toBe(true);
  });

  it('is reproducible: the same inputs give the same bytes', async () => {
    const b = get('linux/amd64');
    const again = await buildRuntimeImage({
      kubeletByPlatform: { 'linux/amd64': b.kubelet },
      platform: 'linux/amd64',
      baseArchive: b.base,
      baseRef: BASE_REF,
      targetRef: TARGET_REF,
      outDir: path.join(tmp, 'repro'),
      mtime: MTIME,
      log: captureLogger(),
    });
    expect(again.map((f) => f.sha256)).toEqual(b.files.map((f) => f.sha256));
  });

  it.each(PLATFORMS)('%s: the .tar.zst has a zstd window RKE2 can decode and holds the same archive', async (platform) => {
    const b = get(platform);
    expect(await zstdWindowSize(b.zst)).toBeLessThanOrEqual(RKE2_MAX_ZSTD_WINDOW);
    const d = await execa('zstd', ['-d', '-q', '-c', '--long=25', b.zst], { encoding: 'buffer' });
    expect(sha256(Buffer.from(d.stdout))).toBe(sha256(await readFile(b.plain)));
  });
});

describe('accepted by the real consumers', () => {
  it.each(PLATFORMS)('%s: docker load, and the container file system has the patched kubelet and the base files', async (platform) => {
    await requireDockerEngine();
    const b = get(platform);
    const load = await execa('docker', ['load', '-i', b.plain]);
    dockerLoaded.push(TARGET_REF);
    expect(load.stdout).toContain(`Loaded image: ${TARGET_REF}`);
    const inspect = JSON.parse((await execa('docker', ['image', 'inspect', TARGET_REF])).stdout) as {
      Id: string;
      RepoTags: string[];
      Architecture: string;
      Os: string;
      RootFS: { Layers: string[] };
      Config: { Labels: Record<string, string> };
    }[];
    const image = await readDockerArchive(b.plain, { workDir: await mkdtemp(path.join(tmp, 'docker-read-')) });
    expect(inspect[0]!.Id).toBe(image.configDigest);
    expect(inspect[0]!.RepoTags).toContain(TARGET_REF);
    expect(inspect[0]!.Architecture).toBe(archOf(platform));
    expect(inspect[0]!.RootFS.Layers).toEqual(image.config.rootfs.diff_ids);
    expect(inspect[0]!.Config.Labels[STAND_IN_LABEL]).toBe('true');

    const id = (await execa('docker', ['create', '--platform', platform, TARGET_REF, '/bin/kubelet'])).stdout.trim();
    try {
      const exported = path.join(tmp, `export-${archOf(platform)}.tar`);
      await execa('docker', ['export', id, '-o', exported]);
      const want = await baseTree(b);
      const names = Object.keys(want);
      const x = await mkdtemp(path.join(tmp, 'export-x-'));
      await extractTarMembers(exported, x, names);
      for (const n of names) {
        const got = sha256(await readFile(path.join(x, n)));
        if (n === 'bin/kubelet') expect(got, n).toBe(sha256(await readFile(b.kubelet)));
        else expect(got, n).toBe(want[n]!.split(':')[0]);
      }
    } finally {
      await execa('docker', ['rm', id], { reject: false });
    }
    await execa('docker', ['rmi', TARGET_REF]);
  });

  it.each(PLATFORMS)('%s: skopeo inspect docker-archive: (plain and zstd)', async (platform) => {
    const b = get(platform);
    const image = await readDockerArchive(b.plain, { workDir: await mkdtemp(path.join(tmp, 'skopeo-read-')) });
    for (const src of [`docker-archive:${b.plain}`, `docker-archive:${b.plain}:${TARGET_REF}`, `docker-archive:${b.zst}`]) {
      const r = JSON.parse((await execa('skopeo', ['inspect', src])).stdout) as { Architecture: string; Os: string; Layers: string[]; Labels: Record<string, string> };
      expect(r.Architecture, src).toBe(archOf(platform));
      expect(r.Os).toBe('linux');
      expect(r.Layers).toEqual(image.config.rootfs.diff_ids);
      expect(r.Labels[STAND_IN_LABEL]).toBe('true');
      const config = JSON.parse((await execa('skopeo', ['inspect', '--config', '--raw', src])).stdout) as unknown;
      expect(config).toEqual(image.config);
    }
  });

  describe('containerd', () => {
    let ctrd: PrivateContainerd | undefined;
    let ctrdDir: string | undefined;
    beforeAll(async () => {
      // Under /tmp itself: the socket path must stay short (108 bytes).
      ctrdDir = await mkdtemp(path.join('/tmp', 'ctrd-'));
      ctrd = await startPrivateContainerd(ctrdDir);
    });
    afterAll(async () => {
      await ctrd?.stop();
      if (ctrdDir) await rm(ctrdDir, { recursive: true, force: true });
    });

    it.each(PLATFORMS)('%s: ctr images import', async (platform) => {
      const b = get(platform);
      const ns = `kubelet-lxc-${archOf(platform)}`;
      const address = ctrd!.address;
      const ctr = (...args: string[]) => execa('ctr', ['--address', address, '--namespace', ns, ...args]);
      const host = archOf(platform) === HOST_ARCH;
      await ctr('images', 'import', '--platform', platform, ...(host ? [] : ['--no-unpack']), b.plain);
      const refs = (await ctr('images', 'ls', '-q')).stdout.split('\n');
      expect(refs).toContain(`docker.io/${TARGET_REF}`);
      const check = (await ctr('images', 'check')).stdout;
      expect(check).toMatch(/complete \(4\/4\)/); // the config and the three layers are all there
      if (host) {
        // Unpacked by containerd's own snapshotter: mount it and read /bin.
        const mnt = await mkdtemp(path.join(tmp, 'mnt-'));
        await ctr('images', 'mount', '--platform', platform, `docker.io/${TARGET_REF}`, mnt);
        try {
          const want = await baseTree(b);
          for (const n of Object.keys(want)) {
            const got = sha256(await readFile(path.join(mnt, n)));
            if (n === 'bin/kubelet') expect(got, n).toBe(sha256(await readFile(b.kubelet)));
            else expect(got, n).toBe(want[n]!.split(':')[0]);
          }
        } finally {
          await ctr('images', 'unmount', mnt);
        }
      }
    });
  });
});

describe('extracted the way RKE2 does', () => {
  it.each(PLATFORMS.flatMap((p) => [[p, 'tar'] as const, [p, 'tar.zst'] as const]))(
    '%s .%s: /bin/kubelet is the patched binary, every other file equals the base image, files 0755',
    async (platform, suffix) => {
      const b = get(platform);
      const images = await mkdtemp(path.join(tmp, 'agent-images-'));
      await copyFile(suffix === 'tar' ? b.plain : b.zst, path.join(images, `runtime.${suffix}`));
      const out = await mkdtemp(path.join(tmp, 'rke2-data-'));
      const r = await rke2Extract(rke2ExtractBin, images, TARGET_REF, out);
      expect(r.dataDir).toMatch(new RegExp(`^${TAG}-[0-9a-f]{12}$`));

      const got = await tree(out);
      const want = await baseTree(b);
      expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
      expect(Object.keys(got).filter((n) => n.startsWith('bin/')).sort()).toEqual(RUNTIME_BINARIES.map((n) => `bin/${n}`).sort());
      expect(Object.keys(got).some((n) => n.startsWith('charts/'))).toBe(true);
      for (const [n, v] of Object.entries(got)) {
        if (n === 'bin/kubelet') {
          expect(v).toBe(`${sha256(await readFile(b.kubelet))}:755`);
          expect(v).not.toBe(want[n]);
        } else {
          expect(v, n).toBe(want[n]);
        }
        if (n.startsWith('bin/')) expect(v.endsWith(':755'), n).toBe(true);
      }
      // RKE2 looks the reference up in RepoTags: another tag is not found in the same tarball.
      const miss = await execa(rke2ExtractBin, [images, `kubelet-lxc-test/rke2-runtime:${runtimeImageTag(RKE2, REVISION + 1)}`, path.join(out, 'miss')], { reject: false });
      expect(miss.exitCode).toBe(1);
      expect(miss.stderr).toContain('not found');
    },
  );
});

describe('base image', () => {
  it('falls back to a stand-in only with a loud warning and the stand-in label when the registry is unreachable', async () => {
    const b = get('linux/amd64');
    const log = captureLogger();
    // A registry on a closed loopback port: unreachable at once, whatever the machine's network.
    const unreachable = '127.0.0.1:1/rancher/rke2-runtime:v1.36.4-rke2r1';
    const out = path.join(tmp, 'fallback');
    const files = await buildRuntimeImage({ kubeletByPlatform: { 'linux/amd64': b.kubelet }, platform: 'linux/amd64', baseRef: unreachable, targetRef: TARGET_REF, outDir: out, mtime: MTIME, log });
    const warning = log.warnings.join('\n');
    expect(warning).toContain(`cannot pull ${unreachable}`);
    expect(warning).toContain('FROM A GENERATED STAND-IN');
    expect(warning).toContain(`${STAND_IN_LABEL}=true`);
    expect(files.map((f) => f.kind)).toEqual(['rke2-runtime-image-stand-in', 'rke2-runtime-image-zstd-stand-in', 'rke2-config-runtime-image-stand-in']);
    expect(await isStandInImage(files[0]!.path)).toBe(true);
    const snippet = await readFile(files[2]!.path, 'utf8');
    expect(snippet.split('\n')[0]).toContain('STAND-IN IMAGE');
    expect(snippet).toContain(`runtime-image: ${TARGET_REF}\n`);

    // publish refuses it, under the names the package stage writes and under any other name
    const fx = await makeFixture({ bigBytes: 1024 });
    const token = newToken();
    const gh = await startFakeGitHub({ token, owner: OWNER, repo: REPO });
    /** The amd64 artifact list with these entries added or replaced, and the checksum files rewritten (as the package stage leaves them). */
    const listIn = async (entries: Omit<PackagedFile, 'path'>[]) => {
      const list = (await readArtifactLists(fx.dist)).lists.get(artifactListName('linux/amd64'))!;
      await writeArtifactList(fx.dist, { ...list, artifacts: [...list.artifacts.filter((a) => !entries.some((e) => e.name === a.name)), ...entries] });
      await writeChecksums(fx.dist);
    };
    try {
      for (const f of files) await copyFile(f.path, path.join(fx.dist, f.name));
      await listIn(files.map(({ path: _p, ...a }) => a));
      const image = files[0]!.name;
      expect(image).toMatch(/^rke2-runtime-v[^/]+\.linux-amd64\.tar$/);
      expect(files[0]!.standIn).toBe(true);
      const refused = await publishCli(fx, gh, token, []);
      expect(refused.exitCode, refused.all).toBe(1);
      expect(refused.stderr).toContain(`${files.map((f) => f.name).sort().join(', ')} were built on a STAND-IN base image`);
      expect(refused.stderr).toContain('--base-image-archive');
      expect(gh.requests.filter((q) => q.method !== 'GET')).toEqual([]);

      // renamed, and listed under the new name by a list that says it is no stand-in: its label still gives it away
      const renamed = 'runtime.tar';
      await rename(path.join(fx.dist, image), path.join(fx.dist, renamed));
      await listIn([{ ...files[0]!, name: renamed, standIn: false }]);
      const list = (await readArtifactLists(fx.dist)).lists.get(artifactListName('linux/amd64'))!;
      await writeArtifactList(fx.dist, { ...list, artifacts: list.artifacts.filter((a) => a.name !== image).map((a) => ({ ...a, standIn: false })) });
      await writeChecksums(fx.dist);
      const again = await publishCli(fx, gh, token, []);
      expect(again.exitCode, again.all).toBe(1);
      expect(again.stderr).toContain(`${renamed} was built on a STAND-IN base image`);

      const dry = await publishCli(fx, gh, token, ['--dry-run']);
      expect(dry.exitCode, dry.all).toBe(0);
      expect(dry.all).toContain(`a real publish would refuse: ${renamed} was built on a STAND-IN base image`);
      expect(gh.requests.filter((q) => q.method !== 'GET')).toEqual([]);

      // the fixture's other .tar files are random bytes, not images: no false alarm; --allow-stand-in publishes
      const allowed = await publishCli(fx, gh, token, ['--allow-stand-in']);
      expect(allowed.exitCode, allowed.all).toBe(0);
      expect(gh.releases.find((r) => r.tag_name === TAG_PUBLISHED)?.assets.map((a) => a.name)).toContain(renamed);
    } finally {
      await gh.close();
      await fx.cleanup();
    }
  });

  it('accepts base archives written by docker save and by skopeo copy', async () => {
    await requireDockerEngine();
    const b = get('linux/amd64');
    const work = await mkdtemp(path.join(tmp, 'saved-'));
    const ref = `kubelet-lxc-test/rke2-runtime-base:v1.36.4-rke2r1-${REVISION}`;
    const standIn = path.join(work, 'stand-in.tar');
    await makeStandInBaseArchive({ ref, platform: 'linux/amd64', outFile: standIn });
    const original = await readDockerArchive(standIn, { ref, workDir: path.join(work, 'r0') });
    await execa('docker', ['load', '-i', standIn]);
    dockerLoaded.push(ref);
    const saved = path.join(work, 'docker-saved.tar');
    await execa('docker', ['save', '-o', saved, ref]);
    await execa('docker', ['rmi', ref]);
    const copied = path.join(work, 'skopeo-copied.tar');
    await execa('skopeo', ['copy', `docker-archive:${standIn}`, `docker-archive:${copied}:${ref}`]);
    for (const base of [saved, copied]) {
      const files = await buildRuntimeImage({ kubeletByPlatform: { 'linux/amd64': b.kubelet }, platform: 'linux/amd64', baseArchive: base, baseRef: ref, targetRef: TARGET_REF, outDir: path.join(work, path.basename(base, '.tar')), mtime: MTIME, log: captureLogger() });
      const image = await readDockerArchive(files[0]!.path, { ref: TARGET_REF, workDir: path.join(work, `r-${path.basename(base)}`) });
      expect(image.config.rootfs.diff_ids.slice(0, -1), base).toEqual(original.config.rootfs.diff_ids);
      expect(image.config.config?.Labels?.[STAND_IN_LABEL], base).toBe('true');
    }
  });

  it('reads a base whose layers are gzip-compressed, keeping their diff_ids', async () => {
    const b = get('linux/amd64');
    const work = await mkdtemp(path.join(tmp, 'gz-'));
    const plain = await readDockerArchive(b.base, { ref: BASE_REF, workDir: path.join(work, 'read') });
    const entries = [];
    const layerNames: string[] = [];
    for (const [i, l] of plain.layers.entries()) {
      const f = path.join(work, `layer${i}.tar.gz`);
      await writeFile(f, gzipSync(await readFile(l.file)));
      layerNames.push(`blobs/layer${i}.tar.gz`);
      entries.push({ name: `blobs/layer${i}.tar.gz`, source: f });
    }
    const configFile = path.join(work, 'config.json');
    await writeFile(configFile, JSON.stringify(plain.config));
    const manifestFile = path.join(work, 'manifest.json');
    await writeFile(manifestFile, JSON.stringify([{ Config: 'blobs/config.json', RepoTags: [`docker.io/${BASE_REF}`], Layers: layerNames }]));
    const gzBase = path.join(work, 'base-gz.tar');
    await writeDeterministicTar(gzBase, [{ name: 'blobs/config.json', source: configFile }, ...entries, { name: 'manifest.json', source: manifestFile }], { mtime: MTIME });

    const files = await buildRuntimeImage({ kubeletByPlatform: { 'linux/amd64': b.kubelet }, platform: 'linux/amd64', baseArchive: gzBase, baseRef: BASE_REF, targetRef: TARGET_REF, outDir: path.join(work, 'out'), mtime: MTIME, log: captureLogger() });
    const image = await readDockerArchive(files[0]!.path, { workDir: path.join(work, 'check') });
    expect(image.config.rootfs.diff_ids.slice(0, 2)).toEqual(plain.config.rootfs.diff_ids);

    // A layer that does not match its diff_id is refused.
    const damaged = structuredClone(plain.config);
    damaged.rootfs.diff_ids[1] = `sha256:${'0'.repeat(64)}`;
    await writeFile(configFile, JSON.stringify(damaged));
    const badBase = path.join(work, 'base-bad.tar');
    await writeDeterministicTar(badBase, [{ name: 'blobs/config.json', source: configFile }, ...entries, { name: 'manifest.json', source: manifestFile }], { mtime: MTIME });
    await expect(
      buildRuntimeImage({ kubeletByPlatform: { 'linux/amd64': b.kubelet }, platform: 'linux/amd64', baseArchive: badBase, baseRef: BASE_REF, targetRef: TARGET_REF, outDir: path.join(work, 'out2'), mtime: MTIME, log: captureLogger() }),
    ).rejects.toThrow(`layer 1 (blobs/layer1.tar.gz) is ${plain.layers[1]!.diffId} uncompressed, but the config says sha256:${'0'.repeat(64)}: damaged archive`);
  });

  it('refuses a base of another architecture, an archive without the base reference, and a tag RKE2 would refuse', async () => {
    const amd = get('linux/amd64');
    const arm = get('linux/arm64');
    const common = { baseRef: BASE_REF, targetRef: TARGET_REF, outDir: path.join(tmp, 'refuse'), mtime: MTIME, log: captureLogger() };
    await expect(buildRuntimeImage({ ...common, kubeletByPlatform: { 'linux/arm64': arm.kubelet }, platform: 'linux/arm64', baseArchive: amd.base })).rejects.toThrow(
      `${BASE_REF} there is linux/amd64, not linux/arm64`,
    );
    await expect(buildRuntimeImage({ ...common, kubeletByPlatform: { 'linux/amd64': amd.kubelet }, platform: 'linux/amd64', baseArchive: amd.plain })).rejects.toThrow(
      `does not hold ${BASE_REF}; it holds ${TARGET_REF}`,
    );
    await expect(
      buildRuntimeImage({ ...common, kubeletByPlatform: { 'linux/amd64': amd.kubelet }, platform: 'linux/amd64', baseArchive: amd.base, targetRef: 'kubelet-lxc-test/rke2-runtime:latest' }),
    ).rejects.toThrow('must match ^v[0-9]');
    await expect(buildRuntimeImage({ ...common, kubeletByPlatform: { 'linux/amd64': arm.kubelet }, platform: 'linux/amd64', baseArchive: amd.base })).rejects.toThrow(
      'is a arm64 executable, but it is packaged for linux/amd64',
    );
    expect(() => runtimeImageTag('v1.36.4+k3s1')).toThrow('not an RKE2 release version');
    expect(runtimeImageTag('v1.36.4+rke2r1')).toBe('v1.36.4-rke2r1-lxc1');
  });
});

describe('zstd for agent/images', () => {
  it('compresses with a 32 MiB window at most, and the check refuses a wider one', async () => {
    const dir = await mkdtemp(path.join(tmp, 'zstd-'));
    const big = path.join(dir, 'big.tar');
    await writeFile(big, randomBytes(40 * 1024 * 1024));
    await compressZstdForRke2(big, path.join(dir, 'big.tar.zst'), 1);
    expect(await zstdWindowSize(path.join(dir, 'big.tar.zst'))).toBe(RKE2_MAX_ZSTD_WINDOW);
    await execa('zstd', ['-q', '-f', '-1', '--long=27', '-o', path.join(dir, 'wide.tar.zst'), big]);
    expect(await zstdWindowSize(path.join(dir, 'wide.tar.zst'))).toBeGreaterThan(RKE2_MAX_ZSTD_WINDOW);
    await expect(assertZstdWindow(path.join(dir, 'wide.tar.zst'))).rejects.toThrow(`RKE2 decodes at most ${RKE2_MAX_ZSTD_WINDOW}`);
  });
});

describe('every platform of the manifest', () => {
  it('gets the kubelet-path bundle, the runtime image (plain and zstd) and both config snippets', async () => {
    const dist = path.join(tmp, 'dist');
    for (const platform of PLATFORMS) {
      const b = get(platform);
      await buildKubeletPathBundle({ kubelet: b.kubelet, doctor: b.kubelet, platform, version: RKE2, rke2Version: RKE2, outDir: dist, mtime: MTIME });
    }
    const names = (await readdir(dist)).filter((n) => !n.startsWith('.')).sort();
    const want = [
      ...PLATFORMS.flatMap((p) => [`kubelet-lxc-${RKE2.replace('+', '-')}-linux-${archOf(p)}.tar.gz`, `kubelet-lxc-${RKE2.replace('+', '-')}-linux-${archOf(p)}.tar.gz.sha256`]),
      ...PLATFORMS.flatMap((p) => [`rke2-runtime-${TAG}.linux-${archOf(p)}.tar`, `rke2-runtime-${TAG}.linux-${archOf(p)}.tar.zst`]),
      KUBELET_DROPIN_NAME,
      RUNTIME_IMAGE_SNIPPET_NAME,
    ].sort();
    expect(names).toEqual(want);
    const snippet = await readFile(path.join(dist, RUNTIME_IMAGE_SNIPPET_NAME), 'utf8');
    expect(snippet).toContain(`runtime-image: ${TARGET_REF}\n`);
    expect(snippet).toContain('/var/lib/rancher/rke2/agent/images/');
  });
});
