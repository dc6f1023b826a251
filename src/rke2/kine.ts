// kine, RKE2's etcd shim for SQLite and SQL datastores: which version each RKE2 release runs.
// RKE2 builds kine into its supervisor; its go.mod at the release tag requires
// github.com/k3s-io/kine at the version below. The lab's L2 server node runs that kine, built
// from the Go module proxy (its h1: hash pinned in the release manifest by `pin`).
import { StageError } from '../stages/types.js';

export const KINE_MODULE = 'github.com/k3s-io/kine';

/** RKE2 release -> the kine version its go.mod requires (read from rancher/rke2's go.mod at the tag). */
export const RKE2_KINE_VERSIONS: Readonly<Record<string, string>> = Object.freeze({
  'v1.35.4+rke2r1': 'v0.14.16',
  'v1.36.4+rke2r1': 'v0.16.4',
});

/** The kine version for a release: --kine when given, else the table; an unknown release names the flag. */
export function kineVersionFor(rke2: string, flag: string | undefined): string {
  if (flag) {
    if (!/^v\d+\.\d+\.\d+$/.test(flag)) throw new StageError(`--kine must be a kine release such as v0.16.4, got "${flag}"`, 'cli');
    return flag;
  }
  const known = RKE2_KINE_VERSIONS[rke2];
  if (!known) {
    throw new StageError(
      `which kine RKE2 ${rke2} runs is not known here: pass --kine <version> (the ${KINE_MODULE} version in rancher/rke2's go.mod at tag ${rke2})`,
      'cli',
    );
  }
  return known;
}
