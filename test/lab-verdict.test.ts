import { describe, expect, it } from 'vitest';
import { labVerdict } from '../src/lab/index.js';
import type { LabProfileSummary, LabRun } from '../src/lab/types.js';

const profiles: LabProfileSummary[] = [
  { id: 'lxc-default', description: 'untouched', sites: [], expectStockFailure: false, reason: 'nothing empty on the start path' },
  { id: 'H', description: 'sysctls', sites: ['H'], expectStockFailure: true, expectedStockErrors: ['Failed to start ContainerManager', 'strconv.Atoi: parsing "": invalid syntax'], reason: 'fatal' },
  { id: 'I', description: 'pid_max', sites: ['I'], expectStockFailure: true, reason: 'panic' },
];

const H_FATAL =
  'E1124 10:47:34.233320     224 kubelet.go:1821] "Failed to start ContainerManager" err="strconv.Atoi: parsing \\"\\": invalid syntax"';

function pass(profile: string, kubelet: 'stock' | 'patched'): LabRun {
  return {
    id: `${profile}-${kubelet}`,
    profile,
    kubelet,
    completed: true,
    profileApplied: true,
    endReason: 'stable',
    containerManagerStarted: true,
    containerManagerFailed: false,
    healthz: true,
    healthzEverOk: true,
    podRunning: true,
    kubeletExited: false,
    kubeletExitCode: null,
    panicked: false,
    firstError: null,
    errorLines: [],
    expectedErrorsMissing: null,
    passed: true,
    secondsToHealthz: 5,
    secondsToRunning: 20,
    seconds: 45,
    emptied: [],
    logDir: '/tmp/x',
  };
}

function fail(profile: string, kubelet: 'stock' | 'patched', line = H_FATAL, missing: string[] | null = null): LabRun {
  return {
    ...pass(profile, kubelet),
    endReason: 'kubelet-exited',
    containerManagerStarted: false,
    containerManagerFailed: true,
    healthz: false,
    podRunning: false,
    kubeletExited: true,
    kubeletExitCode: 1,
    firstError: line,
    errorLines: [line],
    expectedErrorsMissing: missing,
    passed: false,
  };
}

const good = (): LabRun[] => [
  pass('lxc-default', 'stock'),
  pass('lxc-default', 'patched'),
  fail('H', 'stock', H_FATAL, []),
  pass('H', 'patched'),
  { ...fail('I', 'stock', 'panic: runtime error: slice bounds out of range [:-1]'), panicked: true },
  pass('I', 'patched'),
];

describe('labVerdict', () => {
  it('is ok when the patched kubelet passes everything and the stock kubelet fails exactly the fault profiles', () => {
    expect(labVerdict({ profiles, runs: good() })).toEqual({ ok: true, problems: [] });
  });

  it('fails when the patched kubelet fails a profile', () => {
    const runs = good().map((r) => (r.profile === 'H' && r.kubelet === 'patched' ? fail('H', 'patched') : r));
    const v = labVerdict({ profiles, runs });
    expect(v.ok).toBe(false);
    expect(v.problems).toEqual([expect.stringMatching(/^profile H: the patched kubelet fails: ContainerManager did not start: .*Failed to start ContainerManager/)]);
  });

  it('fails when the patched kubelet starts but the pod never runs', () => {
    const runs = good().map((r) => (r.profile === 'I' && r.kubelet === 'patched' ? { ...r, passed: false, podRunning: false, endReason: 'deadline' } : r));
    expect(labVerdict({ profiles, runs }).problems).toEqual(['profile I: the patched kubelet fails: static pod not Running (run ended: deadline)']);
  });

  it('fails when the stock kubelet survives a profile meant to break it (the negative control)', () => {
    const runs = good().map((r) => (r.profile === 'H' && r.kubelet === 'stock' ? pass('H', 'stock') : r));
    const v = labVerdict({ profiles, runs });
    expect(v.ok).toBe(false);
    expect(v.problems[0]).toMatch(/profile H: the stock kubelet does not fail it \(negative control/);
  });

  it('fails when the stock kubelet fails without the upstream error text', () => {
    const other = 'E1124 10:00:00.000000 1 server.go:1] "command failed" err="failed to run Kubelet: something else"';
    const runs = good().map((r) =>
      r.profile === 'H' && r.kubelet === 'stock' ? fail('H', 'stock', other, ['Failed to start ContainerManager', 'strconv.Atoi: parsing "": invalid syntax']) : r,
    );
    expect(labVerdict({ profiles, runs }).problems).toEqual([
      'profile H: the stock kubelet fails, but its log lacks the upstream error text "Failed to start ContainerManager", "strconv.Atoi: parsing \\"\\": invalid syntax": ' + other,
    ]);
  });

  it('without a whole-log check, looks for the texts in the error lines, through klog quote escaping', () => {
    const runs = good().map((r) => (r.profile === 'H' && r.kubelet === 'stock' ? fail('H', 'stock', H_FATAL, null) : r));
    expect(labVerdict({ profiles, runs }).ok).toBe(true);
  });

  it('fails when the stock kubelet fails a profile that should not break it', () => {
    const runs = good().map((r) => (r.profile === 'lxc-default' && r.kubelet === 'stock' ? fail('lxc-default', 'stock') : r));
    expect(labVerdict({ profiles, runs }).problems[0]).toMatch(/profile lxc-default: the stock kubelet was expected to pass/);
  });

  it('treats missing runs, unapplied profiles and lab setup failures as problems, never as results', () => {
    const runs = good()
      .filter((r) => !(r.profile === 'I' && r.kubelet === 'stock'))
      .map((r) => (r.profile === 'H' && r.kubelet === 'stock' ? { ...r, profileApplied: false, endReason: 'profile-not-applied' } : r))
      .map((r) => (r.profile === 'lxc-default' && r.kubelet === 'patched' ? { ...r, endReason: 'setup-failed-containerd', passed: false } : r));
    const v = labVerdict({ profiles, runs });
    expect(v.ok).toBe(false);
    expect(v.problems).toEqual([
      'profile lxc-default, patched kubelet: the lab failed before judging the kubelet (setup-failed-containerd)',
      expect.stringMatching(/^profile H, stock kubelet: the profile could not be applied/),
      'profile I, stock kubelet: no run',
    ]);
  });

  it('carries the lab\'s own problems (budget overruns, guest failures)', () => {
    const v = labVerdict({ profiles, runs: good(), labProblems: ['step run 03-H-stock exceeded its time budget of 300 s: stopped'] });
    expect(v).toEqual({ ok: false, problems: ['step run 03-H-stock exceeded its time budget of 300 s: stopped'] });
  });

  it('a run that did not complete is not judged', () => {
    const runs = good().map((r) => (r.profile === 'H' && r.kubelet === 'patched' ? { ...r, completed: false, endReason: 'missing', passed: false } : r));
    expect(labVerdict({ profiles, runs }).problems).toEqual(['profile H, patched kubelet: the run did not complete (missing)']);
  });
});
