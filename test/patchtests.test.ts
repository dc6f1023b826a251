// The stock-vs-patched verdict: parsing real `go test -json` output and judging the matrix,
// and (pure, from synthetic `go test -json` lines) the same-as-stock comparison.
import { describe, expect, it } from 'vitest';
import { cp, mkdtemp, readFile, readdir, writeFile, mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { compareSame, judgeMatrix, parseGoTestJson, formatMatrix, readSiteTests, siteTestsDrift, stockRunPattern, type SiteTests } from '../src/stages/smoke/patchtests.js';
import { PROJECT_ROOT, listManifests, minorOf } from '../src/manifest.js';
import { doctorFiles } from '../src/stages/build.js';

/** A real Go module with a passing, a failing and a non-compiling package, run by the real go test. */
async function goTestJson(files: Record<string, string>, args: string[]): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kubelet-lxc-gotest-'));
  try {
    await writeFile(path.join(dir, 'go.mod'), 'module example.invalid/m\n\ngo 1.21\n');
    for (const [name, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await writeFile(path.join(dir, name), text);
    }
    const res = await execa('go', ['test', '-count=1', '-json', ...args], { cwd: dir, reject: false, env: { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' } });
    return `${res.stdout}\n${res.stderr}`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const spec: SiteTests = {
  seams: [],
  siteTests: [{ site: 'A', patch: '0005-x.patch', dir: 'a', pkg: 'example.invalid/m/a', testFiles: ['a/a_test.go'], run: '^TestLXCSiteA_', same: '^TestLXCSameA_' }],
  unitTests: [{ pkg: 'example.invalid/m/a', run: '^TestLXC[^S]' }],
  upstreamPackages: ['example.invalid/m/a'],
};

// The site test fails on stock and passes on patched; the same-as-stock test logs the outcome of
// a non-empty input, which must not change.
const siteTest =
  'package a\n\nimport (\n\t"strconv"\n\t"testing"\n)\n\n' +
  'func TestLXCSiteA_Empty(t *testing.T) { if Parse("") != 1 { t.Fatal("empty not defaulted") } }\n' +
  'func TestLXCSameA_Short(t *testing.T) { t.Log(`LXC-SAME {"case":"short","error":null,"value":"` + strconv.Itoa(Parse("ab")) + `"}`) }\n' +
  'func TestLXCHelper(t *testing.T) {}\n';
const good = { 'a/a.go': 'package a\n\nfunc Parse(s string) int { if s == "" { return 1 }; return len(s) }\n', 'a/a_test.go': siteTest };
// Over-reaches: defaults every short value, not only the empty one.
const overreach = { 'a/a.go': 'package a\n\nfunc Parse(s string) int { if len(s) < 3 { return 1 }; return len(s) }\n', 'a/a_test.go': siteTest };
const stock = { 'a/a.go': 'package a\n\nfunc Parse(s string) int { return len(s) }\n', 'a/a_test.go': good['a/a_test.go'] };
const broken = { 'a/a.go': 'package a\n\nfunc Parse(s string) int { return len(s) }\n', 'a/a_test.go': 'package a\n\nimport "testing"\n\nfunc TestLXCSiteA_Empty(t *testing.T) { NewSeam() }\n' };

describe('patch test matrix', () => {
  it('passes when the site test fails on stock by assertion and passes on patched', async () => {
    const s = parseGoTestJson(await goTestJson(stock, ['-run', stockRunPattern(spec), './...']));
    const p = parseGoTestJson(await goTestJson(good, ['./...']));
    expect(s.tests.get('example.invalid/m/a TestLXCSiteA_Empty')).toBe('FAIL');
    expect(s.tests.get('example.invalid/m/a TestLXCHelper')).toBeUndefined();
    expect(p.packages.get('example.invalid/m/a')).toBe('ok');
    const r = judgeMatrix(spec, s, p);
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.rows).toEqual([{ site: 'A', patch: '0005-x.patch', pkg: 'example.invalid/m/a', test: 'TestLXCSiteA_Empty', stock: 'FAIL', patched: 'PASS', sameAsStock: '1/1 same', ok: true }]);
    expect(r.same).toEqual([{ site: 'A', patch: '0005-x.patch', pkg: 'example.invalid/m/a', test: 'TestLXCSameA_Short', case: 'short', stock: { case: 'short', error: null, value: '2' }, patched: { case: 'short', error: null, value: '2' }, result: 'same', ok: true }]);
    expect(formatMatrix(r)).toMatch(/^A\s+0005\s+TestLXCSiteA_Empty\s+FAIL\s+PASS\s+1\/1 same\s+example\.invalid\/m\/a$/m);
  });

  it('fails when a non-empty value gives another result on patched than on stock', async () => {
    const s = parseGoTestJson(await goTestJson(stock, ['-run', stockRunPattern(spec), './...']));
    const p = parseGoTestJson(await goTestJson(overreach, ['./...']));
    expect(p.tests.get('example.invalid/m/a TestLXCSiteA_Empty')).toBe('PASS');
    const r = judgeMatrix(spec, s, p);
    expect(r.ok).toBe(false);
    expect(r.rows[0]).toMatchObject({ stock: 'FAIL', patched: 'PASS', sameAsStock: '0/1 same, 1 DIFFER', ok: true });
    expect(r.same[0]).toMatchObject({ case: 'short', result: 'DIFFERENT', ok: false });
    expect(r.problems).toEqual(['site A: TestLXCSameA_Short case "short" differs from stock: stock ok, 2; patched ok, 1']);
  });

  it('fails when a site test already passes on stock (it proves nothing)', async () => {
    const run = parseGoTestJson(await goTestJson(good, ['./...']));
    const r = judgeMatrix(spec, run, run);
    expect(r.ok).toBe(false);
    expect(r.problems[0]).toContain('TestLXCSiteA_Empty is PASS on stock');
  });

  it('does not count a stock build failure as a failing test', async () => {
    const s = parseGoTestJson(await goTestJson(broken, ['-run', stockRunPattern(spec), './...']));
    expect(s.packages.get('example.invalid/m/a')).toBe('build-fail');
    const p = parseGoTestJson(await goTestJson(good, ['./...']));
    const r = judgeMatrix(spec, s, p);
    expect(r.ok).toBe(false);
    expect(r.problems.join('\n')).toContain('does not compile on the stock tree');
  });

  it('fails when the site test fails on patched', async () => {
    const s = parseGoTestJson(await goTestJson(stock, ['-run', stockRunPattern(spec), './...']));
    const r = judgeMatrix(spec, s, s);
    expect(r.ok).toBe(false);
    expect(r.problems.join('\n')).toContain('FAIL on patched');
  });

  it('every series: a manifest for it, its site-tests.json matching it, and a doctor', async () => {
    const series = (await readdir(path.join(PROJECT_ROOT, 'patches'))).filter((d) => /^v\d+\.\d+$/.test(d)).sort();
    expect(series).toEqual(['v1.35', 'v1.36', 'v1.37']);
    const manifests = listManifests();
    for (const minor of series) {
      const dir = path.join(PROJECT_ROOT, 'patches', minor);
      expect(manifests.filter((m) => m.patchesDir === dir).map((m) => minorOf(m.data.kubernetes.version)), `${minor}: a manifest of that minor uses it`).toContain(minor);
      const st = await readSiteTests(dir);
      expect(await siteTestsDrift(dir, st), minor).toEqual([]);
      expect(new Set(st.siteTests.map((s) => s.site)), minor).toEqual(new Set(['A', 'B', 'C', 'D', 'F', 'G', 'H', 'I', 'J']));
      // the doctor: the shared main package with the series' own files over it
      const doctor = (await doctorFiles(dir)).map((f) => `${f.rel} ${path.relative(path.join(PROJECT_ROOT, 'patches'), f.file)}`);
      expect(doctor, `${minor}: doctor`).toEqual(
        expect.arrayContaining([
          'cmd/kubelet-lxc-doctor/main.go doctor/cmd/kubelet-lxc-doctor/main.go',
          'cmd/kubelet-lxc-doctor/probe.go doctor/cmd/kubelet-lxc-doctor/probe.go',
          `cmd/kubelet-lxc-doctor/cadvisor.go ${minor}/doctor/cmd/kubelet-lxc-doctor/cadvisor.go`,
          `cmd/kubelet-lxc-doctor/release_test.go ${minor}/doctor/cmd/kubelet-lxc-doctor/release_test.go`,
          `pkg/kubelet/cm/lxc_doctor_linux.go ${minor}/doctor/pkg/kubelet/cm/lxc_doctor_linux.go`,
        ]),
      );
      expect(await readFile(path.join(dir, 'doctor', 'cmd', 'kubelet-lxc-doctor', 'release_test.go'), 'utf8'), minor).toContain(`seriesMinor = "${minor}"`);
      // the series file names its release
      const rel = manifests.find((m) => m.patchesDir === dir)!;
      expect(await readFile(path.join(dir, 'series'), 'utf8')).toMatch(new RegExp(`^# kubelet-lxc patch series for Kubernetes ${rel.data.kubernetes.version.replaceAll('.', '\\.')} `));
    }
  });

  it("lays a series' doctor files over the shared doctor, a series file replacing a shared one, and names what is missing", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'doctor-layers-'));
    const put = async (rel: string, text: string) => {
      await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
      await writeFile(path.join(root, rel), text);
    };
    const series = path.join(root, 'v1.99');
    await expect(doctorFiles(series)).rejects.toThrow(/the series .*v1\.99 has no doctor\/ /);
    await put('v1.99/doctor/pkg/kubelet/cm/lxc_doctor_linux.go', 'series hook');
    await expect(doctorFiles(series)).rejects.toThrow(/has no cmd\/kubelet-lxc-doctor\/main\.go: neither .*doctor nor .*v1\.99\/doctor holds it/);
    await put('doctor/cmd/kubelet-lxc-doctor/main.go', 'shared main');
    await put('doctor/cmd/kubelet-lxc-doctor/probe.go', 'shared probe');
    await put('doctor/cmd/kubelet-lxc-doctor/README.md', 'not Go');
    await put('v1.99/doctor/cmd/kubelet-lxc-doctor/probe.go', 'series probe');
    const files = await doctorFiles(series);
    expect(files.map((f) => [f.rel, path.relative(root, f.file)])).toEqual([
      ['cmd/kubelet-lxc-doctor/main.go', 'doctor/cmd/kubelet-lxc-doctor/main.go'],
      ['cmd/kubelet-lxc-doctor/probe.go', 'v1.99/doctor/cmd/kubelet-lxc-doctor/probe.go'],
      ['pkg/kubelet/cm/lxc_doctor_linux.go', 'v1.99/doctor/pkg/kubelet/cm/lxc_doctor_linux.go'],
    ]);
    await rm(root, { recursive: true, force: true });
  });

  it('reads the shipped v1.36 site-tests.json', async () => {
    const st = await readSiteTests(path.join(PROJECT_ROOT, 'patches', 'v1.36'));
    const sites = new Set(st.siteTests.map((s) => s.site));
    for (const s of ['A', 'B', 'C', 'H', 'I']) expect(sites.has(s), `fatal site ${s} is covered`).toBe(true);
    for (const s of st.siteTests) expect(s.same, `site ${s.site} (${s.patch}) has same-as-stock tests`).toBe(`^TestLXCSame${s.site}_`);
    expect(await siteTestsDrift(path.join(PROJECT_ROOT, 'patches', 'v1.36'), st)).toEqual([]);
    expect(stockRunPattern(st)).toBe('(^TestLXCSiteA_|^TestLXCSameA_|^TestLXCSiteB_|^TestLXCSameB_|^TestLXCSiteC_|^TestLXCSameC_|^TestLXCSiteD_|^TestLXCSameD_|^TestLXCSiteF_|^TestLXCSameF_|^TestLXCSiteG_|^TestLXCSameG_|^TestLXCSiteH_|^TestLXCSameH_|^TestLXCSiteI_|^TestLXCSameI_|^TestLXCSiteJ_|^TestLXCSameJ_)');
  });
});

describe('site-tests.json against its series', () => {
  it('names a patch not in series, a test file no patch adds, a file outside its dir and a pattern that matches no test', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'site-tests-'));
    try {
      await cp(path.join(PROJECT_ROOT, 'patches', 'v1.36'), dir, { recursive: true });
      const spec = JSON.parse(await readFile(path.join(dir, 'site-tests.json'), 'utf8')) as SiteTests;
      const [a, b, c, d] = spec.siteTests as [SiteTests['siteTests'][number], SiteTests['siteTests'][number], SiteTests['siteTests'][number], SiteTests['siteTests'][number]];
      a.patch = '0099-gone.patch';
      b.testFiles = [...b.testFiles, `${b.dir}/lxc_site_missing_test.go`];
      c.testFiles = ['pkg/elsewhere/lxc_site_c_test.go'];
      d.same = '^TestLXCSameZ_';
      await writeFile(path.join(dir, 'site-tests.json'), JSON.stringify(spec));
      const problems = await siteTestsDrift(dir, spec);
      expect(problems).toEqual(expect.arrayContaining([
        `site ${a.site} (0099-gone.patch): the patch is not in series`,
        `site ${b.site} (${b.patch}): no patch of the series adds ${b.dir}/lxc_site_missing_test.go`,
        `site ${c.site} (${c.patch}): pkg/elsewhere/lxc_site_c_test.go is not in ${c.dir}`,
        expect.stringMatching(new RegExp(`^site ${d.site} \\(${d.patch.replace(/[.]/g, '\\.')}\\): same pattern \\^TestLXCSameZ_ matches no test function`)),
      ]));
      await expect(readSiteTests(dir)).rejects.toThrow(/does not match the series:/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// Synthetic `go test -json` output: what test2json prints for top-level tests (and their t.Log
// lines) of package P. No Go toolchain involved.
const P = 'example.invalid/m/a';
type Fake = { test: string; action: 'pass' | 'fail' | 'skip'; logs?: string[] };
function goJson(tests: Fake[], pkgAction: 'pass' | 'fail' = 'pass'): string {
  const lines: string[] = [];
  const ev = (o: Record<string, string>) => lines.push(JSON.stringify({ Time: '2026-11-24T00:00:00Z', Package: P, ...o }));
  for (const t of tests) {
    ev({ Action: 'run', Test: t.test });
    ev({ Action: 'output', Test: t.test, Output: `=== RUN   ${t.test}\n` });
    for (const l of t.logs ?? []) ev({ Action: 'output', Test: t.test, Output: `    a_test.go:12: ${l}\n` });
    ev({ Action: 'output', Test: t.test, Output: `--- ${t.action.toUpperCase()}: ${t.test} (0.00s)\n` });
    ev({ Action: t.action, Test: t.test });
  }
  ev({ Action: pkgAction });
  return lines.join('\n');
}
const rec = (c: string, error: string | null, value = '') => `LXC-SAME ${JSON.stringify({ case: c, error, value })}`;
const site: Fake = { test: 'TestLXCSiteA_Empty', action: 'fail' };
const sitePass: Fake = { ...site, action: 'pass' };
/** The matrix for one site whose same-as-stock test logs `stockLogs` on stock and `patchedLogs` on patched. */
function judgeSameLogs(stockLogs: string[], patchedLogs: string[]) {
  const s = parseGoTestJson(goJson([site, { test: 'TestLXCSameA_Failures', action: 'pass', logs: stockLogs }]));
  const p = parseGoTestJson(goJson([sitePass, { test: 'TestLXCHelper', action: 'pass' }, { test: 'TestLXCSameA_Failures', action: 'pass', logs: patchedLogs }]));
  return judgeMatrix(spec, s, p);
}

describe('same as stock (pure)', () => {
  it('collects the LXC-SAME records of each top-level test, subtests included, in log order', () => {
    const run = parseGoTestJson(
      [
        goJson([{ test: 'TestLXCSameA_Failures', action: 'pass', logs: [rec('missing', 'open $TMP/x: no such file or directory'), rec('garbage', null, '7')] }]),
        JSON.stringify({ Action: 'output', Package: P, Test: 'TestLXCSameA_Failures/sub', Output: `        a_test.go:40: ${rec('overflow', 'value out of range')}\n` }),
        JSON.stringify({ Action: 'output', Package: P, Test: 'TestLXCSameA_Failures', Output: '    a_test.go:41: LXC-SAME {"case":"skipped","skip":"running as root"}\n' }),
      ].join('\n'),
    );
    expect(run.same.get(`${P} TestLXCSameA_Failures`)).toEqual([
      { case: 'missing', error: 'open $TMP/x: no such file or directory', value: '' },
      { case: 'garbage', error: null, value: '7' },
      { case: 'overflow', error: 'value out of range', value: '' },
      { case: 'skipped', skip: 'running as root' },
    ]);
    expect(run.sameProblems).toEqual([]);
  });

  it('reports a marker line that is not a record', () => {
    const run = parseGoTestJson(goJson([{ test: 'TestLXCSameA_Failures', action: 'pass', logs: ['LXC-SAME {"case":"x"', 'LXC-SAME {"case":"y","error":1,"value":""}'] }]));
    expect(run.same.size).toBe(0);
    expect(run.sameProblems).toHaveLength(2);
    expect(run.sameProblems[0]).toContain('TestLXCSameA_Failures: not a same-as-stock record');
    const r = judgeMatrix(spec, run, run);
    expect(r.problems).toContain(`stock: ${run.sameProblems[0]}`);
    expect(r.ok).toBe(false);
  });

  it('compares error or not, error text and value', () => {
    const a = { case: 'c', error: 'boom', value: '0' };
    expect(compareSame(a, { ...a })).toBe('same');
    expect(compareSame(a, { ...a, error: 'boom!' })).toBe('DIFFERENT');
    expect(compareSame(a, { ...a, error: null })).toBe('DIFFERENT');
    expect(compareSame({ ...a, error: null }, { ...a, error: null, value: '1' })).toBe('DIFFERENT');
    expect(compareSame({ ...a, error: null, value: '' }, { ...a, error: '', value: '' })).toBe('DIFFERENT');
    expect(compareSame(a, undefined)).toBe('MISSING');
    expect(compareSame(undefined, a)).toBe('MISSING');
    expect(compareSame({ case: 'c', skip: 'root' }, { case: 'c', skip: 'root' })).toBe('skipped');
    expect(compareSame({ case: 'c', skip: 'root' }, a)).toBe('DIFFERENT');
  });

  it('passes when every case is the same, and prints the third column and each case', () => {
    const logs = [rec('missing', 'open $TMP/x: no such file or directory'), rec('negative', null, '-1')];
    const r = judgeSameLogs(logs, logs);
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.rows[0]!.sameAsStock).toBe('2/2 same');
    expect(r.same.map((x) => [x.case, x.result, x.ok])).toEqual([
      ['missing', 'same', true],
      ['negative', 'same', true],
    ]);
    const text = formatMatrix(r);
    expect(text).toMatch(/^site\s+patch\s+test\s+stock\s+patched\s+same as stock\s+package$/m);
    expect(text).toMatch(/^A\s+0005\s+TestLXCSiteA_Empty\s+FAIL\s+PASS\s+2\/2 same\s+example\.invalid\/m\/a$/m);
    expect(text).toMatch(/^A\s+0005\s+missing\s+same\s+error "open \$TMP\/x: no such file or directory"$/m);
    expect(text).toMatch(/^A\s+0005\s+negative\s+same\s+ok, -1$/m);
    expect(text).toContain('every same-as-stock case is the same as stock');
  });

  it('fails on a different error text, a swallowed error, a different value or a missing case', () => {
    const r = judgeSameLogs(
      [rec('missing', 'open $TMP/x: no such file or directory'), rec('garbage', 'parsing "x"'), rec('negative', null, '-1'), rec('overflow', 'out of range')],
      [rec('missing', 'open $TMP/x: no such file or directory'), rec('garbage', null, '0'), rec('negative', null, '0'), rec('eacces', 'permission denied')],
    );
    expect(r.ok).toBe(false);
    expect(r.rows[0]).toMatchObject({ sameAsStock: '1/5 same, 4 DIFFER' });
    expect(r.same.map((x) => [x.case, x.result])).toEqual([
      ['missing', 'same'],
      ['garbage', 'DIFFERENT'],
      ['negative', 'DIFFERENT'],
      ['overflow', 'MISSING'],
      ['eacces', 'MISSING'],
    ]);
    expect(r.problems).toEqual([
      'site A: TestLXCSameA_Failures case "garbage" differs from stock: stock error "parsing \\"x\\""; patched ok, 0',
      'site A: TestLXCSameA_Failures case "negative" differs from stock: stock ok, -1; patched ok, 0',
      'site A: TestLXCSameA_Failures case "overflow" differs from stock: stock error "out of range"; patched not logged',
      'site A: TestLXCSameA_Failures case "eacces" differs from stock: stock not logged; patched error "permission denied"',
    ]);
    const text = formatMatrix(r);
    expect(text).toMatch(/^A\s+0005\s+garbage\s+DIFFERENT\s+stock: error "parsing \\"x\\""$/m);
    expect(text).toMatch(/^\s+patched: ok, 0 {3}<-- WRONG$/m);
    expect(text).toMatch(/TestLXCSiteA_Empty\s+FAIL\s+PASS\s+1\/5 same, 4 DIFFER\s+\S+ {3}<-- WRONG$/m);
  });

  it('counts a case skipped on both trees as no evidence, and a one-sided skip as a difference', () => {
    const skip = 'LXC-SAME {"case":"eacces","skip":"permission bits do not deny reads to root"}';
    const both = judgeSameLogs([skip, rec('garbage', 'x')], [skip, rec('garbage', 'x')]);
    expect(both.ok).toBe(true);
    expect(both.rows[0]!.sameAsStock).toBe('1/2 same, 1 skipped');
    const one = judgeSameLogs([skip], [rec('eacces', 'permission denied')]);
    expect(one.ok).toBe(false);
    expect(one.same[0]!.result).toBe('DIFFERENT');
  });

  it('fails when the same-as-stock test fails, is missing, logs nothing or logs a case twice', () => {
    const logs = [rec('garbage', 'x')];
    const failing = judgeMatrix(
      spec,
      parseGoTestJson(goJson([site, { test: 'TestLXCSameA_Failures', action: 'fail', logs }])),
      parseGoTestJson(goJson([sitePass, { test: 'TestLXCHelper', action: 'pass' }, { test: 'TestLXCSameA_Failures', action: 'pass', logs }])),
    );
    expect(failing.ok).toBe(false);
    expect(failing.problems).toEqual(['site A: same-as-stock test TestLXCSameA_Failures is FAIL on stock and PASS on patched (wanted PASS on both)']);

    const none = judgeMatrix(spec, parseGoTestJson(goJson([site])), parseGoTestJson(goJson([sitePass, { test: 'TestLXCHelper', action: 'pass' }])));
    expect(none.ok).toBe(false);
    expect(none.problems).toEqual(['site A: no same-as-stock test matching ^TestLXCSameA_ ran in example.invalid/m/a']);
    expect(none.rows[0]!.sameAsStock).toBe('none');
    expect(formatMatrix(none)).toMatch(/TestLXCSiteA_Empty\s+FAIL\s+PASS\s+none\s+\S+ {3}<-- WRONG$/m);

    expect(judgeSameLogs([], []).problems).toEqual(['site A: TestLXCSameA_Failures logged no same-as-stock case']);
    expect(judgeSameLogs([rec('garbage', 'x'), rec('garbage', 'x')], [rec('garbage', 'x')]).problems).toEqual(['site A: TestLXCSameA_Failures logged case "garbage" twice on stock']);
  });
});
