// A local Go module proxy in the proxy's file layout (<module>/@v/list, .info, .mod, .zip),
// served over file://, made from the fixture tree: the root module and its staging modules.
import { cp, mkdir, readdir, rm, writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const FIXTURE_KINE_VERSION = 'v0.99.0';
const FIXTURE_KINE_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'kine');

export interface LocalProxy {
  dir: string;
  url: string;
}

async function zipModule(srcDir: string, modPath: string, version: string, proxyDir: string, exclude: (rel: string) => boolean): Promise<void> {
  const stage = path.join(proxyDir, '.stage', `${modPath}@${version}`);
  await rm(path.join(proxyDir, '.stage'), { recursive: true, force: true });
  await mkdir(stage, { recursive: true });
  await cp(srcDir, stage, { recursive: true, filter: (src) => !exclude(path.relative(srcDir, src)) });
  const vdir = path.join(proxyDir, modPath, '@v');
  await mkdir(vdir, { recursive: true });
  await execa('zip', ['-q', '-X', '-D', '-r', path.join(vdir, `${version}.zip`), `${modPath}@${version}`], { cwd: path.join(proxyDir, '.stage') });
  await writeFile(path.join(vdir, `${version}.mod`), await readFile(path.join(srcDir, 'go.mod')));
  await writeFile(path.join(vdir, `${version}.info`), JSON.stringify({ Version: version, Time: '2026-03-01T12:00:00Z' }));
  // one proxy may serve several versions of a module (rebase and upstream-watch fixtures)
  const listed = (await readFile(path.join(vdir, 'list'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
  await writeFile(path.join(vdir, 'list'), `${[...new Set([...listed, version])].join('\n')}\n`);
  await rm(path.join(proxyDir, '.stage'), { recursive: true, force: true });
}

/** tree: a checkout of the fixture at a tag (root module with staging/src/k8s.io/*). */
export async function makeLocalProxy(tree: string, proxyDir: string, rootVersion: string, stagingVersion: string): Promise<LocalProxy> {
  await mkdir(proxyDir, { recursive: true });
  // Nested modules and vendor/ are not part of a module zip, as with the real k8s.io/kubernetes.
  await zipModule(tree, 'k8s.io/kubernetes', rootVersion, proxyDir, (rel) => rel === '.git' || rel.startsWith('.git/') || rel === 'staging' || rel.startsWith('staging/') || rel === 'vendor' || rel.startsWith('vendor/'));
  const stagingRoot = path.join(tree, 'staging', 'src', 'k8s.io');
  for (const name of await readdir(stagingRoot)) {
    await zipModule(path.join(stagingRoot, name), `k8s.io/${name}`, stagingVersion, proxyDir, () => false);
  }
  // the L2 lab's kine, which pin resolves too (tests pass --kine FIXTURE_KINE_VERSION)
  await zipModule(FIXTURE_KINE_DIR, 'github.com/k3s-io/kine', FIXTURE_KINE_VERSION, proxyDir, () => false);
  return { dir: proxyDir, url: `file://${proxyDir}` };
}

/** Replace one file's content inside a module zip (a tampered proxy). */
export async function tamperZip(proxyDir: string, modPath: string, version: string, fileInModule: string, content: string): Promise<void> {
  const work = path.join(proxyDir, '.tamper');
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const zip = path.join(proxyDir, modPath, '@v', `${version}.zip`);
  await execa('unzip', ['-q', zip, '-d', work]);
  await writeFile(path.join(work, `${modPath}@${version}`, fileInModule), content);
  await rm(zip);
  await execa('zip', ['-q', '-X', '-D', '-r', zip, `${modPath}@${version}`], { cwd: work });
  await rm(work, { recursive: true, force: true });
}

/** Module caches are read-only; make one removable. */
export async function removeModCache(dir: string): Promise<void> {
  await execa('chmod', ['-R', 'u+w', dir], { reject: false });
  await rm(dir, { recursive: true, force: true });
}

/**
 * One more release of the fixture in a proxy: the checkout reset to `base`, changed by `change`,
 * served as k8s.io/kubernetes@version with its staging modules at v0.<minor>.<patch>.
 */
export async function serveFixtureRelease(checkout: string, proxyDir: string, base: string, version: string, change: (tree: string) => Promise<void>): Promise<void> {
  await execa('git', ['checkout', '-q', '-f', base], { cwd: checkout });
  await execa('git', ['clean', '-qfd'], { cwd: checkout });
  await change(checkout);
  await makeLocalProxy(checkout, proxyDir, version, version.replace(/^v1\./, 'v0.'));
}
