import { describe, expect, it } from 'vitest';
import { labVerdict } from '../src/lab/index.js';
import type { DoctorPrediction, LabProfileSummary, LabRun } from '../src/lab/types.js';

/** What kubelet-lxc-doctor said in the run's container: right for this kubelet unless told otherwise. */
function doctor(stockStarts: boolean, patchedStarts: boolean, stockErrors: string[] = [], stockErrorsMissing: string[] = []): DoctorPrediction {
  return { problem: null, stockStarts, patchedStarts, stockErrors, firstCheck: stockStarts ? null : 'H', checks: stockStarts ? [] : ['H'], stockErrorsMissing };
}

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
    doctor: doctor(true, true),
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
    doctor: kubelet === 'stock' ? doctor(false, true) : doctor(false, false),
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
    expect(labVerdict({ profiles, runs }).problems).toEqual([
      'profile I: the patched kubelet fails: static pod not Running (run ended: deadline)',
      // the doctor said it starts: a wrong prediction is a problem of its own
      'profile I, patched kubelet: the doctor predicted that it starts, but it failed: static pod not Running (run ended: deadline)',
    ]);
  });

  it('fails when the doctor did not run, or predicted other than what the kubelet did', () => {
    const noDoctor = good().map((r) => (r.profile === 'H' && r.kubelet === 'stock' ? { ...r, doctor: null } : r));
    expect(labVerdict({ profiles, runs: noDoctor }).problems).toEqual(['profile H, stock kubelet: the doctor did not run before the kubelet (no doctor.json)']);
    const wrong = good().map((r) => (r.profile === 'H' && r.kubelet === 'stock' ? { ...r, doctor: doctor(true, true) } : r));
    expect(labVerdict({ profiles, runs: wrong }).problems).toEqual([expect.stringMatching(/^profile H, stock kubelet: the doctor predicted that it starts, but it failed: ContainerManager did not start/)]);
    const saysFails = good().map((r) => (r.profile === 'lxc-default' && r.kubelet === 'stock' ? { ...r, doctor: doctor(false, true, ['x']) } : r));
    expect(labVerdict({ profiles, runs: saysFails }).problems).toEqual(['profile lxc-default, stock kubelet: the doctor predicted that it fails (at H: x), but it started']);
  });

  it('fails when the stock kubelet fails as the doctor said, but not with the error the doctor named', () => {
    const runs = good().map((r) => (r.profile === 'H' && r.kubelet === 'stock' ? { ...r, doctor: doctor(false, true, ['Failed to start ContainerManager', 'other'], ['other']) } : r));
    expect(labVerdict({ profiles, runs }).problems).toEqual(['profile H, stock kubelet: fails as the doctor predicted, but its log lacks the error text the doctor named: "other"']);
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

describe('neutrality and failures the series leaves alone', () => {
  const MACHINE =
    'I1130 20:11:06.436082     302 manager.go:218] Machine: {Timestamp:2026-11-30 20:11:06.428283526 +0000 UTC m=+14.747026444 CPUVendorID:AuthenticAMD NumCores:2 NumPhysicalCores:2 NumSockets:1 NumBooks:0 NumDrawers:0 CpuFrequency:2299974 MemoryCapacity:4110254080 SwapCapacity:0 MemoryByType:map[] NVMInfo:{MemoryModeCapacity:0 AppDirectModeCapacity:0 AvgPowerBudget:0} HugePages:[{PageSize:1048576 NumPages:0} {PageSize:2048 NumPages:0}] MachineID:abc SystemUUID:abc BootID:9f06 Filesystems:[] Topology:[{Id:0 Memory:4110254080 HugePages:[] Cores:[{Id:0 Threads:[0] Caches:[] UncoreCaches:[] SocketID:0 BookID: DrawerID:} {Id:1 Threads:[1] Caches:[] UncoreCaches:[] SocketID:0 BookID: DrawerID:}] Caches:[] Distances:[10]}] CloudProvider:Unknown InstanceType:Unknown InstanceID:None}';

  it('reads the Machine line the kubelet logs into comparable facts', async () => {
    const { machineFacts, klogMessage } = await import('../src/lab/results.js');
    const f = machineFacts(`I1130 x\n${MACHINE}\n`)!;
    expect(f.NumCores).toBe('2');
    expect(f.MemoryCapacity).toBe('4110254080');
    expect(f.HugePages).toBe('[{PageSize:1048576 NumPages:0} {PageSize:2048 NumPages:0}]');
    expect(f.Topology).toMatch(/^\[\{Id:0 Memory:4110254080 .*Distances:\[10\]\}\]$/);
    expect(machineFacts('no such line')).toBeNull();
    expect(klogMessage(H_FATAL)).toBe('"Failed to start ContainerManager" err="strconv.Atoi: parsing \\"\\": invalid syntax"');
  });

  it('passes a neutral profile only when stock and patched report the same facts', async () => {
    const { machineFacts } = await import('../src/lab/results.js');
    const withMachine = (r: LabRun, line: string): LabRun => ({ ...r, machine: machineFacts(line) });
    const neutralProfiles: LabProfileSummary[] = [{ ...profiles[0]!, neutral: true }];
    const same = [withMachine(pass('lxc-default', 'stock'), MACHINE), withMachine(pass('lxc-default', 'patched'), MACHINE)];
    expect(labVerdict({ profiles: neutralProfiles, runs: same })).toEqual({ ok: true, problems: [] });
    const flat = MACHINE.replace('NumPhysicalCores:2 NumSockets:1', 'NumPhysicalCores:1 NumSockets:1');
    const v = labVerdict({ profiles: neutralProfiles, runs: [same[0]!, withMachine(pass('lxc-default', 'patched'), flat)] });
    expect(v.problems).toEqual(['profile lxc-default (no fault): stock and patched report different Machine NumPhysicalCores: stock 2, patched 1']);
  });

  it('in L2 compares the Node status both kubelets report, but not the bootID lxcfs makes new for every container', async () => {
    const L2_NODE_STATUS_SAMPLE = (boot: string, cpu: string) => ({
      capacity: { cpu, memory: '4013920Ki', pods: '110' },
      allocatable: { cpu, memory: '4012896Ki', pods: '110' },
      nodeInfo: { architecture: 'amd64', operatingSystem: 'linux', osImage: 'Debian GNU/Linux 13 (trixie)', kernelVersion: '6.12', containerRuntimeVersion: 'containerd://1.7.24', machineID: 'm', systemUUID: 'u', bootID: boot, kubeletVersion: 'x' },
    });
    const neutralProfiles: LabProfileSummary[] = [{ ...profiles[0]!, neutral: true }];
    const withStatus = (r: LabRun, status: unknown): LabRun => ({ ...r, l2: { nodeStatus: status, ready: true } as LabRun['l2'] });
    const stock = withStatus(pass('lxc-default', 'stock'), L2_NODE_STATUS_SAMPLE('35c10bc6', '2'));
    const patched = withStatus(pass('lxc-default', 'patched'), { ...L2_NODE_STATUS_SAMPLE('79067a50', '2'), nodeInfo: { ...L2_NODE_STATUS_SAMPLE('79067a50', '2').nodeInfo, kubeletVersion: 'y' } });
    expect(labVerdict({ profiles: neutralProfiles, runs: [stock, patched] })).toEqual({ ok: true, problems: [] });
    const { neutralityFacts } = await import('../src/lab/verdict.js');
    const facts = neutralityFacts('lxc-default', stock, patched).map((f) => f.fact);
    expect(facts).toEqual(expect.arrayContaining(['node capacity cpu', 'node allocatable memory', 'node nodeInfo machineID']));
    expect(facts.some((f) => /bootID|kubeletVersion/.test(f))).toBe(false);
    const fewer = withStatus(pass('lxc-default', 'patched'), L2_NODE_STATUS_SAMPLE('79067a50', '1'));
    expect(labVerdict({ profiles: neutralProfiles, runs: [stock, fewer] }).problems).toEqual([
      'profile lxc-default (no fault): stock and patched report different node capacity cpu: stock 2, patched 1',
      'profile lxc-default (no fault): stock and patched report different node allocatable cpu: stock 2, patched 1',
    ]);
  });

  it('wants the patched kubelet to fail where the series must not default, with stock\'s very error', () => {
    const GARBAGE = 'E1130 10:47:34.233320     224 kubelet.go:1821] "Failed to start ContainerManager" err="strconv.Atoi: parsing \\"one\\": invalid syntax"';
    const garbage: LabProfileSummary[] = [
      {
        id: 'H-garbage',
        description: 'garbage',
        sites: ['H'],
        expectStockFailure: true,
        expectedStockErrors: ['strconv.Atoi: parsing "one": invalid syntax'],
        reason: 'refused',
        expectPatchedFailure: { errors: ['strconv.Atoi: parsing "one": invalid syntax'], sameErrorAsStock: true, reason: 'garbage stays an error' },
      },
    ];
    const later = GARBAGE.replace('10:47:34.233320     224', '11:02:00.000001     999');
    expect(labVerdict({ profiles: garbage, runs: [fail('H-garbage', 'stock', GARBAGE, []), fail('H-garbage', 'patched', later, [])] })).toEqual({ ok: true, problems: [] });
    const started = labVerdict({ profiles: garbage, runs: [fail('H-garbage', 'stock', GARBAGE, []), pass('H-garbage', 'patched')] });
    expect(started.problems.join('\n')).toContain('profile H-garbage: the patched kubelet starts where upstream refuses (garbage stays an error)');
    const other = GARBAGE.replace('\\"one\\"', '\\"\\"');
    const differs = labVerdict({ profiles: garbage, runs: [fail('H-garbage', 'stock', GARBAGE, []), fail('H-garbage', 'patched', other, [])] });
    expect(differs.problems.join('\n')).toMatch(/the patched kubelet's error differs from stock's/);
  });
});
