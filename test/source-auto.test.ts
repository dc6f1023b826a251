// `--source auto` on a real git mirror that git itself refuses: git missing from the PATH, and a
// mirror owned by another user ("dubious ownership"). Both are problems of this machine, not of
// the network: the error shows git's own words and the fix, and never a silent fallback.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, mkdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { FIXTURE_DIR, FIXTURE_VERSION, cleanup, makeUpstreamRepo, runCli, tempDir, writeFixtureManifest, type UpstreamRepo } from './helpers/fixture.js';

let root: string;
let upstream: UpstreamRepo;
let plain: string;
let withPins: string;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('this test gives a repository to another user (chown): run it as root (CI does)');
  root = await tempDir('source-auto');
  upstream = await makeUpstreamRepo(root);
  const base = { commit: upstream.commits[FIXTURE_VERSION]!, goVersion: upstream.goVersion, patches: path.join(FIXTURE_DIR, 'patches') };
  plain = await writeFixtureManifest(path.join(root, 'releases'), base);
  const pin = { path: 'k8s.io/kubernetes', version: FIXTURE_VERSION, h1: `h1:${'A'.repeat(43)}=` };
  withPins = await writeFixtureManifest(path.join(root, 'releases-pins'), { ...base, goproxy: { root: pin, staging: [] } });
});

afterAll(async () => {
  if (root) await cleanup(root);
});

describe('--source auto', () => {
  it('says git is not installed, instead of "cannot reach" the mirror', async () => {
    // a PATH with the tools a dry run needs, but no git
    const bin = path.join(root, 'no-git-bin');
    await mkdir(bin);
    for (const tool of ['docker', 'go']) {
      const where = (await execa('sh', ['-c', `command -v ${tool}`], { reject: false })).stdout.trim();
      if (where) await symlink(where, path.join(bin, tool));
    }
    for (const m of [plain, withPins]) {
      const res = await runCli(['source', '--dry-run', '--source', 'auto', '--release', m, '--source-url', upstream.url, '--workdir', path.join(root, 'w')], { PATH: bin });
      expect(res.exitCode, res.stderr).toBe(1);
      expect(res.stderr).toMatch(/^error: source: git is not installed \(the source, patch and build stages run it\): apt-get install -y git/m);
      expect(res.stderr).not.toMatch(/cannot reach|not reachable/);
    }
  });

  it("shows git's own error for a mirror owned by another user, with the fix, and does not fall back", async () => {
    const foreign = path.join(root, 'foreign.git');
    await cp(upstream.bare, foreign, { recursive: true });
    await execa('chown', ['-R', '4242:4242', foreign]);
    for (const m of [plain, withPins]) {
      const res = await runCli(['source', '--dry-run', '--source', 'auto', '--release', m, '--source-url', `file://${foreign}`, '--workdir', path.join(root, 'w')], {
        HOME: root, // no global git config that trusts everything
        GIT_CONFIG_NOSYSTEM: '1',
      });
      expect(res.exitCode, res.stderr).toBe(1);
      expect(res.stderr).toMatch(/^error: source: git refuses file:\/\/.*foreign\.git: .*detected dubious ownership in repository/m);
      expect(res.stderr).toContain(`git config --global --add safe.directory ${foreign}`);
      expect(res.stderr).not.toMatch(/cannot reach|not reachable|using the Go module proxy/);
    }
  });
});
