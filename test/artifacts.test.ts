// The package stage's artifact lists: what they accept, how several platforms' lists merge, the
// checksum files derived from them, and `kubelet-lxc artifacts` on bad input.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/manifest.js';
import { addArtifacts, artifactListName, describeArtifact, readArtifactLists, roleOf, writeArtifactList, writeChecksums } from '../src/stages/package/artifacts.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'kubelet-lxc-artifacts-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function listOne(platform: 'linux/amd64' | 'linux/arm64', files: [string, string, string][]): Promise<void> {
  const artifacts = [];
  for (const [name, kind, body] of files) {
    await writeFile(path.join(dir, name), body);
    artifacts.push(await describeArtifact(path.join(dir, name), kind, name.includes(platform.slice(6)) ? { platform } : {}));
  }
  await writeArtifactList(dir, { schema: 1, platform, artifacts });
}

function cli(args: string[]) {
  return execa(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'kubelet-lxc.js'), 'artifacts', ...args], { reject: false, all: true });
}

describe('artifact lists', () => {
  it('tells lists, derived checksum files and their signatures from artifacts by name', () => {
    expect(['artifacts-linux-amd64.json', 'SHA256SUMS', 'SHA512SUMS', 'sha256sum-arm64.txt', 'SHA256SUMS.sigstore.json', 'kubelet-linux-amd64.tar.gz', 'x.tar.gz.sha256'].map(roleOf)).toEqual([
      'list',
      'derived-sums',
      'derived-sums',
      'derived-sums',
      'sums-companion',
      'artifact',
      'artifact',
    ]);
  });

  it('merges the platforms\' lists; a shared file must be the same file in each, and checksums cover everything', async () => {
    await listOne('linux/amd64', [['kubelet-linux-amd64.tar.gz', 'kubelet-tarball', 'a'], ['rke2-kubelet-lxc.yaml', 'rke2-config', 'same']]);
    await listOne('linux/arm64', [['kubelet-linux-arm64.tar.gz', 'kubelet-tarball', 'b'], ['rke2-kubelet-lxc.yaml', 'rke2-config', 'same']]);
    const { artifacts, lists } = await readArtifactLists(dir);
    expect([...lists.keys()]).toEqual(['artifacts-linux-amd64.json', 'artifacts-linux-arm64.json']);
    expect(artifacts.map((a) => a.name)).toEqual(['kubelet-linux-amd64.tar.gz', 'kubelet-linux-arm64.tar.gz', 'rke2-kubelet-lxc.yaml']);
    expect(await writeChecksums(dir)).toEqual(['sha256sum-amd64.txt', 'sha512sum-amd64.txt', 'sha256sum-arm64.txt', 'sha512sum-arm64.txt', 'SHA256SUMS', 'SHA512SUMS']);
    expect(await readFile(path.join(dir, 'sha256sum-arm64.txt'), 'utf8')).toMatch(/^[0-9a-f]{64} {2}kubelet-linux-arm64\.tar\.gz\n$/);
    // the real tools agree, over 3 artifacts, 2 lists and 4 per-platform sums
    for (const [tool, file] of [['sha256sum', 'SHA256SUMS'], ['sha512sum', 'SHA512SUMS']] as const) {
      const r = await execa(tool, ['-c', file], { cwd: dir });
      expect(r.stdout.split('\n').filter((l) => l.endsWith(': OK'))).toHaveLength(9);
    }

    // the arm64 job built a different snippet: the folders do not fit together
    await listOne('linux/arm64', [['kubelet-linux-arm64.tar.gz', 'kubelet-tarball', 'b'], ['rke2-kubelet-lxc.yaml', 'rke2-config', 'other']]);
    await expect(readArtifactLists(dir)).rejects.toThrow('rke2-kubelet-lxc.yaml is listed by artifacts-linux-amd64.json and by artifacts-linux-arm64.json with different contents');
  });

  it('refuses a list that is not JSON, does not fit the schema, has another platform\'s name or lists a checksum name', async () => {
    await writeFile(path.join(dir, artifactListName('linux/amd64')), '{');
    await expect(readArtifactLists(dir)).rejects.toThrow(/artifacts-linux-amd64\.json is not JSON/);
    await writeFile(path.join(dir, artifactListName('linux/amd64')), JSON.stringify({ schema: 1, platform: 'linux/amd64', artifacts: [{ name: 'k', kind: 'x', size: -1, sha256: 'no', sha512: 'no', standIn: false }] }));
    await expect(readArtifactLists(dir)).rejects.toThrow(/is not valid:\n {2}artifacts\.0\.size: [^\n]+\n {2}artifacts\.0\.sha256/);
    await writeFile(path.join(dir, artifactListName('linux/amd64')), JSON.stringify({ schema: 1, platform: 'linux/arm64', artifacts: [] }));
    await expect(readArtifactLists(dir)).rejects.toThrow('artifact list artifacts-linux-amd64.json is for linux/arm64: its name must be artifacts-linux-arm64.json');
    await writeFile(path.join(dir, artifactListName('linux/amd64')), JSON.stringify({ schema: 1, platform: 'linux/amd64', artifacts: [{ name: 'SHA256SUMS', kind: 'x', size: 0, sha256: '0'.repeat(64), sha512: '0'.repeat(128), standIn: false }] }));
    await expect(readArtifactLists(dir)).rejects.toThrow('lists SHA256SUMS, a name kept for the lists and checksum files');
  });

  it('adds a later file to one platform\'s list, replacing one of the same name and kind, never one of another kind', async () => {
    await listOne('linux/amd64', [['kubelet-linux-amd64.tar.gz', 'kubelet-tarball', 'a']]);
    const src = path.join(dir, 'src');
    await mkdir(src);
    await writeFile(path.join(src, 'conformance.xml'), '<testsuites/>');
    const [added] = await addArtifacts(dir, 'linux/amd64', [path.join(src, 'conformance.xml')], 'conformance-junit');
    expect(added).toMatchObject({ name: 'conformance.xml', kind: 'conformance-junit', platform: 'linux/amd64', size: 13, standIn: false });
    await writeFile(path.join(src, 'conformance.xml'), '<testsuites tests="1"/>');
    await addArtifacts(dir, 'linux/amd64', [path.join(src, 'conformance.xml')], 'conformance-junit');
    const list = (await readArtifactLists(dir)).artifacts;
    expect(list.map((a) => [a.name, a.size])).toEqual([['conformance.xml', 23], ['kubelet-linux-amd64.tar.gz', 1]]);
    await writeFile(path.join(src, 'kubelet-linux-amd64.tar.gz'), 'x');
    await expect(addArtifacts(dir, 'linux/amd64', [path.join(src, 'kubelet-linux-amd64.tar.gz')], 'conformance-junit')).rejects.toThrow('kubelet-linux-amd64.tar.gz is already in dist/ as a kubelet-tarball');
    await expect(addArtifacts(dir, 'linux/arm64', [path.join(src, 'conformance.xml')], 'conformance-junit')).rejects.toThrow('artifacts-linux-arm64.json does not exist');
  });

  it('kubelet-lxc artifacts: bad input gets a message naming the thing and the fix', async () => {
    const missing = await cli(['sums', '--dist', path.join(dir, 'nope')]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain(`${path.join(dir, 'nope')} does not exist: give the dist/ folder of a build`);
    const platform = await cli(['add', '--dist', dir, '--platform', 'linux/s390x', '--kind', 'x', 'f']);
    expect(platform.stderr).toContain('unknown platform "linux/s390x"; known: linux/amd64, linux/arm64');
    const kind = await cli(['add', '--dist', dir, '--platform', 'linux/amd64', '--kind', 'Bad Kind', 'f']);
    expect(kind.stderr).toContain('--kind "Bad Kind": use lower-case letters, digits and "-"');
    const file = await cli(['add', '--dist', dir, '--platform', 'linux/amd64', '--kind', 'x', path.join(dir, 'absent.xml')]);
    expect(file.stderr).toContain(`${path.join(dir, 'absent.xml')} does not exist`);
    await listOne('linux/amd64', [['kubelet-linux-amd64.tar.gz', 'kubelet-tarball', 'a']]);
    const sums = await cli(['sums', '--dist', dir, '--json']);
    expect(sums.exitCode, sums.all).toBe(0);
    expect(JSON.parse(sums.stdout)).toEqual({ written: ['sha256sum-amd64.txt', 'sha512sum-amd64.txt', 'SHA256SUMS', 'SHA512SUMS'] });
    const listed = await cli(['list', '--dist', dir]);
    expect(listed.stdout).toMatch(/^kubelet-linux-amd64\.tar\.gz {2}kubelet-tarball {2}linux\/amd64 {2}1 {2}sha256:[0-9a-f]{64}$/);
  });
});
