// Every release manifest besides the default (whose full proof is kubelet.real.test.ts): its tree
// from the Go module proxy, its series applied with plain git am, and its stock-vs-patched site
// matrix in the builder container for its Go: each site test fails on stock and passes patched,
// each same-as-stock case agrees, the touched packages' own tests and go vet pass, and the
// series' doctor compiles against the tree with its tests passing. No kubelet is
// built here (npm run test:all-releases adds the build and the L1 lab).
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { listManifests, PROJECT_ROOT, resolveManifest } from '../src/manifest.js';
import { readSeries } from '../src/stages/patch.js';
import { readSiteTests } from '../src/stages/smoke/patchtests.js';
import { runCli } from './helpers/fixture.js';

const workdir = process.env.KUBELET_LXC_REAL_WORKDIR ?? path.join(PROJECT_ROOT, 'work');
const def = resolveManifest(undefined);
const others = listManifests().filter((m) => m.id !== def.id);

describe('every other release: the series applies and its matrix passes', () => {
  it('there are other releases (Kubernetes supports three minors)', () => {
    expect(new Set(listManifests().map((m) => m.data.kubernetes.version.split('.').slice(0, 2).join('.'))).size).toBeGreaterThanOrEqual(3);
  });

  for (const m of others) {
    it(`${m.id}: kubelet-lxc matrix`, async () => {
      const res = await runCli(['matrix', '--release', m.id, '--workdir', workdir, '--json'], {}, { stream: true });
      expect(res.exitCode, res.stderr.split('\n').slice(-30).join('\n')).toBe(0);
      const out = JSON.parse(res.stdout);
      expect(out.source.kind).toBe('goproxy');
      expect(out.patch.applied).toEqual((await readSeries(m.patchesDir)).map((s) => s.file));
      const spec = await readSiteTests(m.patchesDir);
      expect(out.matrix.ok, out.matrix.problems.join('\n')).toBe(true);
      // every site test of the series ran, and each failed on stock and passed patched
      expect(out.matrix.rows.length).toBeGreaterThanOrEqual(spec.siteTests.length);
      for (const r of out.matrix.rows) expect([r.stock, r.patched], `${m.id} site ${r.site} ${r.test}`).toEqual(['FAIL', 'PASS']);
      for (const s of out.matrix.same) expect(s.ok, `${m.id} ${s.test} ${s.case}: ${s.result}`).toBe(true);
      expect(out.matrix.vet.ok).toBe(true);
      // the series' doctor compiles against this minor's tree (its cAdvisor and cgroups) and its tests pass
      expect(out.doctor.ok, out.doctor.error).toBe(true);
      expect(out.doctor.tests).toBeGreaterThan(0);
    });
  }
});
