// The patch series' proof: its site tests run on the stock tree (plus test seams only) and on
// the patched tree, in the builder container. Every site test must fail on stock by assertion
// and pass on patched; every same-as-stock case (a non-empty failure: missing or unreadable
// file, garbage, negative, overflow) must give the same outcome on both trees; the series'
// unit tests and the touched packages' own suites must pass.
import path from 'node:path';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { schemaProblems, z } from '../../lib/schema.js';
import { run } from '../../lib/exec.js';
import { buildDirAtomic, exists, writeFileAtomic } from '../../lib/fsutil.js';
import { headCommit } from '../../lib/git.js';
import { builderRunArgs, hostGoEnv, type ContainerEngine } from '../../lib/engine.js';
import { StageError, type StageContext } from '../types.js';
import { checkoutWithPatches, readSeries } from '../patch.js';

const siteTestsSchema = z.object({
  seams: z.array(z.string()),
  // run: the site tests (fail on stock, pass on patched); same: the same-as-stock tests, which
  // log one LXC-SAME record per non-empty failure case and must give equal records on both trees.
  siteTests: z.array(z.object({ site: z.string(), patch: z.string(), dir: z.string(), pkg: z.string(), testFiles: z.array(z.string()).min(1), run: z.string(), same: z.string() })).min(1),
  unitTests: z.array(z.object({ pkg: z.string(), run: z.string() })),
  upstreamPackages: z.array(z.string()),
});
export type SiteTests = z.infer<typeof siteTestsSchema>;

export async function readSiteTests(patchesDir: string): Promise<SiteTests> {
  const file = path.join(patchesDir, 'site-tests.json');
  const parsed = schemaProblems(siteTestsSchema, JSON.parse(await readFile(file, 'utf8')));
  if (!parsed.value) throw new StageError(`invalid ${file}: ${parsed.problems.join('; ')}`, 'smoke');
  const drift = await siteTestsDrift(patchesDir, parsed.value);
  if (drift.length) throw new StageError(`${file} does not match the series:\n  ${drift.join('\n  ')}`, 'smoke');
  return parsed.value;
}

/**
 * What in site-tests.json no longer matches the series: a patch it names that `series` does not
 * list, a test file no patch adds, a file outside the entry's dir, or a run/same pattern that
 * matches no test function the series adds there. (The one check of the file, in place of the
 * scripts that once generated it.)
 */
export async function siteTestsDrift(patchesDir: string, spec: SiteTests): Promise<string[]> {
  const series = (await readSeries(patchesDir)).map((e) => e.file);
  const problems: string[] = [];
  for (const p of spec.seams) if (!series.includes(p)) problems.push(`seam ${p} is not in series`);
  // the lines each patch adds, per file it touches
  const added = new Map<string, string[]>();
  for (const p of series) {
    let file: string | undefined;
    for (const line of (await readFile(path.join(patchesDir, p), 'utf8')).split('\n')) {
      if (line.startsWith('+++ ')) {
        file = line === '+++ /dev/null' ? undefined : line.slice(4).replace(/^b\//, '');
        if (file && !added.has(file)) added.set(file, []);
      } else if (file && line.startsWith('+')) added.get(file)!.push(line.slice(1));
    }
  }
  for (const s of spec.siteTests) {
    const label = `site ${s.site} (${s.patch})`;
    if (!series.includes(s.patch)) problems.push(`${label}: the patch is not in series`);
    const funcs: string[] = [];
    for (const f of s.testFiles) {
      if (path.posix.dirname(f) !== s.dir) problems.push(`${label}: ${f} is not in ${s.dir}`);
      const lines = added.get(f);
      if (!lines) problems.push(`${label}: no patch of the series adds ${f}`);
      for (const l of lines ?? []) {
        const m = /^func (Test\w+)\(t \*testing\.T\)/.exec(l);
        if (m) funcs.push(m[1]!);
      }
    }
    for (const [what, re] of [['run', s.run], ['same', s.same]] as const) {
      if (!funcs.some((n) => new RegExp(re).test(n))) problems.push(`${label}: ${what} pattern ${re} matches no test function in ${s.testFiles.join(', ')}`);
    }
  }
  return problems;
}

/** The `go test -run` pattern for the stock tree: every site test and every same-as-stock test. */
export function stockRunPattern(spec: SiteTests): string {
  return `(${[...new Set(spec.siteTests.flatMap((s) => [s.run, s.same]))].join('|')})`;
}

export type TestOutcome = 'PASS' | 'FAIL' | 'SKIP' | 'BUILD-FAIL' | 'NOT-RUN';

/** One same-as-stock case as a Go test logged it: its outcome, or why it could not be set up. */
export type SameRecord = { case: string; error: string | null; value: string } | { case: string; skip: string };

const SAME_MARKER = 'LXC-SAME ';
const sameRecordSchema = z.union([
  z.object({ case: z.string().min(1), error: z.string().nullable(), value: z.string() }).strict(),
  z.object({ case: z.string().min(1), skip: z.string().min(1) }).strict(),
]);

export interface GoTestRun {
  tests: Map<string, TestOutcome>; // "<pkg> <TestName>" -> outcome (top-level tests only)
  packages: Map<string, 'ok' | 'fail' | 'build-fail'>;
  same: Map<string, SameRecord[]>; // "<pkg> <TestName>" -> LXC-SAME records, in log order
  sameProblems: string[]; // LXC-SAME lines that are not a valid record
  output: string;
}

/** Parse `go test -json`: per top-level test and per package. */
export function parseGoTestJson(text: string): GoTestRun {
  const tests = new Map<string, TestOutcome>();
  const packages = new Map<string, 'ok' | 'fail' | 'build-fail'>();
  const same = new Map<string, SameRecord[]>();
  const sameProblems: string[] = [];
  const buildFailed = new Set<string>();
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) {
      if (line.trim()) out.push(line);
      continue;
    }
    let ev: { Action?: string; Package?: string; ImportPath?: string; Test?: string; Output?: string };
    try {
      ev = JSON.parse(line);
    } catch {
      out.push(line);
      continue;
    }
    if (ev.Output) out.push(ev.Output.replace(/\n$/, ''));
    if (ev.Action === 'build-fail' && ev.ImportPath) buildFailed.add(ev.ImportPath.split(' ')[0]!);
    if (!ev.Package) continue;
    if (ev.Output && /\[(build|setup) failed\]/.test(ev.Output)) buildFailed.add(ev.Package);
    const marker = ev.Output?.indexOf(SAME_MARKER) ?? -1;
    if (ev.Test && ev.Output && marker >= 0) {
      const key = `${ev.Package} ${ev.Test.split('/')[0]}`;
      const text = ev.Output.slice(marker + SAME_MARKER.length).trim();
      let rec: unknown;
      try {
        rec = JSON.parse(text);
      } catch {
        rec = undefined;
      }
      const parsed = schemaProblems(sameRecordSchema, rec);
      if (parsed.value) same.set(key, [...(same.get(key) ?? []), parsed.value]);
      else sameProblems.push(`${key}: not a same-as-stock record: ${text}`);
    }
    if (ev.Test && !ev.Test.includes('/') && (ev.Action === 'pass' || ev.Action === 'fail' || ev.Action === 'skip')) {
      tests.set(`${ev.Package} ${ev.Test}`, ev.Action.toUpperCase() as TestOutcome);
    }
    if (!ev.Test && (ev.Action === 'pass' || ev.Action === 'fail')) packages.set(ev.Package, ev.Action === 'pass' ? 'ok' : 'fail');
  }
  for (const p of buildFailed) packages.set(p, 'build-fail');
  return { tests, packages, same, sameProblems, output: out.join('\n') };
}

export interface MatrixRow {
  site: string;
  patch: string;
  pkg: string;
  test: string;
  stock: TestOutcome;
  patched: TestOutcome;
  sameAsStock: string; // the (site, patch, package)'s same-as-stock cases, e.g. "12/12 same"
  ok: boolean; // the site test: FAIL on stock, PASS on patched (the cases are judged in MatrixReport.same)
}

/** One same-as-stock case: its record on each tree and whether they agree. */
export interface SameRow {
  site: string;
  patch: string;
  pkg: string;
  test: string;
  case: string;
  stock?: SameRecord;
  patched?: SameRecord;
  result: 'same' | 'skipped' | 'DIFFERENT' | 'MISSING';
  ok: boolean;
}

export interface MatrixReport {
  rows: MatrixRow[];
  same: SameRow[];
  unit: { pkg: string; tests: number; ok: boolean }[];
  upstream: { pkg: string; result: string; ok: boolean }[];
  vet?: { ok: boolean; packages: number; output: string };
  ok: boolean;
  problems: string[];
}

function matches(run: string, name: string): boolean {
  return new RegExp(run).test(name);
}

function outcomeText(r: SameRecord): string {
  if ('skip' in r) return `skipped: ${r.skip}`;
  return r.error === null ? `ok, ${r.value}` : `error ${JSON.stringify(r.error)}${r.value ? `, ${r.value}` : ''}`;
}

/** Compare one case's records: equal error (or both none) and equal value; a case skipped on both trees is not evidence either way. */
export function compareSame(stock: SameRecord | undefined, patched: SameRecord | undefined): SameRow['result'] {
  if (!stock || !patched) return 'MISSING';
  if ('skip' in stock || 'skip' in patched) return 'skip' in stock && 'skip' in patched && stock.skip === patched.skip ? 'skipped' : 'DIFFERENT';
  return stock.error === patched.error && stock.value === patched.value ? 'same' : 'DIFFERENT';
}

/** The same-as-stock cases of one site entry: every matching test passes on both trees and every case gives equal records. */
function judgeSame(s: SiteTests['siteTests'][number], stock: GoTestRun, patched: GoTestRun, problems: string[]): SameRow[] {
  const rows: SameRow[] = [];
  const names = new Set<string>();
  for (const key of [...stock.tests.keys(), ...patched.tests.keys()]) {
    const [pkg, test] = key.split(' ') as [string, string];
    if (pkg === s.pkg && matches(s.same, test)) names.add(test);
  }
  if (names.size === 0) problems.push(`site ${s.site}: no same-as-stock test matching ${s.same} ran in ${s.pkg}`);
  for (const test of [...names].sort()) {
    const key = `${s.pkg} ${test}`;
    const a = stock.tests.get(key) ?? 'NOT-RUN';
    const b = patched.tests.get(key) ?? 'NOT-RUN';
    if (a !== 'PASS' || b !== 'PASS') problems.push(`site ${s.site}: same-as-stock test ${test} is ${a} on stock and ${b} on patched (wanted PASS on both)`);
    const byCase = (recs: SameRecord[] | undefined, tree: string) => {
      const m = new Map<string, SameRecord>();
      for (const r of recs ?? []) {
        if (m.has(r.case)) problems.push(`site ${s.site}: ${test} logged case "${r.case}" twice on ${tree}`);
        m.set(r.case, r);
      }
      return m;
    };
    const sc = byCase(stock.same.get(key), 'stock');
    const pc = byCase(patched.same.get(key), 'patched');
    if (sc.size === 0 && pc.size === 0) problems.push(`site ${s.site}: ${test} logged no same-as-stock case`);
    for (const c of new Set([...sc.keys(), ...pc.keys()])) {
      const result = compareSame(sc.get(c), pc.get(c));
      const ok = result === 'same' || result === 'skipped';
      if (!ok) {
        const st = sc.get(c);
        const pt = pc.get(c);
        problems.push(`site ${s.site}: ${test} case "${c}" differs from stock: stock ${st ? outcomeText(st) : 'not logged'}; patched ${pt ? outcomeText(pt) : 'not logged'}`);
      }
      rows.push({ site: s.site, patch: s.patch, pkg: s.pkg, test, case: c, stock: sc.get(c), patched: pc.get(c), result, ok });
    }
  }
  return rows;
}

function sameSummary(rows: SameRow[]): string {
  if (rows.length === 0) return 'none';
  const n = (r: SameRow['result']) => rows.filter((x) => x.result === r).length;
  const parts = [`${n('same')}/${rows.length} same`];
  if (n('skipped')) parts.push(`${n('skipped')} skipped`);
  if (n('DIFFERENT') + n('MISSING')) parts.push(`${n('DIFFERENT') + n('MISSING')} DIFFER`);
  return parts.join(', ');
}

/** The verdict, from the two runs: pure, so that it is unit-tested. */
export function judgeMatrix(spec: SiteTests, stock: GoTestRun, patched: GoTestRun): MatrixReport {
  const rows: MatrixRow[] = [];
  const same: SameRow[] = [];
  const problems: string[] = [...stock.sameProblems.map((p) => `stock: ${p}`), ...patched.sameProblems.map((p) => `patched: ${p}`)];
  for (const s of spec.siteTests) {
    const sameRows = judgeSame(s, stock, patched, problems);
    same.push(...sameRows);
    const sameAsStock = sameSummary(sameRows);
    if (stock.packages.get(s.pkg) === 'build-fail') problems.push(`site ${s.site}: ${s.pkg} does not compile on the stock tree (site tests must fail by assertion, not by a build error)`);
    const names = new Set<string>();
    for (const key of [...stock.tests.keys(), ...patched.tests.keys()]) {
      const [pkg, test] = key.split(' ') as [string, string];
      if (pkg === s.pkg && matches(s.run, test)) names.add(test);
    }
    if (names.size === 0) problems.push(`site ${s.site}: no test matching ${s.run} ran in ${s.pkg}`);
    for (const test of [...names].sort()) {
      const a = stock.tests.get(`${s.pkg} ${test}`) ?? (stock.packages.get(s.pkg) === 'build-fail' ? 'BUILD-FAIL' : 'NOT-RUN');
      const b = patched.tests.get(`${s.pkg} ${test}`) ?? (patched.packages.get(s.pkg) === 'build-fail' ? 'BUILD-FAIL' : 'NOT-RUN');
      const ok = a === 'FAIL' && b === 'PASS';
      if (!ok) problems.push(`site ${s.site}: ${test} is ${a} on stock and ${b} on patched (wanted FAIL, PASS)`);
      rows.push({ site: s.site, patch: s.patch, pkg: s.pkg, test, stock: a, patched: b, sameAsStock, ok });
    }
  }
  const unit = spec.unitTests.map((u) => {
    const results = [...patched.tests.entries()].filter(([k]) => k.startsWith(`${u.pkg} `) && matches(u.run, k.split(' ')[1]!));
    const ok = results.length > 0 && results.every(([, v]) => v === 'PASS');
    if (!ok) problems.push(`unit tests ${u.run} in ${u.pkg}: ${results.length ? results.filter(([, v]) => v !== 'PASS').map(([k, v]) => `${k} ${v}`).join(', ') : 'none ran'}`);
    return { pkg: u.pkg, tests: results.length, ok };
  });
  const upstream = spec.upstreamPackages.map((pkg) => {
    const result = patched.packages.get(pkg) ?? 'not run';
    if (result !== 'ok') problems.push(`upstream tests of ${pkg} on the patched tree: ${result}`);
    return { pkg, result, ok: result === 'ok' };
  });
  return { rows, same, unit, upstream, ok: problems.length === 0, problems };
}

export function formatMatrix(r: MatrixReport): string {
  const w = Math.max(4, ...r.rows.map((x) => x.test.length));
  const v = Math.max(13, ...r.rows.map((x) => x.sameAsStock.length));
  const lines = [`${'site'.padEnd(5)}${'patch'.padEnd(7)}${'test'.padEnd(w + 2)}${'stock'.padEnd(12)}${'patched'.padEnd(9)}${'same as stock'.padEnd(v + 2)}package`];
  for (const x of r.rows) lines.push(`${x.site.padEnd(5)}${x.patch.slice(0, 4).padEnd(7)}${x.test.padEnd(w + 2)}${x.stock.padEnd(12)}${x.patched.padEnd(9)}${x.sameAsStock.padEnd(v + 2)}${x.pkg}${x.ok && /^\d+\/\d+ same(, \d+ skipped)?$/.test(x.sameAsStock) ? '' : '   <-- WRONG'}`);
  if (r.same.length) {
    const c = Math.max(4, ...r.same.map((x) => x.case.length));
    lines.push('', 'same as stock, per case (non-empty failures: error or not, error text and value must equal the stock tree\'s):');
    lines.push(`${'site'.padEnd(5)}${'patch'.padEnd(7)}${'case'.padEnd(c + 2)}${'result'.padEnd(11)}outcome`);
    for (const x of r.same) {
      const head = `${x.site.padEnd(5)}${x.patch.slice(0, 4).padEnd(7)}${x.case.padEnd(c + 2)}${x.result.padEnd(11)}`;
      if (x.ok && x.patched) lines.push(`${head}${outcomeText(x.patched)}`);
      else lines.push(`${head}stock: ${x.stock ? outcomeText(x.stock) : 'not logged'}`, `${' '.repeat(head.length)}patched: ${x.patched ? outcomeText(x.patched) : 'not logged'}   <-- WRONG`);
    }
  }
  for (const u of r.unit) lines.push(`unit      ${u.pkg}: ${u.tests} tests ${u.ok ? 'ok' : 'FAIL'}`);
  for (const u of r.upstream) lines.push(`upstream  ${u.pkg}: ${u.result}`);
  if (r.vet) lines.push(`go vet    ${r.vet.ok ? 'clean' : `FAILED\n${r.vet.output}`} (${r.vet.packages} packages)`);
  lines.push(r.ok ? 'patch tests: OK (every site test fails on stock and passes on patched; every same-as-stock case is the same as stock)' : `patch tests: FAILED\n  ${r.problems.join('\n  ')}`);
  return lines.join('\n');
}

/** Stock tree + seam patches + the site test files: where the site tests must fail. */
async function stockWithSeams(ctx: StageContext, stockTree: string, stockCommit: string, sourceDateEpoch: number, patchedTree: string, spec: SiteTests): Promise<string> {
  const target = path.join(ctx.paths.trees, 'stock-seams');
  const seams = spec.seams.map((file) => ({ file, path: path.join(ctx.manifest.patchesDir, file) }));
  await buildDirAtomic(target, async (dir) => {
    await checkoutWithPatches(ctx, { from: stockTree, commit: stockCommit, dir, patches: seams, dateEpoch: sourceDateEpoch, stage: 'smoke' });
    for (const s of spec.siteTests) {
      for (const f of s.testFiles) {
        await mkdir(path.dirname(path.join(dir, f)), { recursive: true });
        await copyFile(path.join(patchedTree, f), path.join(dir, f));
      }
    }
  });
  return target;
}

/** Run `go <args>` on a tree: in the builder container (source read-only, shared build cache), or on the host. */
async function goIn(ctx: StageContext, engine: string, image: string, tree: string, goArgs: string[], label: string, onLine?: (l: string) => void) {
  const step = ctx.log.step(`${label} (${engine})`);
  const res =
    engine === 'host'
      ? await run('go', goArgs, { cwd: tree, reject: false, signal: ctx.signal, onLine, env: hostGoEnv(ctx.manifest.data.go.version) })
      : await run(engine, builderRunArgs({ engine: engine as ContainerEngine, image, tree, goArgs }), { reject: false, signal: ctx.signal, onLine });
  step.succeed(`${label}: exit ${res.exitCode}`);
  return res;
}

async function goTestIn(ctx: StageContext, engine: string, image: string, tree: string, args: string[], label: string): Promise<GoTestRun> {
  let events = 0;
  const res = await goIn(ctx, engine, image, tree, ['test', '-count=1', '-trimpath', '-json', ...args], `go test on the ${label} tree`, (l) => {
    if (/"Action":"(pass|fail)"/.test(l) && /"Test":"TestLXC/.test(l)) ctx.log.detail(`${++events} LXC tests done`);
  });
  return parseGoTestJson(`${res.stdout}\n${res.stderr}`);
}

export async function runPatchTests(ctx: StageContext, o: { engine: string; image: string; stockTree: string; stockCommit: string; sourceDateEpoch: number; patchedTree: string; patchedCommit: string }): Promise<{ report: MatrixReport; files: string[] }> {
  const spec = await readSiteTests(ctx.manifest.patchesDir);
  for (const s of spec.siteTests) for (const f of s.testFiles) if (!(await exists(path.join(o.patchedTree, f)))) throw new StageError(`site-tests.json names ${f}, which the patched tree does not have`, 'smoke');
  const stockTree = await stockWithSeams(ctx, o.stockTree, o.stockCommit, o.sourceDateEpoch, o.patchedTree, spec);
  ctx.log.info(`patch tests: stock+seams tree at ${await headCommit(stockTree)}`);
  const sitePkgs = [...new Set(spec.siteTests.map((s) => s.pkg))];
  const allPkgs = [...new Set([...sitePkgs, ...spec.unitTests.map((u) => u.pkg), ...spec.upstreamPackages])];
  const stock = await goTestIn(ctx, o.engine, o.image, stockTree, ['-run', stockRunPattern(spec), ...sitePkgs], 'stock (+seams)');
  const patched = await goTestIn(ctx, o.engine, o.image, o.patchedTree, allPkgs, 'patched');
  const report = judgeMatrix(spec, stock, patched);
  const vet = await goIn(ctx, o.engine, o.image, o.patchedTree, ['vet', ...allPkgs], 'go vet on the patched tree');
  report.vet = { ok: vet.exitCode === 0, packages: allPkgs.length, output: vet.all.trim().split('\n').slice(-40).join('\n') };
  if (!report.vet.ok) {
    report.ok = false;
    report.problems.push(`go vet on the touched packages is not clean:\n${report.vet.output}`);
  }
  const json = path.join(ctx.paths.reports, 'patch-tests.json');
  const txt = path.join(ctx.paths.reports, 'patch-tests.txt');
  await writeFileAtomic(json, `${JSON.stringify({ ...report, stockTree: await headCommit(stockTree), patchedTree: o.patchedCommit }, null, 2)}\n`);
  await writeFileAtomic(txt, `${formatMatrix(report)}\n${report.ok ? '' : `\n--- stock output (tail) ---\n${stock.output.split('\n').slice(-80).join('\n')}\n--- patched output (tail) ---\n${patched.output.split('\n').slice(-80).join('\n')}\n`}`);
  return { report, files: [json, txt] };
}
