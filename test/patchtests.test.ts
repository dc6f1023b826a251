// The stock-vs-patched verdict: parsing real `go test -json` output and judging the matrix.
import { describe, expect, it } from 'vitest';
import { mkdtemp, writeFile, mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { judgeMatrix, parseGoTestJson, formatMatrix, readSiteTests, type SiteTests } from '../src/patchtests.js';
import { PROJECT_ROOT } from '../src/manifest.js';

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
  siteTests: [{ site: 'A', patch: '0005-x.patch', dir: 'a', pkg: 'example.invalid/m/a', testFiles: ['a/a_test.go'], run: '^TestLXCSiteA_' }],
  unitTests: [{ pkg: 'example.invalid/m/a', run: '^TestLXC[^S]' }],
  upstreamPackages: ['example.invalid/m/a'],
};

const good = { 'a/a.go': 'package a\n\nfunc Parse(s string) int { if s == "" { return 1 }; return len(s) }\n', 'a/a_test.go': 'package a\n\nimport "testing"\n\nfunc TestLXCSiteA_Empty(t *testing.T) { if Parse("") != 1 { t.Fatal("empty not defaulted") } }\nfunc TestLXCHelper(t *testing.T) {}\n' };
const stock = { 'a/a.go': 'package a\n\nfunc Parse(s string) int { return len(s) }\n', 'a/a_test.go': good['a/a_test.go'] };
const broken = { 'a/a.go': 'package a\n\nfunc Parse(s string) int { return len(s) }\n', 'a/a_test.go': 'package a\n\nimport "testing"\n\nfunc TestLXCSiteA_Empty(t *testing.T) { NewSeam() }\n' };

describe('patch test matrix', () => {
  it('passes when the site test fails on stock by assertion and passes on patched', async () => {
    const s = parseGoTestJson(await goTestJson(stock, ['-run', '^TestLXCSite', './...']));
    const p = parseGoTestJson(await goTestJson(good, ['./...']));
    expect(s.tests.get('example.invalid/m/a TestLXCSiteA_Empty')).toBe('FAIL');
    expect(p.packages.get('example.invalid/m/a')).toBe('ok');
    const r = judgeMatrix(spec, s, p);
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.rows).toEqual([{ site: 'A', patch: '0005-x.patch', pkg: 'example.invalid/m/a', test: 'TestLXCSiteA_Empty', stock: 'FAIL', patched: 'PASS', ok: true }]);
    expect(formatMatrix(r)).toMatch(/^A\s+0005\s+TestLXCSiteA_Empty\s+FAIL\s+PASS\s+example\.invalid\/m\/a$/m);
  });

  it('fails when a site test already passes on stock (it proves nothing)', async () => {
    const run = parseGoTestJson(await goTestJson(good, ['./...']));
    const r = judgeMatrix(spec, run, run);
    expect(r.ok).toBe(false);
    expect(r.problems[0]).toContain('TestLXCSiteA_Empty is PASS on stock');
  });

  it('does not count a stock build failure as a failing test', async () => {
    const s = parseGoTestJson(await goTestJson(broken, ['-run', '^TestLXCSite', './...']));
    expect(s.packages.get('example.invalid/m/a')).toBe('build-fail');
    const p = parseGoTestJson(await goTestJson(good, ['./...']));
    const r = judgeMatrix(spec, s, p);
    expect(r.ok).toBe(false);
    expect(r.problems.join('\n')).toContain('does not compile on the stock tree');
  });

  it('fails when the site test fails on patched', async () => {
    const s = parseGoTestJson(await goTestJson(stock, ['-run', '^TestLXCSite', './...']));
    const r = judgeMatrix(spec, s, s);
    expect(r.ok).toBe(false);
    expect(r.problems.join('\n')).toContain('FAIL on patched');
  });

  it('reads the shipped v1.36 site-tests.json', async () => {
    const st = await readSiteTests(path.join(PROJECT_ROOT, 'patches', 'v1.36'));
    const sites = new Set(st.siteTests.map((s) => s.site));
    for (const s of ['A', 'B', 'C', 'H', 'I']) expect(sites.has(s), `fatal site ${s} is covered`).toBe(true);
  });
});
