import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeLabImages, BUSYBOX_IMAGE, PAUSE_IMAGE } from '../src/lab/images.js';
import { labVerdict, renderReport, renderTable } from '../src/lab/index.js';
import { parseDeb822Sources, parseOneLineSources, pickDebianMirror } from '../src/lab/mirror.js';
import { accelCandidates, kvmFailureIn, kvmModeFrom, qemuArgs } from '../src/lab/qemu.js';
import { decisiveError, interpretRun, kubeletErrorLines, logContains, staticPodRunning, type RunFiles } from '../src/lab/results.js';
import type { LabProfileSummary, LabReport } from '../src/lab/types.js';

// Excerpts of real run outputs (lab on the stock v1.36.4 kubelet, trixie guest).
const EVENTS_PASS = [
  '1795517398.804 ct-init',
  '1795517405.800 profile-applied',
  '1795517410.257 containerd-ready',
  '1795517414.810 images-imported',
  '1795517414.941 kubelet-started',
  '1795517423.927 healthz-ok',
  '1795517435.796 pod-running',
  '1795517450.570 end stable',
].join('\n');
const GUEST_EVENTS = '1795517395.271 container-start\n1795517452.150 container-stopped\n';
const LOG_PASS = [
  'I1124 10:50:20.100000     201 server.go:500] "Kubelet version" kubeletVersion="v1.36.4"',
  'E1124 10:41:31.998234     199 remote_runtime.go:1177] "RuntimeConfig from runtime service failed" err="rpc error: code = Unimplemented desc = method RuntimeConfig not implemented"',
  'E1124 10:41:32.499187     199 kubelet.go:2646] "Skipping pod synchronization" err="container runtime status check may not have completed yet"',
  'I1124 10:50:23.113026     201 eviction_manager.go:194] "Eviction manager: starting control loop"',
].join('\n');
const PODS_RUNNING = JSON.stringify({
  kind: 'PodList',
  apiVersion: 'v1',
  items: [
    {
      metadata: { name: 'lab-static-lab-node', namespace: 'default' },
      status: { phase: 'Running', containerStatuses: [{ name: 'sleeper', state: { running: { startedAt: '2026-11-24T10:50:34Z' } } }] },
    },
  ],
});
const LOG_H = [
  'I1124 10:55:03.100000     225 server.go:500] "Kubelet version" kubeletVersion="v1.36.4"',
  'E1124 10:55:03.944725     225 kubelet.go:1821] "Failed to start ContainerManager" err="strconv.Atoi: parsing \\"\\": invalid syntax"',
].join('\n');
const LOG_I = [
  'I1124 10:56:10.000000     211 server.go:500] "Kubelet version" kubeletVersion="v1.36.4"',
  'panic: runtime error: slice bounds out of range [:-1]',
  '',
  'goroutine 1 [running]:',
  'k8s.io/kubernetes/pkg/kubelet/stats/pidlimit.Stats()',
].join('\n');
const LOG_A = [
  'E1124 10:52:07.661881     217 info.go:115] Failed to get topology information: strconv.Atoi: parsing "": invalid syntax',
  'E1124 10:52:07.771254     217 container_manager_linux.go:340] "Failed to initialize cpu manager" err="could not detect number of cpus"',
  'E1124 10:52:07.772439     217 run.go:72] "command failed" err="failed to run Kubelet: could not detect number of cpus"',
].join('\n');

const who = (profile: string, kubelet: 'stock' | 'patched', expectedErrors?: string[]) => ({
  id: `x-${profile}-${kubelet}`,
  profile,
  kubelet,
  logDir: '/tmp/out',
  expectedErrors,
});

// kubelet-lxc-doctor --json as the lab's containers write it (the parts the lab reads)
const DOCTOR_CLEAN = JSON.stringify({ doctor: 'v1.36.4+rke2r1', verdict: { stock: { starts: true }, patched: { starts: true }, rke2: { starts: true } }, findings: [], fixes: [] });
const DOCTOR_H = JSON.stringify({
  doctor: 'v1.36.4+rke2r1',
  verdict: { stock: { starts: false, firstErrors: ['Failed to start ContainerManager', 'strconv.Atoi: parsing "": invalid syntax'], firstCheck: 'H' }, patched: { starts: true }, rke2: { starts: true } },
  findings: [{ check: 'H', stock: { fails: true }, patched: { fails: false } }],
  fixes: ['run the kubelet-lxc patched kubelet (the kubelet-path bundle)'],
});

const passFiles: RunFiles = {
  resultEnv: 'cgroup_ns_root=0::/init.scope\nprofile_applied=1\nkubelet_pid=201\nkubelet_alive_at_end=1\nend_reason=stable\n',
  events: EVENTS_PASS,
  guestEvents: GUEST_EVENTS,
  kubeletLog: LOG_PASS,
  podsFinal: PODS_RUNNING,
  healthz: 'ok\n',
  emptied: '',
  doctor: DOCTOR_CLEAN,
};

describe('run results', () => {
  it('a stable run with healthz ok and the pod Running passes, with its times', () => {
    const r = interpretRun(who('lxc-default', 'stock'), passFiles);
    expect(r).toMatchObject({
      completed: true,
      profileApplied: true,
      endReason: 'stable',
      containerManagerStarted: true,
      containerManagerFailed: false,
      healthz: true,
      healthzEverOk: true,
      podRunning: true,
      kubeletExited: false,
      passed: true,
      secondsToHealthz: 9,
      secondsToRunning: 20.9,
      seconds: 56.9,
      expectedErrorsMissing: null,
    });
    // containerd 1.7's RuntimeConfig and the start-up sync messages are noise, not "the" error
    expect(r.firstError).toBeNull();
    expect(r.errorLines).toHaveLength(2);
  });

  it('H: ContainerManager failed, the kubelet exited, the upstream text is found through klog escaping', () => {
    const r = interpretRun(who('H', 'stock', ['Failed to start ContainerManager', 'strconv.Atoi: parsing "": invalid syntax']), {
      resultEnv: 'profile_applied=1\nkubelet_exit=1\nkubelet_alive_at_end=0\nend_reason=kubelet-exited\n',
      events: '1.0 kubelet-started\n1.5 healthz-ok\n',
      kubeletLog: LOG_H,
      healthz: '\n',
      emptied: '0 /proc/sys/vm/overcommit_memory\n0 /proc/sys/kernel/panic\n',
    });
    expect(r).toMatchObject({
      containerManagerStarted: false,
      containerManagerFailed: true,
      healthz: false,
      healthzEverOk: true,
      podRunning: false,
      kubeletExited: true,
      kubeletExitCode: 1,
      passed: false,
      expectedErrorsMissing: [],
      emptied: ['0 /proc/sys/vm/overcommit_memory', '0 /proc/sys/kernel/panic'],
    });
    expect(r.firstError).toContain('"Failed to start ContainerManager"');
  });

  it('I: a panic is the decisive error', () => {
    const r = interpretRun(who('I', 'stock', ['slice bounds out of range']), {
      resultEnv: 'profile_applied=1\nkubelet_exit=2\nkubelet_alive_at_end=0\nend_reason=kubelet-exited\n',
      kubeletLog: LOG_I,
    });
    expect(r.panicked).toBe(true);
    expect(r.firstError).toBe('panic: runtime error: slice bounds out of range [:-1]');
    expect(r.kubeletExitCode).toBe(2);
    expect(r.expectedErrorsMissing).toEqual([]);
  });

  it('A: the fatal line wins over the earlier Atoi line; both expected texts are found', () => {
    expect(decisiveError(LOG_A)).toContain('"command failed" err="failed to run Kubelet: could not detect number of cpus"');
    const r = interpretRun(who('A', 'stock', ['strconv.Atoi: parsing "": invalid syntax', 'could not detect number of cpus', 'not in the log']), {
      resultEnv: 'profile_applied=1\nkubelet_exit=1\nend_reason=kubelet-exited\n',
      kubeletLog: LOG_A,
    });
    expect(r.expectedErrorsMissing).toEqual(['not in the log']);
  });

  it('a kubelet that stopped answering is neither healthy nor Running, whatever its last answers said', () => {
    const r = interpretRun(who('lxc-default', 'patched'), { ...passFiles, resultEnv: 'profile_applied=1\nkubelet_exit=2\nkubelet_alive_at_end=0\nend_reason=kubelet-exited\n' });
    expect(r.healthz).toBe(false);
    expect(r.podRunning).toBe(false);
    expect(r.passed).toBe(false);
  });

  it('a run without results is not completed, an unapplied profile is recorded', () => {
    expect(interpretRun(who('A', 'stock'), {})).toMatchObject({ completed: false, endReason: 'missing', passed: false });
    expect(interpretRun(who('A', 'stock'), { resultEnv: 'profile_applied=0\nend_reason=profile-not-applied\n' })).toMatchObject({
      completed: true,
      profileApplied: false,
      passed: false,
    });
  });

  it('the static pod counts as Running only with phase Running and every container running', () => {
    expect(staticPodRunning(PODS_RUNNING)).toBe(true);
    const waiting = JSON.parse(PODS_RUNNING);
    waiting.items[0].status.containerStatuses[0].state = { waiting: { reason: 'ContainerCreating' } };
    expect(staticPodRunning(JSON.stringify(waiting))).toBe(false);
    const pending = JSON.parse(PODS_RUNNING);
    pending.items[0].status = { phase: 'Pending' };
    expect(staticPodRunning(JSON.stringify(pending))).toBe(false);
    const other = JSON.parse(PODS_RUNNING);
    other.items[0].metadata.name = 'something-else';
    expect(staticPodRunning(JSON.stringify(other))).toBe(false);
    expect(staticPodRunning('{"kind":"PodList","items":[]}')).toBe(false);
    expect(staticPodRunning('not json')).toBe(false);
    expect(staticPodRunning(undefined)).toBe(false);
  });

  it('collects klog E/F lines and panics only', () => {
    expect(kubeletErrorLines(LOG_PASS + '\n' + LOG_I)).toEqual([
      expect.stringContaining('RuntimeConfig'),
      expect.stringContaining('Skipping pod synchronization'),
      'panic: runtime error: slice bounds out of range [:-1]',
    ]);
    expect(logContains('err="parsing \\"\\": invalid"', 'parsing "": invalid')).toBe(true);
  });
});

describe('report', () => {
  const profiles: LabProfileSummary[] = [
    { id: 'lxc-default', description: 'untouched', sites: [], expectStockFailure: false, reason: 'r' },
    { id: 'H', description: 'sysctls', sites: ['H'], expectStockFailure: true, expectedStockErrors: ['Failed to start ContainerManager'], reason: 'r' },
  ];
  const runs = [
    interpretRun(who('lxc-default', 'stock'), passFiles),
    interpretRun(who('lxc-default', 'patched'), passFiles),
    interpretRun(who('H', 'stock', ['Failed to start ContainerManager']), {
      resultEnv: 'profile_applied=1\nkubelet_exit=1\nkubelet_alive_at_end=0\nend_reason=kubelet-exited\n',
      kubeletLog: LOG_H,
      doctor: DOCTOR_H,
    }),
  ];

  it("reads the doctor's prediction and checks its error texts against the whole kubelet log", () => {
    expect(runs[2]!.doctor).toEqual({
      problem: null,
      stockStarts: false,
      patchedStarts: true,
      stockErrors: ['Failed to start ContainerManager', 'strconv.Atoi: parsing "": invalid syntax'],
      firstCheck: 'H',
      checks: ['H'],
      stockErrorsMissing: [],
    });
    // a prediction whose error the log lacks, a report that is not JSON, and none at all
    expect(interpretRun(who('H', 'stock'), { kubeletLog: 'E1 other error', doctor: DOCTOR_H }).doctor?.stockErrorsMissing).toEqual(['Failed to start ContainerManager', 'strconv.Atoi: parsing "": invalid syntax']);
    expect(interpretRun(who('H', 'stock'), { doctor: 'panic: x' }).doctor?.problem).toMatch(/^doctor.json is not JSON/);
    expect(interpretRun(who('H', 'stock'), {}).doctor).toBeNull();
  });

  it('renders profile x kubelet with the expectation, the outcome and the short first error', () => {
    const lines = renderTable({ profiles, runs }).split('\n');
    expect(lines[0]).toMatch(/^profile\s+kubelet\s+expected\s+result\s+doctor said\s+CM started\s+healthz\s+pod Running\s+to Running\s+first error$/);
    expect(lines[1]).toMatch(/^lxc-default\s+stock\s+pass\s+pass\s+starts\s+yes\s+ok\s+yes\s+20\.9 s\s+-$/);
    expect(lines[3]).toMatch(/^H\s+stock\s+fail\s+FAIL\s+fails \(H\)\s+no\s+no\s+no\s+-\s+"Failed to start ContainerManager" err="strconv\.Atoi: parsing \\"\\": invalid syntax"$/);
    expect(lines[4]).toMatch(/^H\s+patched\s+pass\s+MISSING/);
  });

  it('renders the whole report with steps and the verdict\'s problems', () => {
    const base = {
      schema: 1 as const,
      startedAt: '2026-11-24T10:40:00.000Z',
      finishedAt: '2026-11-24T10:50:00.000Z',
      seconds: 600,
      accel: 'tcg' as const,
      accelNote: null,
      accelFallback: {
        from: 'kvm' as const,
        to: 'tcg' as const,
        reason: 'qemu said "KVM internal error. Suberror: 1"',
        seconds: 2.5,
        consoleLog: '/out/console.kvm.log',
        consoleTail: ['KVM internal error. Suberror: 1', 'emulation failure'],
      },
      guest: { key: 'abc', cached: true, dir: '/c/guest-abc', versions: { lxc: '1:6.0.4', lxcfs: '6.0.4', containerd: '1.7.24', runc: '1.1.15' }, kernelRelease: '6.12' },
      kubelets: {
        stock: { path: '/k/stock', version: 'Kubernetes v1.36.4', sha256: 'a'.repeat(64) },
        patched: { path: '/k/patched', version: 'Kubernetes v1.36.4', sha256: 'b'.repeat(64) },
      },
      profiles,
      runs,
      steps: [{ step: 'boot', seconds: 20, budgetSeconds: 180, overBudget: false }],
      labProblems: [],
      guestRestarts: [
        { boot: 1, duringRun: '03-H-stock', qemuExit: '0', consoleTail: ['@@LAB run-start 03-H-stock H stock', 'Kernel panic - not syncing: test'], guestLogTail: [] },
      ],
    };
    const report: LabReport = { ...base, verdict: labVerdict(base) };
    const text = renderReport(report);
    expect(text).toContain('guest restart: boot 1 ended during run 03-H-stock (qemu exit 0); the runs left went to boot 2. Last console line: Kernel panic - not syncing: test');
    expect(text).toMatch(/^kubelet-lxc lab \(smoke L1\): FAIL\n/);
    expect(text).toContain('qemu TCG, guest abc (cached)');
    expect(text).toContain('accelerator: TCG after a failed KVM trial (2.5 s): qemu said "KVM internal error. Suberror: 1"; console of the attempt: /out/console.kvm.log');
    expect(text).toContain('lxc 1:6.0.4, lxcfs 6.0.4, containerd 1.7.24, runc 1.1.15');
    expect(text).toMatch(/ {2}boot\s+20 s\s+budget 180 s/);
    expect(text).toContain('  - profile H, patched kubelet: no run');
  });
});

describe('lab images', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lab-images-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('builds one docker-archive with the busybox and pause images over one shared layer, deterministically', async () => {
    const fakeBusybox = join(dir, 'busybox');
    writeFileSync(fakeBusybox, Buffer.alloc(3000, 7), { mode: 0o755 });
    await writeLabImages(join(dir, 'images.tar'), fakeBusybox);
    await writeLabImages(join(dir, 'again.tar'), fakeBusybox);
    expect(readFileSync(join(dir, 'again.tar')).equals(readFileSync(join(dir, 'images.tar')))).toBe(true);
    const out = join(dir, 'x');
    execFileSync('mkdir', ['-p', out]);
    execFileSync('tar', ['-xf', join(dir, 'images.tar'), '-C', out]);
    const names = execFileSync('tar', ['-tf', join(dir, 'images.tar')], { encoding: 'utf8' }).trim().split('\n');
    expect(names[0]).toBe('manifest.json');
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { Config: string; RepoTags: string[]; Layers: string[] }[];
    expect(manifest.map((m) => m.RepoTags)).toEqual([[BUSYBOX_IMAGE], [PAUSE_IMAGE]]);
    expect(manifest[0]!.Layers).toEqual(manifest[1]!.Layers);
    const layerPath = join(out, manifest[0]!.Layers[0]!);
    const layerList = execFileSync('tar', ['-tvf', layerPath], { encoding: 'utf8' });
    expect(layerList).toMatch(/bin\/busybox$/m);
    expect(layerList).toMatch(/bin\/sh -> busybox$/m);
    const layerSha = execFileSync('sha256sum', [layerPath], { encoding: 'utf8' }).split(' ')[0];
    for (const m of manifest) {
      const cfg = JSON.parse(readFileSync(join(out, m.Config), 'utf8'));
      expect(cfg).toMatchObject({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${layerSha}`] } });
    }
    const pause = JSON.parse(readFileSync(join(out, manifest[1]!.Config), 'utf8'));
    expect(pause.config.Cmd).toEqual(['/bin/busybox', 'sleep', '2147483647']);
  });
});

describe('host mirror', () => {
  it('takes the main archive from deb822 sources, not security or third-party entries', () => {
    const text = [
      'Types: deb',
      'URIs: http://mirror.example/debian',
      'Suites: bookworm bookworm-updates',
      'Components: main',
      '',
      'Types: deb',
      'URIs: http://mirror.example/debian-security',
      'Suites: bookworm-security',
      'Components: main',
    ].join('\n');
    expect(pickDebianMirror(parseDeb822Sources(text))).toBe('http://mirror.example/debian');
  });

  it('reads one-line sources with options, skips disabled stanzas and non-deb types', () => {
    const one = '# comment\ndeb [signed-by=/k.gpg] https://m.example/debian/ trixie main contrib\ndeb https://cloud.example/apt cloud-sdk main\n';
    expect(pickDebianMirror(parseOneLineSources(one))).toBe('https://m.example/debian');
    const off = 'Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n\nTypes: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n';
    expect(pickDebianMirror(parseDeb822Sources(off))).toBeUndefined();
  });
});

describe('qemu', () => {
  it('boots TCG with a copy-on-write disk, the 9p share and no display; KVM uses the host CPU', () => {
    const args = qemuArgs({
      kernel: '/g/vmlinuz',
      initrd: '/g/initrd.img',
      rootfs: '/g/rootfs.img',
      kubeletDisk: '/w/kubelets.img',
      shareDir: '/w/share',
      accel: 'tcg',
      memoryMiB: 3072,
      cpus: 2,
    });
    const at = (flag: string) => args[args.indexOf(flag) + 1];
    expect(at('-machine')).toBe('q35,accel=tcg');
    expect(at('-cpu')).toBe('max');
    expect(at('-smp')).toBe('2');
    expect(args.filter((_, i) => args[i - 1] === '-drive')).toEqual([
      'file=/g/rootfs.img,if=virtio,format=raw,snapshot=on',
      'file=/w/kubelets.img,if=virtio,format=raw,readonly=on',
    ]);
    expect(at('-virtfs')).toBe('local,path=/w/share,mount_tag=lab,security_model=none,id=lab');
    expect(at('-append')).toContain('init=/sbin/lab-init');
    expect(args).toContain('-no-reboot');
    const kvm = qemuArgs({ kernel: 'k', initrd: 'i', rootfs: 'r', kubeletDisk: 'kd', shareDir: 's', accel: 'kvm', memoryMiB: 1024, cpus: 2 });
    expect(kvm[kvm.indexOf('-cpu') + 1]).toBe('host');
    // L1 has no network device at all; L2's reaches nothing but a port of the host's loopback
    expect(args).not.toContain('-netdev');
    const l2 = qemuArgs({ kernel: 'k', initrd: 'i', rootfs: 'r', kubeletDisk: 'kd', shareDir: 's', accel: 'tcg', memoryMiB: 4096, cpus: 2, hostForward: { hostPort: 40123, guestPort: 6443 } });
    expect(l2[l2.indexOf('-netdev') + 1]).toBe('user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40123-:6443');
    expect(l2[l2.indexOf('-device', l2.indexOf('-netdev')) + 1]).toBe('virtio-net-pci,netdev=n0');
  });
});

describe('KVM on trial', () => {
  it('recognises qemu\'s words for a KVM that cannot run the guest, and nothing else', () => {
    expect(kvmFailureIn('KVM internal error. Suberror: 1')).toBe('KVM internal error. Suberror: 1');
    expect(kvmFailureIn('emulation failure')).toBe('emulation failure');
    expect(kvmFailureIn('qemu-system-x86_64: error: kvm run failed Bad address')).toMatch(/kvm run failed/);
    expect(kvmFailureIn('qemu-system-x86_64: failed to initialize kvm: Permission denied')).toMatch(/failed to initialize kvm/);
    expect(kvmFailureIn('@@LAB guest-up 3.21')).toBeUndefined();
    expect(kvmFailureIn('[    0.000000] Linux version 6.12.57+deb13-amd64')).toBeUndefined();
  });

  it('takes --kvm over $KUBELET_LXC_KVM over auto, and names the bad one', () => {
    expect(kvmModeFrom(undefined, {})).toBe('auto');
    expect(kvmModeFrom(undefined, { KUBELET_LXC_KVM: 'off' })).toBe('off');
    expect(kvmModeFrom('on', { KUBELET_LXC_KVM: 'off' })).toBe('on');
    expect(() => kvmModeFrom('yes', {})).toThrow('--kvm must be one of auto, on, off, got "yes"');
    expect(() => kvmModeFrom(undefined, { KUBELET_LXC_KVM: '1' })).toThrow('KUBELET_LXC_KVM must be one of auto, on, off, got "1"');
  });

  it('puts KVM on trial before TCG only when the device is there; off never tries it; on without it fails', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvm-dev-'));
    try {
      const dev = join(dir, 'kvm');
      writeFileSync(dev, '');
      expect(await accelCandidates('auto', dev)).toEqual({ candidates: ['kvm', 'tcg'] });
      expect(await accelCandidates('on', dev)).toEqual({ candidates: ['kvm'] });
      expect(await accelCandidates('off', dev)).toEqual({ candidates: ['tcg'], note: 'KVM off (--kvm off or KUBELET_LXC_KVM=off)' });
      const none = join(dir, 'none');
      expect(await accelCandidates('auto', none)).toEqual({ candidates: ['tcg'], note: `${none} is not usable (ENOENT)` });
      await expect(accelCandidates('on', none)).rejects.toThrow(`KVM forced (--kvm on or KUBELET_LXC_KVM=on), but ${none} is not usable (ENOENT)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
