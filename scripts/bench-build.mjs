#!/usr/bin/env zx
// Benchmark: the product's build overhead against a bare `go build ./cmd/kubelet` in the same
// patched tree, with the same Go, on the same machine. Prints times and their ratio.
//   npx zx scripts/bench-build.mjs [--release v1.36.4] [--cold] [--runs 1]
// --cold: fresh Go build caches on both sides (a new GOCACHE dir for the bare build, a new
// throwaway cache volume for the container build; the usual one is left alone); default: warm
// caches on both sides.
import path from 'node:path';
import os from 'node:os';

$.verbose = false;
const root = path.resolve(import.meta.dirname, '..');
const release = argv.release ? ['--release', String(argv.release)] : [];
const runs = Number(argv.runs ?? 1);
const cold = Boolean(argv.cold);
const cli = [process.execPath, path.join(root, 'bin/kubelet-lxc.js')];

// Make sure the patched tree exists (source + patch), and read where it is.
const prep = JSON.parse((await $`${cli} build ${release} --to patch --json`).stdout);
const tree = path.join(root, 'work', 'trees', prep.release, 'patched');
const manifest = JSON.parse((await $`${cli} releases --json`).stdout).find((m) => m.id === prep.release);
const goVersion = manifest.go.version;

async function timeIt(fn) {
  const t = Date.now();
  await fn();
  return (Date.now() - t) / 1000;
}

const bare = [];
const product = [];
const warmCache = path.join(os.homedir(), '.cache', 'kubelet-lxc-bench-gocache');
if (!cold) {
  // Warm mode: one untimed build on each side first, so both start from a full cache.
  await $({ cwd: tree, env: { ...process.env, GOTOOLCHAIN: `go${goVersion}`, GOFLAGS: '-mod=vendor', CGO_ENABLED: '0', GOCACHE: warmCache, GOOS: 'linux', GOARCH: 'amd64' } })`go build -trimpath -buildvcs=false -o ${path.join(os.tmpdir(), 'bench-warmup')} ./cmd/kubelet`;
  await $`${cli} compile ${release} --platform linux/amd64`;
}
for (let i = 0; i < runs; i++) {
  const gocache = cold ? fs.mkdtempSync(path.join(os.tmpdir(), 'bench-gocache-')) : warmCache;
  const out = path.join(os.tmpdir(), `bench-kubelet-${process.pid}`);
  bare.push(await timeIt(() => $({ cwd: tree, env: { ...process.env, GOTOOLCHAIN: `go${goVersion}`, GOFLAGS: '-mod=vendor', CGO_ENABLED: '0', GOCACHE: gocache, GOOS: 'linux', GOARCH: 'amd64' } })`go build -trimpath -buildvcs=false -o ${out} ./cmd/kubelet`));
  // cold: a throwaway cache volume, so the maintainer's warm one is left alone
  const volume = `kubelet-lxc-bench-gocache-${process.pid}-${i}`;
  const env = cold ? { ...process.env, KUBELET_LXC_GOCACHE_VOLUME: volume } : process.env;
  product.push(await timeIt(() => $({ env })`${cli} compile ${release} --platform linux/amd64 --force`));
  if (cold) {
    fs.rmSync(gocache, { recursive: true, force: true });
    await $`docker volume rm -f ${volume}`;
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`caches: ${cold ? 'cold' : 'warm'}, runs: ${runs}, Go ${goVersion}, linux/amd64, ${os.cpus().length} CPUs`);
console.log(`bare go build ./cmd/kubelet : ${median(bare).toFixed(1)} s  (${bare.map((x) => x.toFixed(1)).join(', ')})`);
console.log(`kubelet-lxc compile         : ${median(product).toFixed(1)} s  (${product.map((x) => x.toFixed(1)).join(', ')})`);
console.log(`ratio product / bare        : ${(median(product) / median(bare)).toFixed(2)}`);
