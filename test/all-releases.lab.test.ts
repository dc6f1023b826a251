// npm run test:all-releases: every release besides the default, built for linux/amd64 (patched
// and stock kubelet, the doctor) with its stock-vs-patched matrix and the L1 lab, in the guest
// with the containerd that every minor runs on (containerd 2, as RKE2 ships). The default's full
// proof, L2 and conformance included, is npm run test:real.
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { listManifests, PROJECT_ROOT, resolveManifest } from '../src/manifest.js';
import { runCli } from './helpers/fixture.js';
import type { LabReport } from '../src/lab/types.js';

const workdir = process.env.KUBELET_LXC_REAL_WORKDIR ?? path.join(PROJECT_ROOT, 'work');
const def = resolveManifest(undefined);
const others = listManifests().filter((m) => m.id !== def.id);

describe('every other release: built, proved by its matrix, and started in the L1 lab where its stock kubelet dies', () => {
  for (const m of others) {
    it(`${m.id}: build --platform linux/amd64 --patch-tests --lab L1`, async () => {
      const res = await runCli(['build', '--release', m.id, '--workdir', workdir, '--platform', 'linux/amd64', '--patch-tests', '--lab', 'L1', '--json'], {}, { stream: true });
      expect(res.exitCode, res.stderr.split('\n').slice(-30).join('\n')).toBe(0);
      const out = JSON.parse(res.stdout);
      const patched = out.binaries.find((b: { program: string; variant: string }) => b.program === 'kubelet' && b.variant === 'patched');
      expect(patched.version).toBe(m.data.stamp.version);
      for (const level of ['L0', 'patch-tests', 'L1']) {
        const checks = out.smoke.filter((c: { level: string }) => c.level === level);
        expect(checks.length, level).toBeGreaterThan(0);
        expect(checks.filter((c: { ok: boolean }) => !c.ok), level).toEqual([]);
      }
      const report = JSON.parse(await readFile(path.join(workdir, 'out', m.id, 'reports', 'lab', 'lab-report.json'), 'utf8')) as LabReport;
      expect(report.verdict.ok).toBe(true);
      // the negative control: the stock kubelet failed in the profiles meant to break it
      expect(report.runs.filter((r) => r.kubelet === 'stock' && !r.passed).length).toBeGreaterThan(0);
      for (const r of report.runs) expect(r.kubelet === 'stock' ? r.doctor!.stockStarts : r.doctor!.patchedStarts, `${r.id}: the doctor's prediction`).toBe(r.passed);
    });
  }
});
