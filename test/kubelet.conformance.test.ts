// npm run test:conformance: the whole curated conformance list (lab/conformance.json, tier full)
// against the patched kubelet on the L2 lab's server node under every fault at once, with the
// stock kubelet beside it as the negative control. Reports: JUnit and a table per run. Under TCG the
// tests the list marks needsKvm are held back and reported as such (never as passed).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT, resolveManifest } from '../src/manifest.js';
import { conformanceKey, loadConformanceList, NEEDS_KVM, testsOfTier } from '../src/lab/l2/conformance.js';
import type { LabReport } from '../src/lab/types.js';
import { runCli } from './helpers/fixture.js';

const manifest = resolveManifest(undefined);
const workdir = process.env.KUBELET_LXC_REAL_WORKDIR ?? path.join(PROJECT_ROOT, 'work');

describe(`conformance ${manifest.id}`, () => {
  it('passes every curated conformance test with the patched kubelet under every fault; the stock kubelet never gets its node Ready', async () => {
    // the release's own conformance suite: tests upstream demoted by its minor are not run
    const full = testsOfTier(loadConformanceList(), 'full', manifest.data.kubernetes.version);
    expect(full.length).toBeGreaterThanOrEqual(30);
    const res = await runCli(['lab', '--level', 'L2', '--profile', 'all', '--conformance', 'full', '--workdir', workdir, '--json'], {}, { stream: true });
    const report = JSON.parse(await readFile(path.join(workdir, 'out', manifest.id, 'reports', 'lab-l2', 'lab-report.json'), 'utf8')) as LabReport;
    const patched = report.runs.find((r) => r.kubelet === 'patched')!;
    const stock = report.runs.find((r) => r.kubelet === 'stock')!;
    // the run spells each test as the release's tree does (tag order differs between minors),
    // so names are compared with their tags in one order
    const results = (patched.l2?.conformance?.results ?? []).map((r) => ({ ...r, key: conformanceKey(r.name) }));
    expect(results.map((r) => r.key).sort()).toEqual(full.map((t) => conformanceKey(t.name)).sort());
    // held back only under TCG, and then exactly the tests the list says cannot pass on an emulated CPU
    const mustHold = report.accel === 'tcg' ? full.filter((t) => t.needsKvm).map((t) => conformanceKey(t.name)) : [];
    expect(results.filter((r) => r.result === NEEDS_KVM).map((r) => r.key).sort()).toEqual(mustHold.sort());
    expect(results.filter((r) => r.result !== 'passed' && !mustHold.includes(r.key)).map((r) => `${r.name}: ${r.result} ${r.message ?? ''}`)).toEqual([]);
    expect(patched.l2?.checks.filter((c) => !c.ok)).toEqual([]);
    expect(stock.l2?.ready).toBe(false);
    expect(stock.expectedErrorsMissing).toEqual([]);
    expect(report.verdict.problems).toEqual([]);
    expect(res.exitCode).toBe(0);
  });
});
