// The L2 lab's pure parts: the curated conformance list against itself and its tiers, the focus
// expression ginkgo gets, JUnit as ginkgo writes it, node quantities, and how an L2 run is judged
// and shown (a stock kubelet that never gets its node Ready is the negative control).
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { conformanceCodenames, conformanceKey, imageTagsOf, loadConformanceList, NEEDS_KVM, testsInTree, testsOfTier } from '../src/lab/l2/conformance.js';
import { cpusetCount, E2E_SUITE_NAME, flakeAttemptsArgs, focusRegex, l2RunPassed, quantityBytes, type L2RunResult } from '../src/lab/l2/driver.js';
import { imageRefsFrom, retagImageRefs } from '../src/lab/l2/images.js';
import { parseJunit, writeJunit } from '../src/lib/junit.js';
import { withL2 } from '../src/lab/results.js';
import { labVerdict, renderReport } from '../src/lab/index.js';
import type { LabProfileSummary, LabReport, LabRun } from '../src/lab/types.js';
import { PROJECT_ROOT } from '../src/manifest.js';

// folders for broken copies of the list, removed at the end
const scratch: string[] = [];
function scratchDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kubelet-lxc-test-conf-'));
  scratch.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

describe('conformance list', () => {
  const list = loadConformanceList();

  it('names each test once, with a known reason for each left out, and tiers of the promised size', () => {
    const ci = testsOfTier(list, 'ci');
    const full = testsOfTier(list, 'full');
    expect(ci).toHaveLength(10);
    expect(full.length).toBeGreaterThanOrEqual(30);
    expect(full).toEqual(expect.arrayContaining(ci));
    expect(testsOfTier(list, 'none')).toEqual([]);
    for (const t of full) expect(t.name, t.name).toMatch(/\[Conformance\]/);
    for (const t of full) expect(t.name, t.name).not.toMatch(/\[(Serial|Slow|Disruptive|Flaky)\]|\[Feature:/);
    const all = [...list.included, ...list.excluded].map((t) => t.name);
    expect(new Set(all).size).toBe(all.length);
    for (const e of list.excluded) expect(list.reasons[e.reason], `${e.name}: ${e.reason}`).toBeTruthy();
  });

  it('holds back for KVM only full-tier tests, each saying why, and refuses one in the ci tier', () => {
    const needKvm = list.included.filter((t) => t.needsKvm);
    for (const t of needKvm) {
      expect(t.tier, t.name).toBe('full');
      expect(t.needsKvm!.length, t.name).toBeGreaterThan(40);
    }
    const bad = structuredClone(list);
    bad.included.find((t) => t.tier === 'ci')!.needsKvm = 'too slow';
    const file = path.join(scratchDir(), 'conformance.json');
    writeFileSync(file, JSON.stringify(bad));
    expect(() => loadConformanceList(file)).toThrow(/a test that needs KVM cannot be in the ci tier: /);
  });

  it('leaves out, from the minor that demoted them on, the tests upstream dropped from conformance, and refuses one in the ci tier', () => {
    const demoted = list.included.filter((t) => t.leftConformance).map((t) => t.name);
    // v1.37 declares the two multi-container guaranteed resize tests with ginkgo.It
    expect(demoted).toHaveLength(2);
    for (const n of demoted) expect(n).toMatch(/^\[sig-node\] Pod InPlace Resize Container guaranteed pods with multiple containers /);
    const full = testsOfTier(list, 'full').map((t) => t.name);
    expect(testsOfTier(list, 'full', 'v1.36.4').map((t) => t.name)).toEqual(full);
    expect(testsOfTier(list, 'full', 'v1.35.4').map((t) => t.name)).toEqual(full);
    expect(testsOfTier(list, 'full', 'v1.37.1').map((t) => t.name)).toEqual(full.filter((n) => !demoted.includes(n)));
    expect(testsOfTier(list, 'full', 'v1.38.0-beta.0').map((t) => t.name)).toEqual(full.filter((n) => !demoted.includes(n)));
    expect(testsOfTier(list, 'ci', 'v1.37.1')).toEqual(testsOfTier(list, 'ci'));
    const bad = structuredClone(list);
    bad.included.find((t) => t.tier === 'ci')!.leftConformance = { in: '1.38', how: 'demoted' };
    const file = path.join(scratchDir(), 'conformance.json');
    writeFileSync(file, JSON.stringify(bad));
    expect(() => loadConformanceList(file)).toThrow(/a test some release no longer has cannot be in the ci tier: /);
    bad.included.find((t) => t.tier === 'ci')!.leftConformance = { in: 'v1.38', how: 'demoted' };
    writeFileSync(file, JSON.stringify(bad));
    expect(() => loadConformanceList(file)).toThrow(/leftConformance.*a minor such as "1\.37"/);
  });

  it('covers the kubelet paths the issue names in its CI tier', () => {
    const names = testsOfTier(list, 'ci').map((t) => t.name).join('\n');
    for (const re of [/Downward API .*node allocatable/, /poststart exec hook/, /remote command execution over websockets/, /retrieving logs .* over websockets/, /liveness probe/, /EmptyDir .*tmpfs/]) expect(names).toMatch(re);
  });

  it('gives the four images the tests expect, by their exact names', () => {
    const refs = imageRefsFrom(list.images.map((i) => i.name));
    expect(refs).toEqual({
      busybox: 'registry.k8s.io/e2e-test-images/busybox:1.37.0-1',
      agnhost: 'registry.k8s.io/e2e-test-images/agnhost:2.63.0',
      nonewprivs: 'registry.k8s.io/e2e-test-images/nonewprivs:1.4',
      pause: 'registry.k8s.io/pause:3.10.2',
    });
    expect(() => imageRefsFrom(['registry.k8s.io/pause:3.10.2'])).toThrow('lab/conformance.json lists no busybox image');
  });
});

describe('the list against another release', () => {
  // conformance.yaml and manifest.go as Kubernetes 1.37 writes them (tags reordered, folded, new image tags)
  const yaml137 = [
    '- testname: Downward API, default limits',
    "  codename: '[sig-node] Downward API should provide default limits.cpu/memory from",
    "    node allocatable [Conformance] [NodeConformance]'",
    '  description: Downward API MUST expose CPU request and Memory limits',
    "- testname: it''s quoted",
    "  codename: '[sig-node] Pods should get a host IP [Conformance] [NodeConformance]'",
    "- testname: x",
    "  codename: '[sig-apps] it''s a name with a quote [Conformance]'",
  ].join('\n');
  const manifest137 = [
    '\tconfigs[AgnhostPrev] = Config{list.PromoterE2eRegistry, "agnhost", "2.55"}',
    '\tconfigs[Agnhost] = Config{list.PromoterE2eRegistry, "agnhost", "2.66.1"}',
    '\tconfigs[BusyBox] = Config{list.PromoterE2eRegistry, "busybox", "1.37.0-2"}',
    '\tconfigs[Nonewprivs] = Config{list.PromoterE2eRegistry, "nonewprivs", "1.4"}',
    '\tconfigs[Pause] = Config{list.GcRegistry, "pause", "3.10.2"}',
  ].join('\n');

  it('reads folded and quoted codenames and matches names whatever the order of their tags', () => {
    const names = conformanceCodenames(yaml137);
    expect(names).toEqual([
      '[sig-node] Downward API should provide default limits.cpu/memory from node allocatable [Conformance] [NodeConformance]',
      '[sig-node] Pods should get a host IP [Conformance] [NodeConformance]',
      "[sig-apps] it's a name with a quote [Conformance]",
    ]);
    const list = loadConformanceList();
    const wanted = testsOfTier(list, 'ci').filter((t) => /default limits\.cpu|get a host IP/.test(t.name));
    expect(wanted).toHaveLength(2);
    expect(testsInTree(wanted, names, 'v1.37.1').map((t) => t.name)).toEqual(names.slice(0, 2));
    expect(conformanceKey('[a] x [B] [C]')).toBe(conformanceKey('[a] x [C] [B]'));
    expect(conformanceKey('[a] x [B] [Serial] [C]')).not.toBe(conformanceKey('[a] x [C] [B]'));
  });

  it('names every test the tree does not have', () => {
    const list = loadConformanceList();
    expect(() => testsInTree(testsOfTier(list, 'ci'), conformanceCodenames(yaml137), 'v1.37.1')).toThrow(/8 conformance test\(s\) of lab\/conformance\.json are not in v1\.37\.1's .*Kubelet when scheduling a busybox command/);
  });

  it("takes the images' tags from the tree's manifest.go", () => {
    const refs = imageRefsFrom(loadConformanceList().images.map((i) => i.name));
    expect(retagImageRefs(refs, imageTagsOf(manifest137))).toEqual({
      busybox: 'registry.k8s.io/e2e-test-images/busybox:1.37.0-2',
      agnhost: 'registry.k8s.io/e2e-test-images/agnhost:2.66.1',
      nonewprivs: 'registry.k8s.io/e2e-test-images/nonewprivs:1.4',
      pause: 'registry.k8s.io/pause:3.10.2',
    });
  });
});

describe('e2e focus', () => {
  it('selects exactly the named specs: suite name prefixed, every special character quoted, anchored', () => {
    const name = '[sig-node] Probing container should be restarted with a exec "cat /tmp/health" liveness probe [NodeConformance] [Conformance]';
    const re = new RegExp(focusRegex([name, '[sig-node] Pods should get a host IP [NodeConformance] [Conformance]']));
    expect(re.test(`${E2E_SUITE_NAME} ${name}`)).toBe(true);
    expect(re.test(name)).toBe(false);
    expect(re.test(`${E2E_SUITE_NAME} ${name} [Slow]`)).toBe(false);
    expect(re.test(`${E2E_SUITE_NAME} [sig-node] Pods should get a host IP [NodeConformance] [Conformance]`)).toBe(true);
    expect(re.test(`${E2E_SUITE_NAME} [sig-node] Pods should get a host IPv6 [NodeConformance] [Conformance]`)).toBe(false);
  });
});

describe('JUnit from ginkgo', () => {
  it('reads each spec with its status, time and failure message', () => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="3" disabled="0" errors="0" failures="1" time="80.5">
  <testsuite name="Kubernetes e2e suite" package="/x" tests="3" skipped="1" failures="1" errors="0" time="80.5">
    <testcase name="[It] [sig-node] Pods should get a host IP [NodeConformance] [Conformance]" classname="Kubernetes e2e suite" status="passed" time="12.25"></testcase>
    <testcase name="[It] [sig-node] Pods should be updated [NodeConformance] [Conformance]" classname="Kubernetes e2e suite" status="failed" time="60.1"><failure message="timed out waiting for the condition" type="failed">[FAILED] timed out waiting for the condition
In [It] at: pods.go:1</failure></testcase>
    <testcase name="[It] [sig-apps] Deployment x [Conformance]" classname="Kubernetes e2e suite" status="skipped" time="0"><skipped message="skipped"></skipped></testcase>
  </testsuite>
</testsuites>`;
    expect(parseJunit(xml)).toEqual([
      { name: '[sig-node] Pods should get a host IP [NodeConformance] [Conformance]', status: 'passed', seconds: 12.25 },
      { name: '[sig-node] Pods should be updated [NodeConformance] [Conformance]', status: 'failed', seconds: 60.1, message: 'timed out waiting for the condition' },
      { name: '[sig-apps] Deployment x [Conformance]', status: 'skipped', seconds: 0 },
    ]);
    expect(() => parseJunit('<html></html>')).toThrow('not a JUnit report');
  });

  it('reads a retried spec (ginkgo --flake-attempts) as passed on its second attempt with the first failure, and a message the e2e suite leaves out of the attribute', () => {
    // written by real ginkgo v2 (test/fixtures/ginkgo/flake_test.go.txt says how)
    const xml = readFileSync(path.join(PROJECT_ROOT, 'test', 'fixtures', 'ginkgo', 'junit-flake-attempts.xml'), 'utf8');
    const cases = parseJunit(xml);
    expect(cases.map((c) => [c.name, c.status, c.attempts])).toEqual([
      ['[sig-node] Pods should pass on its second attempt [Conformance]', 'passed', 2],
      ['[sig-node] Pods should always fail [Conformance]', 'failed', 2],
      ['[sig-node] Pods should pass [Conformance]', 'passed', undefined],
    ]);
    expect(cases[0]!.message).toMatch(/^failed to open websocket\nExpected\n\s+<string>: bad status/);
    expect(cases[1]!.message).toMatch(/^never\nExpected/);
    expect(cases[2]!.message).toBeUndefined();
    // the e2e suite writes <failure message=""> with the text inside
    const e2eStyle = xml.replace(/message="never[^"]*"/, 'message=""');
    expect(e2eStyle).not.toBe(xml);
    expect(parseJunit(e2eStyle)[1]!.message).toMatch(/^never\nExpected/);
    // what the lab writes for a release says the retry
    const out = parseJunit(writeJunit([{ name: 'run', cases }]));
    expect(out.map((c) => c.status)).toEqual(['passed', 'failed', 'passed']);
    expect(writeJunit([{ name: 'run', cases }])).toContain('passed on attempt 2; attempt 1 failed: failed to open websocket');
  });
});

describe('node quantities', () => {
  it('reads memory quantities and cpuset lists', () => {
    expect(quantityBytes('4028312Ki')).toBe(4028312 * 1024);
    expect(quantityBytes('3Gi')).toBe(3 * 1024 ** 3);
    expect(quantityBytes('12345')).toBe(12345);
    expect(quantityBytes('lots')).toBeNaN();
    expect(cpusetCount('0-1')).toBe(2);
    expect(cpusetCount('1,3')).toBe(2);
    expect(cpusetCount('0-3,8\n')).toBe(5);
    expect(cpusetCount('')).toBe(0);
  });
});

function l1Run(over: Partial<LabRun>): LabRun {
  return {
    id: '01-all-stock',
    profile: 'all',
    kubelet: 'stock',
    completed: true,
    profileApplied: true,
    endReason: 'host-done',
    containerManagerStarted: false,
    containerManagerFailed: true,
    healthz: false,
    healthzEverOk: false,
    podRunning: false,
    kubeletExited: false,
    kubeletExitCode: null,
    panicked: false,
    firstError: 'E1130 10:00:00.000000  1 kubelet.go:1] "Failed to start ContainerManager" err="strconv.Atoi: parsing \\"\\": invalid syntax"',
    errorLines: [],
    expectedErrorsMissing: [],
    passed: false,
    secondsToHealthz: null,
    secondsToRunning: null,
    seconds: 300,
    emptied: [],
    logDir: '/x',
    // kubelet-lxc-doctor in the container: the stock kubelet fails at C (all's first site)
    doctor: { problem: null, stockStarts: false, patchedStarts: true, stockErrors: ['strconv.Atoi: parsing "": invalid syntax'], firstCheck: 'C', checks: ['C', 'I', 'B', 'A', 'H'], stockErrorsMissing: [] },
    ...over,
  };
}

function l2Result(over: Partial<L2RunResult>): L2RunResult {
  return {
    apiserverReady: true,
    secondsToApiserver: 60,
    registered: true,
    secondsToRegistered: 80,
    ready: true,
    secondsToReady: 95,
    kubeletStarts: 1,
    kubeletExits: [],
    checks: [{ name: 'node Ready', ok: true, detail: 'after 95 s' }],
    nodeStatus: {},
    conformance: { tier: 'ci', results: [{ name: 't1', result: 'passed', seconds: 20 }], seconds: 30, junit: '/j.xml', exitCode: 0 },
    passed: true,
    problem: null,
    ...over,
  };
}

describe('judging an L2 run', () => {
  const profiles: LabProfileSummary[] = [
    { id: 'lxc-default', description: '', sites: [], expectStockFailure: false, reason: 'not parsed' },
    { id: 'all', description: '', sites: [], expectStockFailure: true, expectedStockErrors: ['strconv.Atoi: parsing ""'], reason: 'fails' },
  ];
  const clean = { problem: null, stockStarts: true, patchedStarts: true, stockErrors: [], firstCheck: null, checks: [], stockErrorsMissing: [] };
  const good = (id: string, profile: string, kubelet: 'stock' | 'patched') =>
    withL2(l1Run({ id, profile, kubelet, containerManagerStarted: true, containerManagerFailed: false, firstError: null, ...(profile === 'lxc-default' ? { doctor: clean } : {}) }), l2Result({}));

  it('passes the patched kubelet only with the node Ready, every check and every test passed, and no kubelet exit', () => {
    expect(good('02-all-patched', 'all', 'patched').passed).toBe(true);
    const exited = withL2(l1Run({ kubelet: 'patched', containerManagerStarted: true, containerManagerFailed: false }), l2Result({ kubeletExits: ['1'] }));
    expect(exited.passed).toBe(false);
    const failedTest = withL2(l1Run({ kubelet: 'patched', containerManagerStarted: true, containerManagerFailed: false }), l2Result({ passed: false }));
    expect(failedTest.passed).toBe(false);
    expect(withL2(l1Run({ kubelet: 'patched' }), undefined).passed).toBe(false);
  });

  it('counts a test held back for KVM under TCG neither as a failure nor as a pass', () => {
    const results = (...r: string[]) => ({ tier: 'full', results: r.map((result, i) => ({ name: `t${i}`, result, seconds: 1 })), seconds: 9, junit: null, exitCode: 0 });
    const base = { ready: true, checks: [{ name: 'node Ready', ok: true, detail: '' }] };
    expect(l2RunPassed({ ...base, conformance: results('passed', NEEDS_KVM) })).toBe(true);
    expect(l2RunPassed({ ...base, conformance: results('passed', 'not run') })).toBe(false);
    expect(l2RunPassed({ ...base, conformance: results('passed', 'failed', NEEDS_KVM) })).toBe(false);
    // nothing ran: nothing is proven
    expect(l2RunPassed({ ...base, conformance: results(NEEDS_KVM) })).toBe(false);
    expect(l2RunPassed({ ...base, conformance: null })).toBe(true);
    expect(l2RunPassed({ ...base, ready: false, conformance: null })).toBe(false);
  });

  it('takes a stock kubelet whose node never gets Ready, with the upstream error, as the negative control; a Ready one breaks it', () => {
    const stockAll = withL2(l1Run({}), l2Result({ registered: false, ready: false, kubeletStarts: 12, kubeletExits: ['1', '1'], checks: [], conformance: null, passed: false }));
    const runs = [good('01-lxc-default-stock', 'lxc-default', 'stock'), good('02-lxc-default-patched', 'lxc-default', 'patched'), stockAll, good('04-all-patched', 'all', 'patched')];
    expect(labVerdict({ profiles, runs })).toEqual({ ok: true, problems: [] });
    const readyStock = withL2(l1Run({}), l2Result({ passed: false, checks: [{ name: 'capacity cpu', ok: false, detail: 'node 0' }] }));
    const v = labVerdict({ profiles, runs: [runs[0]!, runs[1]!, readyStock, runs[3]!] });
    expect(v.ok).toBe(false);
    expect(v.problems.join('\n')).toMatch(/profile all: the stock kubelet does not fail it .*its node became Ready/);
  });

  it('shows the L2 table, the checks and the conformance table in the report', () => {
    const stockAll = withL2(l1Run({}), l2Result({ registered: false, ready: false, secondsToRegistered: null, secondsToReady: null, kubeletStarts: 12, kubeletExits: ['1', '1'], checks: [], conformance: null, passed: false }));
    const runs = [good('01-lxc-default-stock', 'lxc-default', 'stock'), good('02-lxc-default-patched', 'lxc-default', 'patched'), stockAll, good('04-all-patched', 'all', 'patched')];
    const base = {
      schema: 1 as const,
      level: 'L2' as const,
      startedAt: '2026-11-30T10:00:00.000Z',
      finishedAt: '2026-11-30T10:30:00.000Z',
      seconds: 1800,
      accel: 'tcg' as const,
      accelNote: null,
      accelFallback: null,
      guest: { key: 'k', cached: true, dir: '/g', versions: {}, kernelRelease: '6.12' },
      kubelets: { stock: { path: '/s', version: 'Kubernetes v1.36.4', sha256: 'a'.repeat(64) }, patched: { path: '/p', version: 'Kubernetes v1.36.4+rke2r1', sha256: 'b'.repeat(64) } },
      l2: { binaries: {}, images: { busybox: 'b', agnhost: 'a', nonewprivs: 'n', pause: 'p' }, datastore: 'sqlite:///db', conformanceTier: 'ci', kine: 'v0.16.4' },
      profiles,
      runs,
      steps: [],
      labProblems: [],
      guestRestarts: [],
    };
    const text = renderReport({ ...base, verdict: labVerdict(base) } as LabReport);
    expect(text).toMatch(/^kubelet-lxc lab \(smoke L2: server node\): PASS$/m);
    expect(text).toMatch(/^all\s+stock\s+fail\s+FAIL\s+fails \(C,I,B,A,H\)\s+no\s+no\s+-\s+-\s+2\s+"Failed to start ContainerManager"/m);
    expect(text).toMatch(/^all\s+patched\s+pass\s+pass\s+starts\s+80 s\s+95 s\s+1\/1\s+1\/1 \(ci\)\s+0/m);
    expect(text).toMatch(/^conformance, 04-all-patched \(tier ci, 30 s\):$/m);
    expect(text).toMatch(/^ {2}t1\s+passed\s+20$/m);
    expect(text).toContain('L2: kine v0.16.4 on sqlite:///db');

    // a test held back for KVM: shown as such, beside the count of those that ran
    const held = withL2(l1Run({ id: '04-all-patched', profile: 'all', kubelet: 'patched', containerManagerStarted: true, containerManagerFailed: false, firstError: null }), l2Result({
      conformance: { tier: 'full', results: [{ name: 't1', result: 'passed', seconds: 20 }, { name: 't2', result: NEEDS_KVM, seconds: 0, message: 'a 10m CPU limit' }], seconds: 30, junit: '/j.xml', exitCode: 0 },
    }));
    const withHeld = { ...base, runs: [runs[0]!, runs[1]!, stockAll, held] };
    const text2 = renderReport({ ...withHeld, verdict: labVerdict(withHeld) } as LabReport);
    expect(text2).toMatch(/^kubelet-lxc lab \(smoke L2: server node\): PASS$/m);
    expect(text2).toMatch(/^all\s+patched\s+pass\s+pass\s+starts\s+80 s\s+95 s\s+1\/1\s+1\/1 \(full\) \+1 needs KVM\s+0/m);
    expect(text2).toMatch(/^ {2}t2\s+needs KVM\s+0$/m);
    expect(text2).toContain('  t2: a 10m CPU limit');

    // under TCG a failed test gets a second attempt (and only there); a pass on it says so, with the first failure
    expect(flakeAttemptsArgs('tcg')).toEqual(['--flake-attempts=2']);
    expect(flakeAttemptsArgs('kvm')).toEqual([]);
    const retried = withL2(l1Run({ id: '04-all-patched', profile: 'all', kubelet: 'patched', containerManagerStarted: true, containerManagerFailed: false, firstError: null }), l2Result({
      conformance: { tier: 'ci', results: [{ name: 't1', result: 'passed', seconds: 20 }, { name: 't2', result: 'passed', seconds: 144, attempts: 2, message: 'Timed out after 120.001s.' }], seconds: 30, junit: '/j.xml', exitCode: 0 },
    }));
    const withRetry = { ...base, runs: [runs[0]!, runs[1]!, stockAll, retried] };
    const text3 = renderReport({ ...withRetry, verdict: labVerdict(withRetry) } as LabReport);
    expect(text3).toMatch(/^kubelet-lxc lab \(smoke L2: server node\): PASS$/m);
    expect(text3).toMatch(/^ {2}t2\s+passed on attempt 2\s+144$/m);
    expect(text3).toContain('  t2: attempt 1 failed: Timed out after 120.001s.');
  });
});

describe('JUnit for releases', () => {
  it('writes exactly the given cases and reads back the same, quotes in names included', async () => {
    const { writeJunit } = await import('../src/lib/junit.js');
    const cases = [
      { name: '[sig-node] Probing container should be restarted with a exec "cat /tmp/health" liveness probe [NodeConformance] [Conformance]', status: 'passed' as const, seconds: 61.5 },
      { name: '[sig-node] Pods should get a host IP [NodeConformance] [Conformance]', status: 'failed' as const, seconds: 12, message: 'timed out <waiting> & gone' },
    ];
    const xml = writeJunit([{ name: 'kubelet-lxc conformance', cases }]);
    expect(xml).toMatch(/<testsuite name="kubelet-lxc conformance" tests="2" failures="1" skipped="0" time="73.500">/);
    expect(parseJunit(xml)).toEqual(cases);
    // Go's encoder writes quotes as &#34;: read as quotes
    expect(parseJunit('<testsuites><testsuite><testcase name="[It] a &#34;b&#34;" status="passed" time="1"></testcase></testsuite></testsuites>')[0]!.name).toBe('a "b"');
  });
});

describe('e2e progress', () => {
  it('names each spec as it ends, from one process and from parallel processes', async () => {
    const { SpecProgress } = await import('../src/lab/l2/driver.js');
    const seen: unknown[] = [];
    const p = new SpecProgress((e) => seen.push(e));
    const one = ['------------------------------', '[sig-node] Pods should get a host IP [NodeConformance] [Conformance]', 'k8s.io/kubernetes/test/e2e/common/node/pods.go:205', '  STEP: Creating a kubernetes client', '• [52.030 seconds]'];
    const failed = ['------------------------------', '[sig-node] Pod InPlace Resize x [Conformance]', '  [FAILED] in [BeforeEach] - framework.go:372', '• [FAILED] [132.656 seconds]'];
    const parallel = ['------------------------------', '• [39.756 seconds]', '[sig-storage] ConfigMap should be consumable from pods in volume [NodeConformance] [Conformance]', 'k8s.io/kubernetes/test/e2e/common/storage/configmap_volume.go:47'];
    // a pass on the second attempt, as ginkgo v2 prints it (test/fixtures/ginkgo)
    const flaky = ['------------------------------', '↺ [FLAKEY TEST - TOOK 2 ATTEMPTS TO PASS] [144.100 seconds]', '[sig-node] Pods should support retrieving logs from the container over websockets [NodeConformance] [Conformance]'];
    for (const l of [...one, ...failed, ...parallel, ...flaky, '------------------------------', '• [1.000 seconds]']) p.line(l);
    p.flush();
    expect(seen).toEqual([
      { result: 'passed', seconds: 52.03, name: '[sig-node] Pods should get a host IP [NodeConformance] [Conformance]' },
      { result: 'failed', seconds: 132.656, name: '[sig-node] Pod InPlace Resize x [Conformance]' },
      { result: 'passed', seconds: 39.756, name: '[sig-storage] ConfigMap should be consumable from pods in volume [NodeConformance] [Conformance]' },
      { result: 'passed on attempt 2', seconds: 144.1, name: '[sig-node] Pods should support retrieving logs from the container over websockets [NodeConformance] [Conformance]' },
      { result: 'passed', seconds: 1 },
    ]);
  });
});
