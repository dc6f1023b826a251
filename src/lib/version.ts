// The one seam to semver: Kubernetes and stamp versions ("v1.36.4", "v1.36.4+rke2r1"), and Go
// versions compared by their minor ("1.26", "1.26.5", "1.27rc1").
import semver from 'semver';

export interface VersionParts {
  major: number;
  minor: number;
  patch: number;
  prerelease: readonly (string | number)[];
}

/** The parts of a semver version (a leading v is allowed), or undefined when it is none. */
export function parseVersion(version: string): VersionParts | undefined {
  const v = semver.parse(version);
  return v ? { major: v.major, minor: v.minor, patch: v.patch, prerelease: v.prerelease } : undefined;
}

/** A Kubernetes-style tag: "v" and a valid semver version. */
export function isVersionTag(version: string): boolean {
  return version.startsWith('v') && semver.valid(version) !== null;
}

/** Newest first (for sort). */
export function compareVersionsDesc(a: string, b: string): number {
  return semver.rcompare(a, b);
}

export function isPrerelease(version: string): boolean {
  return (semver.prerelease(version) ?? []).length > 0;
}

/**
 * Whether version `have` ("1.26.5", "1.27rc1", "v1.37.1") is at least the minor of `want`
 * ("1.26.7", "1.26"): Go toolchains and Kubernetes releases compared by their minor.
 */
export function minorAtLeast(have: string, want: string): boolean {
  const h = semver.coerce(have);
  const w = semver.coerce(want);
  if (!h || !w) return false;
  return semver.gte(`${h.major}.${h.minor}.0`, `${w.major}.${w.minor}.0`);
}
