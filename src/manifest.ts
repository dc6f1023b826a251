// The release manifest: the one description of a release that every stage reads.
// Paths inside a manifest are relative to the manifest file.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { schemaProblems, z } from './lib/schema.js';
import { compareVersionsDesc, isVersionTag, parseVersion } from './lib/version.js';

import { PROJECT_ROOT } from './lib/project.js';

export { PROJECT_ROOT };
export const RELEASES_DIR = path.join(PROJECT_ROOT, 'releases');

const sha1Hex = z.string().regex(/^[0-9a-f]{40}$/, 'a 40-hex-digit commit SHA');
const h1Hash = z.string().regex(/^h1:[A-Za-z0-9+/]{43}=$/, 'a Go module hash "h1:<base64 sha256>"');
const semverTag = z
  .string()
  .refine(isVersionTag, 'a semver tag such as v1.36.4');

export const PLATFORMS = ['linux/amd64', 'linux/arm64'] as const;
export type Platform = (typeof PLATFORMS)[number];

const moduleSchema = z.object({
  path: z.string().min(1),
  version: z.string().min(1),
  h1: h1Hash,
  goModH1: h1Hash.optional(),
});
export type ModulePin = z.infer<typeof moduleSchema>;

export const manifestSchema = z
  .object({
    schema: z.literal(1),
    kubernetes: z.object({
      /** The upstream tag, e.g. v1.36.4. */
      version: semverTag,
      /** The tag's peeled commit SHA; null when it could not be verified (git source refuses it). */
      commit: sha1Hex.nullable(),
      /** Commit time of the tag (SOURCE_DATE_EPOCH), ISO 8601 UTC. */
      commitTime: z.string().datetime(),
    }),
    source: z.object({
      default: z.enum(['git', 'goproxy']),
      // a URL or an absolute path, never something git could read as an option
      git: z.object({ url: z.string().regex(/^([a-z][a-z0-9+.-]*:\/\/|\/|[\w.-]+@[\w.-]+:)/i, 'a git URL (https://, ssh://, git://, file://, user@host:path) or an absolute path') }),
      goproxy: z
        .object({
          /** k8s.io/kubernetes itself, then each staging module. */
          root: moduleSchema,
          staging: z.array(moduleSchema),
        })
        .optional(),
    }),
    go: z.object({ version: z.string().regex(/^\d+\.\d+(\.\d+)?$/, 'a Go version such as 1.26.5') }),
    /** Folder of the patch series, relative to this file. */
    patches: z.string().min(1),
    stamp: z.object({
      /** The version the kubelet reports, e.g. v1.36.4+rke2r1; must be semver with the Kubernetes version as its core. */
      version: semverTag,
    }),
    rke2: z.object({
      version: z.string().regex(/^v\d+\.\d+\.\d+\+rke2r\d+$/, 'an RKE2 release such as v1.36.4+rke2r1'),
      runtimeImage: z.string().min(1),
    }),
    platforms: z.array(z.enum(PLATFORMS)).min(1),
    /**
     * kine (github.com/k3s-io/kine), the SQLite etcd shim of the lab's L2 server node: the
     * version the RKE2 release runs, with its Go module hashes.
     */
    kine: z.object({ version: z.string().regex(/^v\d+\.\d+\.\d+$/, 'a kine release such as v0.16.4'), h1: h1Hash, goModH1: h1Hash.optional() }).optional(),
    /** What the pinned stages may build: the main program path inside the tree. */
    target: z.string().default('./cmd/kubelet'),
  })
  .superRefine((m, ctx) => {
    const core = parseVersion(m.stamp.version);
    const k8s = parseVersion(m.kubernetes.version);
    if (core && k8s && `${core.major}.${core.minor}.${core.patch}` !== `${k8s.major}.${k8s.minor}.${k8s.patch}`) {
      ctx.addIssue({
        code: 'custom',
        path: ['stamp', 'version'],
        message: `must have the Kubernetes version ${m.kubernetes.version} as its core (RKE2 expects a matching kubelet)`,
      });
    }
    if (m.source.default === 'goproxy' && !m.source.goproxy) {
      ctx.addIssue({ code: 'custom', path: ['source', 'goproxy'], message: 'required when source.default is goproxy' });
    }
  });

export type ReleaseManifest = z.infer<typeof manifestSchema>;

/** A manifest with where it came from: what every stage receives. */
export interface LoadedManifest {
  file: string;
  /** The manifest's name: its file name without .json. */
  id: string;
  data: ReleaseManifest;
  /** Absolute path of the patch series folder. */
  patchesDir: string;
}

export class ManifestError extends Error {}

export function parseManifest(file: string, raw: unknown): LoadedManifest {
  const parsed = schemaProblems(manifestSchema, raw);
  if (!parsed.value) {
    const lines = parsed.problems.map((p) => `  ${p}`);
    throw new ManifestError(`invalid release manifest ${file}:\n${lines.join('\n')}\nFix the field(s) above; the schema is in src/manifest.ts.`);
  }
  return {
    file,
    id: path.basename(file, '.json'),
    data: parsed.value,
    patchesDir: path.resolve(path.dirname(file), parsed.value.patches),
  };
}

export function loadManifestFile(file: string): LoadedManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ManifestError(`cannot read release manifest ${file}: ${(err as Error).message}`);
  }
  return parseManifest(file, raw);
}

/** Every manifest under releases/, newest Kubernetes version first. */
export function listManifests(dir = RELEASES_DIR): LoadedManifest[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => loadManifestFile(path.join(dir, f)))
    // within one version, the manifest named after it first (a copy beside it is never the default)
    .sort((a, b) => compareVersionsDesc(a.data.kubernetes.version, b.data.kubernetes.version) || Number(isCanonical(b)) - Number(isCanonical(a)) || a.id.localeCompare(b.id));
}

/** Whether a manifest is named after its Kubernetes version (releases/v1.36.4.json). */
function isCanonical(m: LoadedManifest): boolean {
  return m.id === m.data.kubernetes.version;
}

/** `--release`: a manifest id or version under releases/, or a path to a manifest file; default the newest. */
export function resolveManifest(release: string | undefined, dir = RELEASES_DIR): LoadedManifest {
  if (release && (release.endsWith('.json') || release.includes('/'))) return loadManifestFile(path.resolve(release));
  const all = listManifests(dir);
  if (all.length === 0) throw new ManifestError(`no release manifests in ${dir}; write one with "kubelet-lxc pin <version>"`);
  if (!release) {
    const newest = all.filter((m) => m.data.kubernetes.version === all[0]!.data.kubernetes.version);
    if (newest.length > 1 && !isCanonical(newest[0]!)) {
      throw new ManifestError(`the newest version ${all[0]!.data.kubernetes.version} has ${newest.length} release manifests in ${dir}: ${newest.map((m) => m.id).join(', ')}; give one of these ids with --release`);
    }
    return all[0]!;
  }
  // An exact id wins; a version must name one manifest.
  const byId = all.find((m) => m.id === release);
  if (byId) return byId;
  const hits = all.filter((m) => m.data.kubernetes.version === release || m.data.stamp.version === release);
  if (hits.length > 1) {
    throw new ManifestError(`"${release}" matches ${hits.length} release manifests in ${dir}: ${hits.map((m) => m.id).join(', ')}; give one of these ids with --release`);
  }
  if (!hits[0]) {
    throw new ManifestError(`no release manifest "${release}" in ${dir}; known: ${all.map((m) => m.id).join(', ')}`);
  }
  return hits[0];
}

/** Minor series folder name for a version, e.g. v1.36.4 -> v1.36. */
export function minorOf(version: string): string {
  const v = parseVersion(version);
  if (!v) throw new ManifestError(`not a semver version: ${version}`);
  return `v${v.major}.${v.minor}`;
}

export function archOf(platform: Platform): string {
  return platform.split('/')[1]!;
}

/** This machine's architecture in Go's words (amd64, arm64). */
export function hostArch(): string {
  return ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[os.arch()] ?? os.arch();
}
