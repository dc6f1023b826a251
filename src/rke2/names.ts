// Names and places shared by the RKE2 packaging: artifact file names, the runtime image tag, and
// where the kubelet-path bundle installs on a node.
import { archOf, type Platform } from '../manifest.js';

/**
 * Where the bundle puts the kubelet on a node, per version:
 * - outside RKE2's data-dir (/var/lib/rancher/rke2 by default, but configurable), which
 *   rke2-uninstall.sh and rke2-killall.sh remove: a kubelet-path pointing there would dangle;
 * - under /usr/local, the place for locally installed software that package managers and RKE2
 *   upgrades leave alone;
 * - one folder per version, so that installing a new version never rewrites the file a running
 *   kubelet was started from, and the switch between versions is the atomic rename of one
 *   config drop-in.
 */
export const KUBELET_INSTALL_ROOT = '/usr/local/lib/kubelet-lxc';
/** The RKE2 config drop-in the installer writes (RKE2 reads config.yaml.d/*.yaml in name order, later wins). */
export const DROPIN_INSTALL_PATH = '/etc/rancher/rke2/config.yaml.d/90-kubelet-lxc.yaml';
/** What the last install replaced, for --rollback (one level). */
export const ROLLBACK_STATE_DIR = '/var/lib/kubelet-lxc/rollback';
/** One install or rollback at a time per root: the lock both installers take (key=value lines). */
export const INSTALL_LOCK_PATH = '/var/lib/kubelet-lxc/install.lock';

/** The drop-in as shipped beside the bundle (and inside it). */
export const KUBELET_DROPIN_NAME = 'rke2-kubelet-lxc.yaml';
/** The runtime-image config line as shipped beside the image tarballs. */
export const RUNTIME_IMAGE_SNIPPET_NAME = 'rke2-runtime-image-lxc.yaml';
/** Where the operator puts that snippet. */
export const RUNTIME_IMAGE_DROPIN_PATH = '/etc/rancher/rke2/config.yaml.d/90-kubelet-lxc-runtime-image.yaml';

/**
 * The repository of the runtime image reference. Its registry host is under .invalid, which is
 * reserved (RFC 2606, RFC 6761) and never resolves: RKE2 can only take the image from the tarball
 * in agent/images/. Without the tarball the agent fails to start (fail closed); a reference
 * without a registry host (kubelet-lxc/rke2-runtime) would be pulled from Docker Hub, and whoever
 * owns that namespace would supply the node's kubelet, containerd and runc.
 */
export const RUNTIME_IMAGE_REPO = 'kubelet-lxc.invalid/rke2-runtime';

/** Whether a reference can only come from a tarball: its registry host is under .invalid. */
export function resolvesNowhere(ref: string): boolean {
  const first = ref.split('/')[0]!;
  return ref.includes('/') && /[.:]/.test(first) && /\.invalid(:\d+)?$/i.test(first);
}

/** Image label set on every image whose base was a generated stand-in, never the real rke2-runtime. */
export const STAND_IN_LABEL = 'io.kubelet-lxc.stand-in';
export const LABEL_PREFIX = 'io.kubelet-lxc';

/** Characters allowed in versions and paths written into the bundle (read by a POSIX shell script). */
const SAFE = /^[A-Za-z0-9._+-]+$/;

export function assertSafeVersion(version: string): void {
  if (!SAFE.test(version) || version.startsWith('.') || version.includes('..')) {
    throw new Error(`version ${JSON.stringify(version)} has characters not allowed in file names (allowed: A-Z a-z 0-9 . _ + -)`);
  }
}

/**
 * `kubelet-lxc-<version>-linux-<arch>`, with the version's `+` as `-`: GitHub renames release
 * assets holding `+`, and URLs would need it as %2B (the installed path keeps the version verbatim).
 */
export function bundleBaseName(version: string, platform: Platform): string {
  assertSafeVersion(version);
  return `kubelet-lxc-${version.replace(/\+/g, '-')}-linux-${archOf(platform)}`;
}

export function bundleFileName(version: string, platform: Platform): string {
  return `${bundleBaseName(version, platform)}.tar.gz`;
}

export function installedKubeletPath(version: string): string {
  assertSafeVersion(version);
  return `${KUBELET_INSTALL_ROOT}/${version}/kubelet`;
}

/**
 * The runtime image tag: the RKE2 version with `+` as `-` (container tags cannot hold `+`), then
 * `-lxc<N>`; a rebuilt image needs a new N because RKE2 never re-extracts a reference it has seen.
 */
export function runtimeImageTag(rke2Version: string, revision = 1): string {
  if (!/^v\d+\.\d+\.\d+\+rke2r\d+$/.test(rke2Version)) throw new Error(`not an RKE2 release version: ${rke2Version} (expected e.g. v1.36.4+rke2r1)`);
  if (!Number.isInteger(revision) || revision < 1) throw new Error(`runtime image revision must be a positive integer, got ${revision}`);
  const tag = `${rke2Version.replace('+', '-')}-lxc${revision}`;
  if (!/^v[0-9]/.test(tag)) throw new Error(`runtime image tag ${tag} must match ^v[0-9] (RKE2 refuses others)`);
  return tag;
}

export interface ImageRef {
  /** Repository as written, e.g. rancher/rke2-runtime or registry.example:5000/x/y. */
  repository: string;
  tag: string;
}

/** Split `repo[:tag]` (no digests: RKE2 cannot load a digest reference from a tarball). */
export function parseImageRef(ref: string): ImageRef {
  if (ref.includes('@')) throw new Error(`image reference ${ref} is a digest: RKE2 can only load a tag reference from a tarball`);
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon <= slash) throw new Error(`image reference ${ref} has no tag`);
  const repository = ref.slice(0, colon);
  const tag = ref.slice(colon + 1);
  if (!/^[a-z0-9]+([._-]+[a-z0-9]+)*(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*$/.test(repository.replace(/^[^/]+[.:][^/]*\//, '')) || !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) {
    throw new Error(`not a valid image reference: ${ref}`);
  }
  return { repository, tag };
}

/** The runtime image reference as RKE2 and docker compare it: docker.io and library/ made implicit. */
export function normalizeRef(ref: string): string {
  const r = ref.replace(/^(docker\.io|index\.docker\.io|registry-1\.docker\.io)\//, '');
  return r.replace(/^library\/([^/]+)$/, '$1');
}

export function runtimeImageFileBase(targetRef: string, platform: Platform): string {
  const { tag } = parseImageRef(targetRef);
  return `rke2-runtime-${tag}.linux-${archOf(platform)}`;
}
