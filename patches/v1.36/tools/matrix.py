#!/usr/bin/env python3
"""Measure the stock-vs-patched matrix described by site-tests.json.

    tools/matrix.py PRISTINE WORKDIR

PRISTINE is a git repository holding Kubernetes v1.36.4 (tag v1.36.4).
WORKDIR/stock   = v1.36.4 + the seam patches + the site test files copied
                  from the patched tree; every site test must fail by
                  assertion (a build failure counts as an error here).
WORKDIR/patched = v1.36.4 + the whole series; every site test, unit test
                  and upstream package must pass.
Runs go with GOTOOLCHAIN=go1.26.5 GOFLAGS="-mod=vendor -trimpath"
CGO_ENABLED=0 (set below); -trimpath only lets the two clones share the
build cache, it does not change what the tests see.
"""
import json, os, re, shutil, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
pdir = os.path.dirname(here)
spec = json.load(open(os.path.join(pdir, "site-tests.json")))
series = [l.strip() for l in open(os.path.join(pdir, "series")) if l.strip() and not l.startswith("#")]
pristine, work = sys.argv[1], sys.argv[2]
env = dict(os.environ, GOTOOLCHAIN="go1.26.5", GOFLAGS="-mod=vendor -trimpath", CGO_ENABLED="0",
           GIT_AUTHOR_DATE="2026-11-24T00:00:00Z", GIT_COMMITTER_DATE="2026-11-24T00:00:00Z",
           GIT_AUTHOR_NAME="kubelet-lxc", GIT_AUTHOR_EMAIL="kubelet-lxc@users.noreply.github.com",
           GIT_COMMITTER_NAME="kubelet-lxc", GIT_COMMITTER_EMAIL="kubelet-lxc@users.noreply.github.com")

def sh(cwd, *args):
    return subprocess.run(args, cwd=cwd, env=env, text=True, capture_output=True)

def tree(name, patches):
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", pristine, d], check=True)
    for p in patches:
        r = sh(d, "git", "am", "-q", os.path.join(pdir, p))
        if r.returncode or r.stderr.strip():
            sys.exit(f"git am {p} in {name}: {r.stderr}")
    return d

def gotest(d, pkg, run):
    r = sh(d, "go", "test", "-count=1", "-v", "-run", run, pkg)
    out = r.stdout + r.stderr
    res = {t: s for s, t in re.findall(r"^\s*--- (PASS|FAIL|SKIP): (\S+)", out, re.M)}
    top = {t: s for t, s in res.items() if "/" not in t}
    built = "[build failed]" not in out and "[setup failed]" not in out
    return r.returncode, top, built, out

patched = tree("patched", series)
stock = tree("stock", spec["seams"])
for s in spec["siteTests"]:
    for f in s["testFiles"]:
        shutil.copy(os.path.join(patched, f), os.path.join(stock, f))

ok = True
print(f"{'site':4} {'patch':6} {'test':58} {'stock':7} {'patched':7}")
for s in spec["siteTests"]:
    rc_s, top_s, built_s, out_s = gotest(stock, s["pkg"], s["run"])
    rc_p, top_p, built_p, out_p = gotest(patched, s["pkg"], s["run"])
    if not built_s or not top_s:
        ok = False
        print(f"{s['site']:4} {s['patch'][:4]:6} STOCK BUILD/SETUP FAILURE in {s['pkg']}\n{out_s[-2000:]}")
        continue
    for t in sorted(set(top_s) | set(top_p)):
        a, b = top_s.get(t, "-"), top_p.get(t, "-")
        good = a == "FAIL" and b == "PASS"
        ok &= good
        print(f"{s['site']:4} {s['patch'][:4]:6} {t:58} {a:7} {b:7}{'' if good else '  <-- WRONG'}")
    if rc_p:
        ok = False
        print(out_p[-3000:])

for u in spec["unitTests"]:
    rc, top, built, out = gotest(patched, u["pkg"], u["run"])
    bad = rc or not top or any(v != "PASS" for v in top.values())
    ok &= not bad
    print(f"unit     {u['pkg']:70} {len(top)} tests {'ok' if not bad else 'FAIL'}")
    if bad:
        print(out[-3000:])

for p in spec["upstreamPackages"]:
    r = sh(patched, "go", "test", "-count=1", p)
    ok &= r.returncode == 0
    print(f"upstream {p:70} {'ok' if r.returncode == 0 else 'FAIL'}")
    if r.returncode:
        print((r.stdout + r.stderr)[-3000:])

print("MATRIX OK" if ok else "MATRIX FAILED")
sys.exit(0 if ok else 1)
