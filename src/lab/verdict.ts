// The lab's verdict: the patched kubelet must pass every profile; the stock kubelet
// must fail every profile meant to break it (with the upstream error text when the
// profile names one) and pass the ones that are not. A run that did not happen, or
// whose profile could not be applied, proves nothing and is a problem too.
import { klogMessage, logContains, MACHINE_FACTS } from './results.js';
import { NEEDS_KVM } from './l2/conformance.js';
import type { LabProfileSummary, LabReport, LabRun, NeutralityFact } from './types.js';

export interface LabVerdict {
  ok: boolean;
  problems: string[];
}

type VerdictInput = Pick<LabReport, 'profiles' | 'runs'> & { labProblems?: string[] };

function whyFailed(r: LabRun): string {
  if (r.l2) {
    const l2 = r.l2;
    if (l2.problem && !l2.ready) return l2.problem;
    if (!l2.registered) return `the node never registered${r.firstError ? `: ${r.firstError}` : ''}`;
    if (!l2.ready) return `the node never became Ready${r.firstError ? `: ${r.firstError}` : ''}`;
    if (l2.kubeletExits.length) return `the kubelet exited ${l2.kubeletExits.length}x (codes ${l2.kubeletExits.join(', ')})${r.firstError ? `: ${r.firstError}` : ''}`;
    const bad = l2.checks.filter((c) => !c.ok);
    if (bad.length) return `checks failed: ${bad.map((c) => `${c.name} (${c.detail})`).join('; ')}`;
    const failedTests = l2.conformance?.results.filter((t) => t.result !== 'passed' && t.result !== NEEDS_KVM) ?? [];
    if (failedTests.length) return `conformance: ${failedTests.length} of ${l2.conformance!.results.length} did not pass: ${failedTests.map((t) => `${t.name} (${t.result})`).join('; ')}`;
    return `run ended: ${r.endReason}`;
  }
  if (!r.containerManagerStarted) return `ContainerManager did not start${r.firstError ? `: ${r.firstError}` : ''}`;
  if (!r.healthz) return `/healthz not ok${r.firstError ? ` (${r.firstError})` : ''}`;
  if (!r.podRunning) return `static pod not Running (run ended: ${r.endReason})`;
  return `run ended: ${r.endReason}`;
}

function usable(r: LabRun | undefined, label: string, problems: string[]): r is LabRun {
  if (!r) {
    problems.push(`${label}: no run`);
    return false;
  }
  if (!r.completed) {
    problems.push(`${label}: the run did not complete (${r.endReason})`);
    return false;
  }
  if (!r.profileApplied) {
    problems.push(`${label}: the profile could not be applied inside the container (${r.endReason}; emptied: ${r.emptied.join(', ') || 'none'})`);
    return false;
  }
  if (r.endReason.startsWith('setup-failed') || r.endReason === 'container-timeout' || r.endReason === 'lxc-start-failed') {
    problems.push(`${label}: the lab failed before judging the kubelet (${r.endReason})`);
    return false;
  }
  return true;
}

/** Expected texts the run's log lacks (from the whole log when the run recorded it, else from its error lines). */
function missingTexts(r: LabRun, texts: string[]): string[] {
  if (r.expectedErrorsMissing !== null) return r.expectedErrorsMissing;
  return texts.filter((t) => ![...r.errorLines, r.firstError ?? ''].some((l) => logContains(l, t)));
}

export function labVerdict(report: VerdictInput): LabVerdict {
  const problems: string[] = [...(report.labProblems ?? [])];
  const find = (p: LabProfileSummary, k: 'stock' | 'patched'): LabRun | undefined =>
    report.runs.find((r) => r.profile === p.id && r.kubelet === k);
  for (const p of report.profiles) {
    const patched = find(p, 'patched');
    const patchedUsable = usable(patched, `profile ${p.id}, patched kubelet`, problems);
    if (patchedUsable && !p.expectPatchedFailure && !patched.passed) {
      problems.push(`profile ${p.id}: the patched kubelet fails: ${whyFailed(patched)}`);
    }
    if (patchedUsable && p.expectPatchedFailure) {
      // a failure the series must leave alone: the patched kubelet fails, as upstream does
      if (patched.passed || patched.l2?.ready) problems.push(`profile ${p.id}: the patched kubelet starts where upstream refuses (${p.expectPatchedFailure.reason})`);
      else {
        const missing = missingTexts(patched, p.expectPatchedFailure.errors);
        if (missing.length) problems.push(`profile ${p.id}: the patched kubelet fails, but its log lacks ${missing.map((t) => JSON.stringify(t)).join(', ')}: ${patched.firstError ?? 'no error line'}`);
      }
    }
    if (patchedUsable) problems.push(...doctorProblems(p.id, patched));
    const stock = find(p, 'stock');
    if (!usable(stock, `profile ${p.id}, stock kubelet`, problems)) continue;
    if (patchedUsable && p.expectPatchedFailure?.sameErrorAsStock && klogMessage(stock.firstError) !== klogMessage(patched.firstError)) {
      problems.push(`profile ${p.id}: the patched kubelet's error differs from stock's: stock "${klogMessage(stock.firstError)}", patched "${klogMessage(patched.firstError)}"`);
    }
    if (patchedUsable && p.neutral) {
      for (const f of neutralityFacts(p.id, stock, patched).filter((x) => !x.same)) {
        problems.push(`profile ${p.id} (no fault): stock and patched report different ${f.fact}: stock ${f.stock}, patched ${f.patched}`);
      }
    }
    if (p.expectStockFailure) {
      if (stock.passed || stock.l2?.ready) {
        problems.push(`profile ${p.id}: the stock kubelet does not fail it (negative control broken: the profile does not reproduce the fault)${stock.l2?.ready ? '; its node became Ready' : ''}`);
      } else if (p.expectedStockErrors?.length) {
        const missing = missingTexts(stock, p.expectedStockErrors);
        if (missing.length) {
          problems.push(
            `profile ${p.id}: the stock kubelet fails, but its log lacks the upstream error text ${missing.map((t) => JSON.stringify(t)).join(', ')}: ${stock.firstError ?? 'no error line'}`,
          );
        }
      }
    } else if (!stock.passed) {
      problems.push(`profile ${p.id}: the stock kubelet was expected to pass (${p.reason}) but fails: ${whyFailed(stock)}`);
    }
    problems.push(...doctorProblems(p.id, stock));
  }
  return { ok: problems.length === 0, problems };
}

/** Whether the run's kubelet started: L1 passed its checks, L2 got its node Ready. */
export function kubeletStarted(r: LabRun): boolean {
  return r.l2 ? r.l2.ready : r.passed;
}

/**
 * kubelet-lxc-doctor ran in the run's container before the kubelet: its prediction for this
 * kubelet must be what the kubelet then did, and for a stock kubelet that fails, its log must
 * show the upstream error texts the doctor named.
 */
export function doctorProblems(profile: string, r: LabRun): string[] {
  const label = `profile ${profile}, ${r.kubelet} kubelet`;
  const d = r.doctor;
  if (!d) return [`${label}: the doctor did not run before the kubelet (no doctor.json)`];
  if (d.problem) return [`${label}: the doctor failed: ${d.problem}`];
  const predicted = r.kubelet === 'stock' ? d.stockStarts : d.patchedStarts;
  const started = kubeletStarted(r);
  const said = (b: boolean | null) => (b ? 'starts' : 'fails');
  const out: string[] = [];
  if (predicted !== started) {
    out.push(
      `${label}: the doctor predicted that it ${said(predicted)}${d.firstCheck && r.kubelet === 'stock' ? ` (at ${d.firstCheck}: ${d.stockErrors.join(', ')})` : ''}, but it ${started ? 'started' : `failed: ${whyFailed(r)}`}`,
    );
  } else if (r.kubelet === 'stock' && !started && d.stockErrorsMissing.length) {
    out.push(`${label}: fails as the doctor predicted, but its log lacks the error text the doctor named: ${d.stockErrorsMissing.map((t) => JSON.stringify(t)).join(', ')}`);
  }
  return out;
}

/** The node's .status.nodeInfo fields both kubelets must report alike. */
export const NODE_INFO_FACTS = ['architecture', 'operatingSystem', 'osImage', 'kernelVersion', 'containerRuntimeVersion', 'machineID', 'systemUUID'] as const;

/** What the two kubelets report of the machine and, in L2, of the node: the series must change none of it on a normal host. */
export function neutralityFacts(profile: string, stock: LabRun, patched: LabRun): NeutralityFact[] {
  const out: NeutralityFact[] = [];
  const add = (fact: string, a: unknown, b: unknown) => {
    const sa = a === undefined ? '(none)' : typeof a === 'string' ? a : JSON.stringify(a);
    const sb = b === undefined ? '(none)' : typeof b === 'string' ? b : JSON.stringify(b);
    out.push({ profile, fact, stock: sa, patched: sb, same: sa === sb });
  };
  if (stock.machine || patched.machine) for (const k of MACHINE_FACTS) add(`Machine ${k}`, stock.machine?.[k], patched.machine?.[k]);
  const st = stock.l2?.nodeStatus as NodeStatusFacts | null | undefined;
  const pt = patched.l2?.nodeStatus as NodeStatusFacts | null | undefined;
  if (st || pt) {
    const keys = new Set([...Object.keys(st?.capacity ?? {}), ...Object.keys(pt?.capacity ?? {})]);
    for (const k of [...keys].sort()) add(`node capacity ${k}`, st?.capacity?.[k], pt?.capacity?.[k]);
    const akeys = new Set([...Object.keys(st?.allocatable ?? {}), ...Object.keys(pt?.allocatable ?? {})]);
    for (const k of [...akeys].sort()) add(`node allocatable ${k}`, st?.allocatable?.[k], pt?.allocatable?.[k]);
    // Not compared: the kubelet's own version (stamped by design) and bootID, which lxcfs makes
    // new for every container start (/proc/sys/kernel/random/boot_id), so two runs never share it.
    for (const k of NODE_INFO_FACTS) add(`node nodeInfo ${k}`, st?.nodeInfo?.[k], pt?.nodeInfo?.[k]);
  }
  return out;
}

interface NodeStatusFacts {
  capacity?: Record<string, string>;
  allocatable?: Record<string, string>;
  nodeInfo?: Record<string, string>;
}
