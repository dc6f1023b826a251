// The readable form of a lab report (lab-report.txt).
import type { LabReport, LabRun } from './types.js';

const yes = (b: boolean): string => (b ? 'yes' : 'no');

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

function outcome(r: LabRun): string {
  if (!r.completed) return 'MISSING';
  if (!r.profileApplied) return 'NOT-APPLIED';
  return r.passed ? 'pass' : 'FAIL';
}

/** The profile x kubelet table. */
export function renderTable(report: Pick<LabReport, 'profiles' | 'runs'>): string {
  const rows: string[][] = [['profile', 'kubelet', 'expected', 'result', 'CM started', 'healthz', 'pod Running', 'to Running', 'first error']];
  for (const p of report.profiles) {
    for (const k of ['stock', 'patched'] as const) {
      const r = report.runs.find((x) => x.profile === p.id && x.kubelet === k);
      const expected = k === 'patched' ? 'pass' : p.expectStockFailure ? 'fail' : 'pass';
      if (!r) {
        rows.push([p.id, k, expected, 'MISSING', '-', '-', '-', '-', '-']);
        continue;
      }
      rows.push([
        p.id,
        k,
        expected,
        outcome(r),
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

/** The whole readable report: header, table, step times, verdict. */
export function renderReport(report: LabReport): string {
  const lines: string[] = [];
  lines.push(`kubelet-lxc lab (smoke L1): ${report.verdict.ok ? 'PASS' : 'FAIL'}`);
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
  lines.push('');
  lines.push(renderTable(report));
  lines.push('');
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
  if (report.verdict.ok) lines.push('verdict: ok');
  else {
    lines.push('verdict: problems');
    for (const p of report.verdict.problems) lines.push(`  - ${p}`);
  }
  return lines.join('\n') + '\n';
}
