// The lab's verdict: the patched kubelet must pass every profile; the stock kubelet
// must fail every profile meant to break it (with the upstream error text when the
// profile names one) and pass the ones that are not. A run that did not happen, or
// whose profile could not be applied, proves nothing and is a problem too.
import { logContains } from './results.js';
import type { LabProfileSummary, LabReport, LabRun } from './types.js';

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
    const failedTests = l2.conformance?.results.filter((t) => t.result !== 'passed') ?? [];
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
    if (usable(patched, `profile ${p.id}, patched kubelet`, problems) && !patched.passed) {
      problems.push(`profile ${p.id}: the patched kubelet fails: ${whyFailed(patched)}`);
    }
    const stock = find(p, 'stock');
    if (!usable(stock, `profile ${p.id}, stock kubelet`, problems)) continue;
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
  }
  return { ok: problems.length === 0, problems };
}
