// makeSpdxSbom on real Go binaries built here (module mode and -mod=vendor), validated by the
// SPDX project's own validator (spdx-tools, installed from PyPI into .work/tools/spdx when missing).
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/manifest.js';
import { h1ToSha256Hex, makeSpdxSbom, moduleHashesFromGoSum, parseGoVersionM } from '../src/stages/package/sbom.js';

const SPDX_TOOLS = 'spdx-tools==0.8.5';
const VENV = path.join(PROJECT_ROOT, '.work', 'tools', 'spdx');
const PYSPDXTOOLS = path.join(VENV, 'bin', 'pyspdxtools');
// A small real dependency, fetched through the Go module proxy; go verifies it against this go.sum.
const DEP = { path: 'golang.org/x/mod', version: 'v0.17.0', h1: 'h1:zY54UmvipHiNd+pm+m0x9KhZ9hl1/7QNMyxXbc6ICqA=' };
const GO_SUM = `${DEP.path} ${DEP.version} ${DEP.h1}\n${DEP.path} ${DEP.version}/go.mod h1:hTbmBsO62+eylJbnUtE2MGJUyE7QWk4xUqPFrRgJ+7c=\n`;
const CREATED = new Date('2026-01-01T00:00:00Z');

let root: string;

async function ensureSpdxTools(): Promise<string> {
  if (existsSync(PYSPDXTOOLS)) return PYSPDXTOOLS;
  try {
    await execa('python3', ['-m', 'venv', VENV]);
    await execa(path.join(VENV, 'bin', 'pip'), ['install', '--quiet', SPDX_TOOLS], { timeout: 300_000 });
  } catch (err) {
    throw new Error(
      `the SPDX validator could not be installed (${(err as Error).message.split('\n')[0]}).\n` +
        `Install it by hand: python3 -m venv ${VENV} && ${VENV}/bin/pip install ${SPDX_TOOLS}`,
    );
  }
  return PYSPDXTOOLS;
}

/** Write a tiny module that imports DEP, and build it (optionally vendored) with -trimpath. */
async function buildHello(dir: string, vendor: boolean): Promise<{ binary: string; sha256: string; goVersionM: string }> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'go.mod'), `module example.com/hello\n\ngo 1.22\n\nrequire ${DEP.path} ${DEP.version}\n`);
  await writeFile(path.join(dir, 'go.sum'), GO_SUM);
  await writeFile(
    path.join(dir, 'main.go'),
    'package main\n\nimport (\n\t"fmt"\n\n\t"golang.org/x/mod/semver"\n)\n\nfunc main() { fmt.Println(semver.IsValid("v1.36.4+rke2r1")) }\n',
  );
  const env = { GOFLAGS: '', GOTOOLCHAIN: 'local', CGO_ENABLED: '0' };
  if (vendor) await execa('go', ['mod', 'vendor'], { cwd: dir, env });
  const binary = path.join(dir, 'hello');
  await execa('go', ['build', ...(vendor ? ['-mod=vendor'] : ['-mod=mod']), '-trimpath', '-ldflags=-s -w -buildid=', '-o', binary, '.'], { cwd: dir, env });
  const goVersionM = (await execa('go', ['version', '-m', binary])).stdout;
  const sha256 = (await execa('sha256sum', [binary])).stdout.split(' ')[0]!;
  return { binary, sha256, goVersionM };
}

async function validate(doc: object, name: string): Promise<string> {
  const file = path.join(root, `${name}.spdx.json`);
  await writeFile(file, `${JSON.stringify(doc, null, 2)}\n`);
  const tool = await ensureSpdxTools();
  const r = await execa(tool, ['-i', file], { reject: false, all: true });
  expect(r.exitCode, r.all).toBe(0);
  return r.all;
}

type Pkg = { SPDXID: string; name: string; versionInfo?: string; checksums?: { algorithm: string; checksumValue: string }[]; comment?: string; externalRefs?: { referenceLocator: string }[] };
type Doc = { packages: Pkg[]; relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[]; documentNamespace: string; creationInfo: { created: string } };

function expectWellLinked(doc: Doc) {
  const ids = new Set(doc.packages.map((p) => p.SPDXID));
  expect(ids.size).toBe(doc.packages.length);
  for (const r of doc.relationships) {
    expect(r.spdxElementId === 'SPDXRef-DOCUMENT' || ids.has(r.spdxElementId), r.spdxElementId).toBe(true);
    expect(ids.has(r.relatedSpdxElement), r.relatedSpdxElement).toBe(true);
  }
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'kubelet-lxc-sbom-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('makeSpdxSbom on a real Go binary', () => {
  it('module-mode build: every module with its version and hash from the build info; valid SPDX 2.3', async () => {
    const b = await buildHello(path.join(root, 'mod'), false);
    const info = parseGoVersionM(b.goVersionM);
    expect(info.deps).toEqual([{ path: DEP.path, version: DEP.version, sum: DEP.h1 }]);
    const doc = makeSpdxSbom({ name: 'hello-linux-amd64', version: 'v1.0.0', binaryPath: b.binary, sha256: b.sha256, goVersionM: b.goVersionM, created: CREATED }) as unknown as Doc;
    await validate(doc, 'mod');
    expectWellLinked(doc);
    const app = doc.packages[0]!;
    expect(app.name).toBe('hello-linux-amd64');
    expect(app.versionInfo).toBe('v1.0.0');
    expect(app.checksums).toEqual([{ algorithm: 'SHA256', checksumValue: b.sha256 }]);
    expect(app.comment).toContain('-trimpath=true');
    const dep = doc.packages.find((p) => p.name === DEP.path)!;
    expect(dep.versionInfo).toBe(DEP.version);
    // The h1 hash is a base64 SHA-256: the checksum is the same 32 bytes in hex.
    expect(dep.checksums).toEqual([{ algorithm: 'SHA256', checksumValue: Buffer.from(DEP.h1.slice(3), 'base64').toString('hex') }]);
    expect(dep.comment).toContain(`${DEP.h1} from the binary's build info`);
    expect(dep.externalRefs?.[0]?.referenceLocator).toBe('pkg:golang/golang.org/x/mod@v0.17.0');
    const goVersion = (await execa('go', ['env', 'GOVERSION'])).stdout;
    expect(doc.packages.find((p) => p.name === 'stdlib')?.versionInfo).toBe(goVersion);
    expect(doc.packages.find((p) => p.name === 'example.com/hello')?.comment).toContain('"(devel)"');
    expect(doc.relationships[0]).toEqual({ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: app.SPDXID });
    expect(doc.creationInfo.created).toBe('2026-01-01T00:00:00Z');
  });

  it('-mod=vendor build: the build info has no hashes, so they come from go.sum (or are marked unknown)', async () => {
    const dir = path.join(root, 'vendored');
    const b = await buildHello(dir, true);
    expect(parseGoVersionM(b.goVersionM).deps).toEqual([{ path: DEP.path, version: DEP.version }]);

    const bare = makeSpdxSbom({ name: 'hello', version: 'v1.0.0', binaryPath: b.binary, sha256: b.sha256, goVersionM: b.goVersionM, created: CREATED }) as unknown as Doc;
    await validate(bare, 'vendored-bare');
    const bareDep = bare.packages.find((p) => p.name === DEP.path)!;
    expect(bareDep.checksums).toBeUndefined();
    expect(bareDep.comment).toContain('no module hash known');

    const modules = moduleHashesFromGoSum(await readFile(path.join(dir, 'go.sum'), 'utf8'));
    expect(modules).toEqual([{ ...DEP, source: 'go.sum of the build tree' }]);
    const doc = makeSpdxSbom({
      name: 'hello',
      version: 'v1.0.0',
      binaryPath: b.binary,
      sha256: b.sha256,
      goVersionM: b.goVersionM,
      modules,
      mainModule: { version: 'v1.0.0', h1: 'h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', note: 'With the project patch series applied.' },
      created: CREATED,
    }) as unknown as Doc;
    await validate(doc, 'vendored');
    expectWellLinked(doc);
    const dep = doc.packages.find((p) => p.name === DEP.path)!;
    expect(dep.checksums).toEqual([{ algorithm: 'SHA256', checksumValue: h1ToSha256Hex(DEP.h1) }]);
    expect(dep.comment).toContain('from go.sum of the build tree (the build info has none: a -mod=vendor build)');
    const main = doc.packages.find((p) => p.name === 'example.com/hello')!;
    expect(main.versionInfo).toBe('v1.0.0');
    expect(main.comment).toContain('With the project patch series applied.');
  });

  it('is deterministic: the same build in another folder gives the same bytes; another binary another namespace', async () => {
    const a = await buildHello(path.join(root, 'det-a'), true);
    const b = await buildHello(path.join(root, 'det-b', 'nested'), true);
    expect(a.sha256).toBe(b.sha256);
    const mk = (x: typeof a, sha = x.sha256) =>
      JSON.stringify(makeSpdxSbom({ name: 'hello', version: 'v1.0.0', binaryPath: x.binary, sha256: sha, goVersionM: x.goVersionM, modules: [DEP], created: CREATED }));
    expect(mk(a)).toBe(mk(b));
    const other = JSON.parse(mk(a, createHash('sha256').update('other').digest('hex'))) as Doc;
    expect(other.documentNamespace).not.toBe((JSON.parse(mk(a)) as Doc).documentNamespace);
    expect(other.documentNamespace).toMatch(/^https:\/\/kubelet-lxc\.invalid\/spdx\/hello-v1\.0\.0-[0-9a-f]{32}$/);
  });

  it('refuses a supplied hash that contradicts the build info', async () => {
    const b = await buildHello(path.join(root, 'conflict'), false);
    const wrong = { ...DEP, h1: 'h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', source: 'release manifest pin' };
    expect(() =>
      makeSpdxSbom({ name: 'hello', version: 'v1.0.0', binaryPath: b.binary, sha256: b.sha256, goVersionM: b.goVersionM, modules: [wrong], created: CREATED }),
    ).toThrow(/built from golang\.org\/x\/mod@v0\.17\.0 h1:zY54.*but release manifest pin say/);
  });
});

describe('parseGoVersionM', () => {
  it('reads replacements by module and by local directory, as Kubernetes staging modules appear', () => {
    const text = [
      '/tmp/x/kubelet: go1.26.7',
      '\tpath\tk8s.io/kubernetes/cmd/kubelet',
      '\tmod\tk8s.io/kubernetes\t(devel)\t',
      '\tdep\tk8s.io/api\tv0.0.0',
      '\t=>\t./staging/src/k8s.io/api\t(devel)\t',
      '\tdep\tgithub.com/a/b\tv1.0.0',
      '\t=>\tgithub.com/fork/b\tv1.0.1\th1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=',
      '\tbuild\t-ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v1.36.4+rke2r1"',
      '\tbuild\tGOARCH=arm64',
      '\tbuild\tGOOS=linux',
    ].join('\n');
    const info = parseGoVersionM(text);
    expect(info.goVersion).toBe('go1.26.7');
    expect(info.deps[0]).toEqual({ path: 'k8s.io/api', version: 'v0.0.0', replace: { path: './staging/src/k8s.io/api', version: '(devel)' } });
    expect(info.settings[0]).toEqual(['-ldflags', '"-s -w -X k8s.io/component-base/version.gitVersion=v1.36.4+rke2r1"']);
    const doc = makeSpdxSbom({ name: 'kubelet-linux-arm64', version: 'v1.36.4+rke2r1', binaryPath: '/tmp/x/kubelet', sha256: 'a'.repeat(64), goVersionM: text, created: CREATED }) as unknown as Doc;
    expectWellLinked(doc);
    const api = doc.packages.find((p) => p.name === 'k8s.io/api')!;
    expect(api.checksums).toBeUndefined();
    expect(api.comment).toContain("replaced by the local directory ./staging/src/k8s.io/api, part of the main module's source tree");
    const fork = doc.packages.find((p) => p.name === 'github.com/fork/b')!;
    expect(fork.versionInfo).toBe('v1.0.1');
    expect(fork.comment).toContain('Replaces github.com/a/b v1.0.0');
    expect(doc.packages[0]!.comment).toContain('for linux/arm64');
    expect(JSON.stringify(doc)).not.toContain('/tmp/x');
  });
});
