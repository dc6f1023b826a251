// Public types of the lab module.
import type { L2Binaries } from './l2/binaries.js';
import type { ConformanceTest } from './l2/conformance.js';
import type { L2RunResult } from './l2/driver.js';
import type { L2ImageRefs } from './l2/images.js';

/** L1: a standalone kubelet with a static pod; L2: a server node (kine, control plane, the kubelet registering) with conformance tests. */
export type LabLevel = 'L1' | 'L2';
export const LAB_LEVELS: readonly LabLevel[] = Object.freeze(['L1', 'L2'] as const);

/** What the L2 level runs besides the kubelets. */
export interface LabL2Inputs {
  binaries: L2Binaries;
  /** the pinned (stock) tree: porter certificates for agnhost */
  tree: string;
  imageRefs: L2ImageRefs;
  /** the conformance tier the patched kubelet's runs run (null: none) */
  conformance: { tier: string; tests: ConformanceTest[] } | null;
  /** parallel ginkgo processes for the conformance tests (default CONFORMANCE_PROCS) */
  procs?: number;
}

export type KubeletKind = 'stock' | 'patched';
export const KUBELET_KINDS: readonly KubeletKind[] = Object.freeze(['stock', 'patched'] as const);

export interface LabOptions {
  /** paths of the two kubelet binaries (linux/amd64): the tree built without and with the series */
  kubelets: { stock: string; patched: string };
  /** kubelet-lxc-doctor (linux/amd64), run in every container before its kubelet */
  doctor: string;
  /** guest image cache (e.g. ~/.cache/kubelet-lxc/lab) */
  cacheDir: string;
  /** gets lab-report.json, lab-report.txt, console.log and runs/<id>/ (every run's logs) */
  outDir: string;
  /** profile ids; default: all, in the order of lab/profiles.json */
  profiles?: string[];
  /**
   * 'auto' (default): KVM on trial (the guest must reach its first console marker under it
   * within kvmProofSeconds), else TCG in the same run; 'on': KVM or fail; 'off': TCG
   */
  kvm?: 'auto' | 'on' | 'off';
  /** the KVM device to check (default /dev/kvm) */
  kvmDevice?: string;
  /** seconds KVM gets to bring the guest to its first console marker (default KVM_PROOF_SECONDS) */
  kvmProofSeconds?: number;
  /** the qemu program (default qemu-system-x86_64); the fallback test puts a wrapper here */
  qemu?: string;
  log: (line: string) => void;
  signal?: AbortSignal;
  /** Debian mirror for the guest build; default: the host's own (from /etc/apt) */
  mirror?: string;
  /** seconds a kubelet gets inside the container to reach healthz ok + pod Running (default 150) */
  runDeadlineSeconds?: number;
  /** seconds healthz ok + pod Running must hold before a run counts as passed (default 12) */
  settleSeconds?: number;
  /** guest memory in MiB (default 3072 for L1, 4096 for L2) */
  memoryMiB?: number;
  /** L1 (default) or L2 */
  level?: LabLevel;
  /** L2 only: the control plane, kine, e2e.test, images, conformance tier */
  l2?: LabL2Inputs;
}

/** kubelet-lxc-doctor's prediction in one run's container (null fields: it gave none). */
export interface DoctorPrediction {
  /** the doctor did not run properly (its output was not a report) */
  problem: string | null;
  stockStarts: boolean | null;
  patchedStarts: boolean | null;
  /** the upstream error texts it says the stock kubelet's log shows */
  stockErrors: string[];
  /** its first check the stock kubelet fails (a site letter, swap, kmsg, ...) */
  firstCheck: string | null;
  /** every check it says the stock kubelet fails */
  checks: string[];
  /** stockErrors this run's kubelet log lacks */
  stockErrorsMissing: string[];
}

/** The outcome of one kubelet under one profile. */
export interface LabRun {
  id: string;
  profile: string;
  kubelet: KubeletKind;
  /** the run produced results (false: the guest never got to it, or lost them) */
  completed: boolean;
  /** every file the profile must empty read as 0 bytes before the kubelet started */
  profileApplied: boolean;
  /** why the run ended: stable | kubelet-exited | deadline | profile-not-applied | setup-failed-* | container-timeout | missing ... */
  endReason: string;
  /** ContainerManager.Start returned (the eviction manager, started right after it, logged its start) */
  containerManagerStarted: boolean;
  /** the kubelet logged "Failed to start ContainerManager" */
  containerManagerFailed: boolean;
  /** /healthz answered "ok" at the end of the run */
  healthz: boolean;
  /** /healthz answered "ok" at some point */
  healthzEverOk: boolean;
  /** the static pod was Running with its container running at the end of the run (kubelet /pods) */
  podRunning: boolean;
  kubeletExited: boolean;
  kubeletExitCode: number | null;
  panicked: boolean;
  /** the decisive error line (fatal / exit cause), else the first error line */
  firstError: string | null;
  /** error lines of the kubelet log (klog E/F lines, panics), at most 25 */
  errorLines: string[];
  /** the profile's expected upstream error texts the kubelet log lacks (null: none expected for this kubelet) */
  expectedErrorsMissing: string[] | null;
  /** the kubelet passed: ContainerManager started, healthz ok, pod Running, kubelet alive */
  passed: boolean;
  /** seconds from kubelet start to: healthz ok, pod Running (null if never) */
  secondsToHealthz: number | null;
  secondsToRunning: number | null;
  /** wall seconds of the whole run (container start to container stopped), from the guest */
  seconds: number | null;
  /** "<bytes> <path>" for every emptied file, before the kubelet started */
  emptied: string[];
  /** log directory under outDir */
  logDir: string;
  /** kubelet-lxc-doctor's prediction, made in this container before the kubelet started (null: no doctor.json) */
  doctor?: DoctorPrediction | null;
  /** L2: what the host saw of the node (registration, checks, conformance) */
  l2?: L2RunResult;
  /** the facts of cAdvisor's "Machine:" line in the kubelet log (null: never logged) */
  machine?: Record<string, string> | null;
}

export interface LabStepTiming {
  step: string;
  seconds: number;
  budgetSeconds: number;
  overBudget: boolean;
}

export interface LabProfileSummary {
  id: string;
  description: string;
  sites: string[];
  expectStockFailure: boolean;
  /** upstream error texts the stock kubelet's log must all show */
  expectedStockErrors?: string[];
  reason: string;
  /** a failure the series must leave alone: the patched kubelet fails too, with stock's decisive error */
  expectPatchedFailure?: { errors: string[]; sameErrorAsStock: boolean; reason: string };
  /** no fault: stock and patched must report identical node facts */
  neutral?: boolean;
}

/** One fact of the neutrality comparison: what stock and patched reported. */
export interface NeutralityFact {
  profile: string;
  fact: string;
  stock: string;
  patched: string;
  same: boolean;
}

/** KVM was tried and could not run the guest: the lab went on under TCG. */
export interface LabAccelFallback {
  from: 'kvm';
  to: 'tcg';
  /** what ended the KVM attempt: qemu's KVM error line, no console marker in time, or qemu's early exit */
  reason: string;
  /** seconds the attempt cost */
  seconds: number;
  /** the attempt's console log (console.kvm.log) and its last lines */
  consoleLog: string;
  consoleTail: string[];
}

/** A guest boot that ended before its runs were done; the runs left went to the next boot. */
export interface LabGuestRestart {
  /** the boot that ended early (1 = the first) */
  boot: number;
  /** the run the guest was in when it ended (null: between runs or before the first) */
  duringRun: string | null;
  /** qemu's exit code or signal */
  qemuExit: string;
  /** the serial console's last lines (console.log of that boot) */
  consoleTail: string[];
  /** the guest script's last lines (its set -x trace, guest.log of that boot) */
  guestLogTail: string[];
}

export interface LabReport {
  schema: 1;
  level?: LabLevel;
  /** L2: what ran besides the kubelets */
  l2?: { binaries: Record<string, string>; images: L2ImageRefs; datastore: string; conformanceTier: string; kine: string };
  startedAt: string;
  finishedAt: string;
  seconds: number;
  /** the accelerator the runs ran under */
  accel: 'kvm' | 'tcg';
  /** why KVM was not even tried (off, no /dev/kvm), else null */
  accelNote: string | null;
  /** KVM tried first and failed, so the runs ran under TCG; else null */
  accelFallback: LabAccelFallback | null;
  guest: { key: string; cached: boolean; dir: string; versions: Record<string, string>; kernelRelease: string };
  kubelets: Record<KubeletKind, { path: string; version: string; sha256: string }>;
  profiles: LabProfileSummary[];
  runs: LabRun[];
  steps: LabStepTiming[];
  /** problems found by the lab itself (budget overrun, guest failure), besides the verdict's */
  labProblems: string[];
  /** guest boots that ended early and were followed by another boot for the runs left */
  guestRestarts: LabGuestRestart[];
  /** neutral profiles: stock's and patched's facts side by side */
  neutrality?: NeutralityFact[];
  verdict: { ok: boolean; problems: string[] };
}
