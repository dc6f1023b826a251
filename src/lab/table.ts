// The readable form of a lab report (lab-report.txt).
import { NEEDS_KVM } from './l2/conformance.js';
import type { LabReport, LabRun } from './types.js';
import { kubeletStarted } from './verdict.js';
import { passedOnAttempt } from '../lib/junit.js';

const yes = (b: boolean): string => (b ? 'yes' : 'no');

const clip = (s: string, max = 70): string => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

/** Shortens a klog line to its message: drops the header "E1124 10:30:00.123456  123 file.go:42] ". */
export function shortError(line: string | null, max = 110): string {
  if (!line) return '-';
  const m = /^[IWEF]\d{4} [\d:.]+\s+\d+ [^\]]+\] (.*)$/.exec(line);
  const s = (m?.[1] ?? line).replace(/\s+/g, ' ').trim();
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

function pad(cells: string[][]): string {
  const widths: number[] = [];
  for (const row of cells) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return cells
    .map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd())
    .join('\n');
}

/** The doctor's prediction for this run's kubelet: "starts" / "fails (A,B)", with "WRONG:" where the kubelet did otherwise. */
export function doctorCell(r: LabRun): string {
  const d = r.doctor;
  if (!d) return 'no report';
  if (d.problem) return 'ERROR';
  const predicted = r.kubelet === 'stock' ? d.stockStarts : d.patchedStarts;
  const text = predicted ? 'starts' : r.kubelet === 'stock' ? `fails (${d.checks.join(',')})` : 'fails';
  return predicted === kubeletStarted(r) ? text : `WRONG: ${text}`;
}

function outcome(r: LabRun): string {
  if (!r.completed) return 'MISSING';
  if (!r.profileApplied) return 'NOT-APPLIED';
  return r.passed ? 'pass' : 'FAIL';
}

/** The profile x kubelet table. */
export function renderTable(report: Pick<LabReport, 'profiles' | 'runs'>): string {
  const rows: string[][] = [['profile', 'kubelet', 'expected', 'result', 'doctor said', 'CM started', 'healthz', 'pod Running', 'to Running', 'first error']];
  for (const p of report.profiles) {
    for (const k of ['stock', 'patched'] as const) {
      const r = report.runs.find((x) => x.profile === p.id && x.kubelet === k);
      const expected = k === 'patched' ? (p.expectPatchedFailure ? 'fail' : 'pass') : p.expectStockFailure ? 'fail' : 'pass';
      if (!r) {
        rows.push([p.id, k, expected, 'MISSING', '-', '-', '-', '-', '-', '-']);
        continue;
      }
      rows.push([
        p.id,
        k,
        expected,
        outcome(r),
        doctorCell(r),
        yes(r.containerManagerStarted),
        r.healthz ? 'ok' : r.healthzEverOk ? 'lost' : 'no',
        yes(r.podRunning),
        r.secondsToRunning === null ? '-' : `${r.secondsToRunning} s`,
        r.panicked && r.firstError && !r.firstError.startsWith('panic:') ? `panic; ${shortError(r.firstError)}` : shortError(r.firstError),
      ]);
    }
  }
  return pad(rows);
}

/** The L2 profile x kubelet table: what the host saw through the apiserver. */
export function renderL2Table(report: Pick<LabReport, 'profiles' | 'runs'>): string {
  const rows: string[][] = [['profile', 'kubelet', 'expected', 'result', 'doctor said', 'registered', 'Ready', 'checks', 'conformance', 'kubelet exits', 'first error']];
  for (const p of report.profiles) {
    for (const k of ['stock', 'patched'] as const) {
      const r = report.runs.find((x) => x.profile === p.id && x.kubelet === k);
      const expected = k === 'patched' ? 'pass' : p.expectStockFailure ? 'fail' : 'pass';
      if (!r) {
        rows.push([p.id, k, expected, 'MISSING', '-', '-', '-', '-', '-', '-', '-']);
        continue;
      }
      const l2 = r.l2;
      const conf = l2?.conformance;
      rows.push([
        p.id,
        k,
        expected,
        outcome(r),
        doctorCell(r),
        l2 ? (l2.registered ? `${l2.secondsToRegistered} s` : 'no') : '-',
        l2 ? (l2.ready ? `${l2.secondsToReady} s` : 'no') : '-',
        l2 && l2.checks.length ? `${l2.checks.filter((c) => c.ok).length}/${l2.checks.length}` : '-',
        conf ? conformanceCell(conf.results, conf.tier) : '-',
        l2 ? String(l2.kubeletExits.length) : '-',
        // a passing node logs errors while it registers: the column is for what stopped one
        r.passed ? '-' : shortError(r.firstError ?? l2?.problem ?? null),
      ]);
    }
  }
  return pad(rows);
}

/** passed/run (tier), and how many were held back for KVM: a held test is never counted as passed. */
function conformanceCell(results: { result: string }[], tier: string): string {
  const held = results.filter((t) => t.result === NEEDS_KVM).length;
  const passed = results.filter((t) => t.result === 'passed').length;
  return `${passed}/${results.length - held} (${tier})${held ? ` +${held} ${NEEDS_KVM}` : ''}`;
}

/** One row per conformance test of each run that ran them: test, result, seconds. */
export function renderConformance(report: Pick<LabReport, 'runs'>): string {
  const out: string[] = [];
  for (const r of report.runs) {
    const c = r.l2?.conformance;
    if (!c) continue;
    out.push(`conformance, ${r.id} (tier ${c.tier}, ${c.seconds} s):`);
    const result = (t: (typeof c.results)[number]) => (t.attempts && t.result === 'passed' ? passedOnAttempt(t.attempts) : t.result);
    out.push(pad([['  test', 'result', 'seconds'], ...c.results.map((t) => [`  ${t.name}`, result(t), String(Math.round(t.seconds * 10) / 10)])]));
    for (const t of c.results.filter((x) => (x.result !== 'passed' || x.attempts) && x.message)) {
      out.push(`  ${t.name}: ${t.result === 'passed' ? 'attempt 1 failed: ' : ''}${t.message!.split('\n')[0]}`);
    }
  }
  return out.join('\n');
}

/** The whole readable report: header, table, step times, verdict. */
export function renderReport(report: LabReport): string {
  const lines: string[] = [];
  const l2 = report.level === 'L2';
  lines.push(`kubelet-lxc lab (smoke ${l2 ? 'L2: server node' : 'L1'}): ${report.verdict.ok ? 'PASS' : 'FAIL'}`);
  lines.push(`started ${report.startedAt}, ${report.seconds} s, qemu ${report.accel.toUpperCase()}, guest ${report.guest.key}${report.guest.cached ? ' (cached)' : ' (built)'}`);
  if (report.accelFallback) {
    const f = report.accelFallback;
    lines.push(`accelerator: TCG after a failed KVM trial (${f.seconds} s): ${f.reason}; console of the attempt: ${f.consoleLog}`);
  } else if (report.accelNote) lines.push(`accelerator: TCG (${report.accelNote})`);
  else lines.push(`accelerator: ${report.accel.toUpperCase()}${report.accel === 'kvm' ? ' (the guest booted under it)' : ''}`);
  const v = report.guest.versions;
  lines.push(`guest: Debian trixie, kernel ${report.guest.kernelRelease}, lxc ${v.lxc ?? '?'}, lxcfs ${v.lxcfs ?? '?'}, containerd ${v.containerd ?? '?'}, runc ${v.runc ?? '?'}`);
  for (const k of ['stock', 'patched'] as const) {
    const kb = report.kubelets[k];
    lines.push(`${k} kubelet: ${kb.path} (${kb.version}, sha256 ${kb.sha256.slice(0, 16)}…)`);
  }
  if (report.l2) {
    lines.push(`L2: kine ${report.l2.kine} on ${report.l2.datastore}; images ${Object.values(report.l2.images).join(', ')}; conformance tier ${report.l2.conformanceTier}`);
  }
  lines.push('');
  lines.push(l2 ? renderL2Table(report) : renderTable(report));
  lines.push('');
  if (l2) {
    for (const r of report.runs) {
      if (!r.l2?.checks.length) continue;
      lines.push(`checks, ${r.id}:`);
      for (const c of r.l2.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
    }
    const conf = renderConformance(report);
    if (conf) lines.push('', conf);
    lines.push('');
  }
  lines.push('steps:');
  lines.push(
    pad(report.steps.map((s) => [`  ${s.step}`, `${s.seconds} s`, `budget ${s.budgetSeconds} s`, s.overBudget ? 'OVER BUDGET' : ''])),
  );
  lines.push('');
  for (const g of report.guestRestarts) {
    lines.push(
      `guest restart: boot ${g.boot} ended ${g.duringRun ? `during run ${g.duringRun}` : 'between runs'} (qemu exit ${g.qemuExit}); ` +
        `the runs left went to boot ${g.boot + 1}. Last console line: ${g.consoleTail.at(-1) ?? '(none)'}`,
    );
  }
  if (report.guestRestarts.length) lines.push('');
  if (report.neutrality?.length) {
    lines.push('neutrality (no fault: the series must change nothing the kubelet reports):');
    lines.push(pad([['  profile', 'fact', 'stock', 'patched', 'stock vs patched'], ...report.neutrality.map((f) => [`  ${f.profile}`, f.fact, clip(f.stock), clip(f.patched), f.same ? 'same' : 'DIFFERENT'])]));
    lines.push('');
  }
  const failing = report.profiles.filter((p) => p.expectPatchedFailure);
  for (const p of failing) {
    const st = report.runs.find((r) => r.profile === p.id && r.kubelet === 'stock');
    const pt = report.runs.find((r) => r.profile === p.id && r.kubelet === 'patched');
    // the kubelet's own error text carries quotes: print it as it is, one line per kubelet
    lines.push(`profile ${p.id} (a failure the series leaves alone: patched must fail as stock, word for word):`);
    lines.push(`  stock:   ${shortError(st?.firstError ?? null, 160)}`, `  patched: ${shortError(pt?.firstError ?? null, 160)}`);
  }
  if (failing.length) lines.push('');
  if (report.verdict.ok) lines.push('verdict: ok');
  else {
    lines.push('verdict: problems');
    for (const p of report.verdict.problems) lines.push(`  - ${p}`);
  }
  return lines.join('\n') + '\n';
}
