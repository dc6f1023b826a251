// The RKE2 drop-ins fail closed and say what an operator must know: the runtime image reference
// can only come from the air-gap tarball (a reserved .invalid registry host: RKE2's own loader
// finds it in agent/images/, a registry lookup of it fails), the runtime-image drop-in warns about
// RKE2 upgrades, the feature gate is appended to RKE2's own, and a later plain kubelet-arg: is
// named as what erases the LXC flags.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  LXC_KUBELET_ARGS,
  RUNTIME_IMAGE_REPO,
  buildRuntimeImage,
  makeStandInBaseArchive,
  renderKubeletPathDropIn,
  renderRuntimeImageDropIn,
  resolvesNowhere,
  runtimeImageTag,
} from '../src/rke2/index.js';
import { HOST_ARCH, buildFakeKubelet, buildRke2Extract, captureLogger, requireTool, rke2Extract } from './helpers/rke2.js';
import type { Platform } from '../src/manifest.js';

const RKE2 = 'v1.36.4+rke2r1';
const REF = `${RUNTIME_IMAGE_REPO}:${runtimeImageTag(RKE2, 1)}`;
let tmp: string;

beforeAll(async () => {
  for (const t of ['go', 'zstd', 'skopeo']) await requireTool(t, t === 'go' ? ['version'] : ['--version']);
  tmp = await mkdtemp(path.join(os.tmpdir(), 'rke2-dropins-'));
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('runtime image reference', () => {
  it('is under the reserved .invalid registry host by default, and the drop-in says why', () => {
    expect(REF).toBe('kubelet-lxc.invalid/rke2-runtime:v1.36.4-rke2r1-lxc1');
    expect(resolvesNowhere(REF)).toBe(true);
    for (const pullable of ['kubelet-lxc/rke2-runtime:v1', 'docker.io/kubelet-lxc/rke2-runtime:v1', 'registry.example:5000/x:v1', 'invalid/x:v1']) expect(resolvesNowhere(pullable), pullable).toBe(false);
    const text = renderRuntimeImageDropIn({ targetRef: REF, rke2Version: RKE2, imageFiles: ['rke2-runtime-v1.36.4-rke2r1-lxc1.linux-<arch>.tar.zst'], standIn: false });
    expect((parseYaml(text) as Record<string, unknown>)['runtime-image']).toBe(REF);
    expect(text).toContain('# The registry host kubelet-lxc.invalid is reserved (.invalid, RFC 6761) and never resolves:');
    expect(text).toContain('If the tarball is missing the\n# agent fails to start instead of pulling');
    // a reference that can be pulled is called out as failing open
    const open = renderRuntimeImageDropIn({ targetRef: 'kubelet-lxc/rke2-runtime:v1.36.4-rke2r1-lxc1', rke2Version: RKE2, imageFiles: ['x.tar.zst'], standIn: false });
    expect(open).toContain('# WARNING: if the tarball is missing from agent/images/, RKE2 pulls kubelet-lxc/rke2-runtime:v1.36.4-rke2r1-lxc1');
  });

  it("RKE2's own loader finds it in the tarball, and a registry lookup of it fails", async () => {
    const platform = `linux/${HOST_ARCH}` as Platform;
    const kubelet = await buildFakeKubelet({ out: path.join(tmp, 'kubelet'), arch: HOST_ARCH, version: RKE2 });
    const base = path.join(tmp, 'base.tar');
    await makeStandInBaseArchive({ ref: 'rancher/rke2-runtime:v1.36.4-rke2r1', platform, outFile: base });
    const images = path.join(tmp, 'agent-images');
    const files = await buildRuntimeImage({ kubeletByPlatform: { [platform]: kubelet }, platform, baseArchive: base, baseRef: 'rancher/rke2-runtime:v1.36.4-rke2r1', targetRef: REF, outDir: images, mtime: new Date(0), log: captureLogger() });
    const snippet = await readFile(files[2]!.path, 'utf8');
    expect(snippet).toContain(`runtime-image: ${REF}\n`);
    const extract = await buildRke2Extract(path.join(tmp, 'rke2-extract'));
    const out = await rke2Extract(extract, images, REF, path.join(tmp, 'x'));
    expect(out.reference).toBe(REF);
    expect(await readFile(path.join(tmp, 'x', 'bin', 'kubelet'))).toEqual(await readFile(kubelet));
    // no tarball: the loader does not find it, and the registry it names does not exist
    const empty = path.join(tmp, 'empty-images');
    await mkdir(empty);
    const miss = await execa(extract, [empty, REF, path.join(tmp, 'y')], { reject: false });
    expect(miss.exitCode).toBe(1);
    const pull = await execa('skopeo', ['inspect', '--retry-times', '0', `docker://${REF}`], { reject: false });
    expect(pull.exitCode).not.toBe(0);
    expect(pull.stderr).toMatch(/kubelet-lxc\.invalid.*(no such host|server misbehaving|Name or service not known)/);
  });
});

describe('drop-in flags', () => {
  it('append the feature gate to RKE2\'s own (+=), and warn that a later plain kubelet-arg: erases the LXC flags', () => {
    const gate = LXC_KUBELET_ARGS.find((a) => a.arg.startsWith('feature-gates'))!;
    expect(gate.arg).toBe('feature-gates+=KubeletInUserNamespace=true');
    for (const text of [
      renderKubeletPathDropIn({ version: RKE2, rke2Version: RKE2, kubeletPath: '/usr/local/lib/kubelet-lxc/v1.36.4+rke2r1/kubelet' }),
      renderRuntimeImageDropIn({ targetRef: REF, rke2Version: RKE2, imageFiles: ['x.tar.zst'], standIn: false }),
    ]) {
      expect(text).toContain('  # - feature-gates+=KubeletInUserNamespace=true\n');
      expect(text).toContain('"+=" adds the gate to the --feature-gates RKE2 sets itself instead of replacing them');
      expect(text).toContain('# WARNING: a drop-in read after this one (a later name in config.yaml.d/) that sets a plain\n# "kubelet-arg:" or "kube-proxy-arg:" (no "+") replaces these lists, and the LXC flags are gone');
    }
  });

  it('the runtime-image drop-in warns that an RKE2 upgrade keeps the old containerd and kubelet', () => {
    const text = renderRuntimeImageDropIn({ targetRef: REF, rke2Version: RKE2, imageFiles: ['x.tar.zst'], standIn: false });
    expect(text).toMatch(/# UPGRADES: this drop-in pins the whole runtime image\. After an RKE2 upgrade the node still runs\n# this image's kubelet, containerd and runc, of the old release/);
    expect(text).toContain('With every RKE2 upgrade install the matching kubelet-lxc runtime image');
  });
});
