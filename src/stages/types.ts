// What every stage receives and returns. One manifest, one options object, one set of work paths.
import path from 'node:path';
import type { LoadedManifest, Platform } from '../manifest.js';
import type { Logger } from '../lib/progress.js';
import type { EngineName } from '../lib/engine.js';

export type SourceKind = 'git' | 'goproxy';
export type { EngineName };
/** stock = the tree as fetched (the lab's negative control); patched = with the series. */
export type Variant = 'stock' | 'patched';

export interface PipelineOptions {
  platforms: Platform[];
  engine: EngineName | 'auto';
  /** Where the builder image's Go comes from: the official image, the host toolchain, or either. */
  builderBase: 'official' | 'local' | 'auto';
  sourceKind: SourceKind;
  /** Mirror of the Kubernetes git repository (git source), overrides the manifest's URL. */
  sourceUrl?: string;
  /** GOPROXY for the goproxy source (default: the Go environment's own). */
  goproxy?: string;
  workdir: string;
  /** Shared cache (verified trees, builder images' inputs, lab guest): defaults under workdir. */
  cacheDir: string;
  /**
   * Platforms of the stock kubelet (the lab's negative control), besides the patched one for
   * every platform: linux/amd64 for the lab, every platform only when asked (--stock).
   */
  stockPlatforms: Platform[];
  /** How the lab picks its accelerator (--kvm, $KUBELET_LXC_KVM). */
  kvm: 'auto' | 'on' | 'off';
  /** Smoke levels to run: L0 binary checks, patch tests (stock vs patched), the lab's levels (L1, L2) and L2's conformance tier. */
  smoke: { patchTests: boolean; lab: ('L1' | 'L2')[]; conformance: 'none' | 'ci' | 'full' };
  /** RKE2 packaging: the runtime image's base and the new image's name. */
  packaging: { baseImageArchive?: string; runtimeImageRevision: number; runtimeImageRepo: string };
  json: boolean;
  dryRun: boolean;
  /** Ignore recorded outputs and rerun every selected stage. */
  force: boolean;
}

export interface WorkPaths {
  root: string;
  cache: string;
  state: string;
  trees: string;
  out: string;
  bin: string;
  dist: string;
  reports: string;
}

/** Every place under the work directory, for one release (publish, which runs no stage, reads its dist from here too). */
/** A release's output folder below a work directory (bin/, dist/, reports/ are in it). */
export function outDir(workdir: string, manifest: Pick<LoadedManifest, 'id'>): string {
  return path.join(workdir, 'out', manifest.id);
}

/** Where the package stage leaves a release's assets, and publish reads them. */
export function distDir(workdir: string, manifest: Pick<LoadedManifest, 'id'>): string {
  return path.join(outDir(workdir, manifest), 'dist');
}

export function workPaths(opts: Pick<PipelineOptions, 'workdir' | 'cacheDir'>, manifest: Pick<LoadedManifest, 'id'>): WorkPaths {
  const rel = path.join(manifest.id);
  const out = outDir(opts.workdir, manifest);
  return {
    root: opts.workdir,
    cache: opts.cacheDir,
    state: path.join(opts.workdir, 'state', rel),
    trees: path.join(opts.workdir, 'trees', rel),
    out,
    bin: path.join(out, 'bin'),
    dist: distDir(opts.workdir, manifest),
    reports: path.join(out, 'reports'),
  };
}

export interface StageContext {
  manifest: LoadedManifest;
  opts: PipelineOptions;
  paths: WorkPaths;
  log: Logger;
  signal: AbortSignal;
}

export interface SourceOutput {
  kind: SourceKind;
  /** Where the tree came from (URL or proxy), for the record. */
  origin: string;
  /** How the source was verified (commit SHA, module hashes, checksum database). */
  verification: string[];
  /** Clean checkout of the verified tree (a git repository). */
  tree: string;
  /** HEAD commit of that tree (the upstream commit for git; a reproducible synthetic one for goproxy). */
  treeCommit: string;
  /** The upstream tag commit if known. */
  upstreamCommit: string | null;
  /** Commit time of the tag, seconds since the epoch (SOURCE_DATE_EPOCH). */
  sourceDateEpoch: number;
}

export interface PatchOutput {
  tree: string;
  commit: string;
  applied: { file: string; sha256: string }[];
}

export interface BuiltBinary {
  /** the kubelet, or kubelet-lxc-doctor (patched only) */
  program: 'kubelet' | 'doctor';
  variant: Variant;
  platform: Platform;
  path: string;
  sha256: string;
  size: number;
  version: string;
}

export interface BuildOutput {
  engine: EngineName;
  builderImage: string;
  goVersion: string;
  binaries: BuiltBinary[];
}

/** A file the package stage wrote: its artifact-list entry (see stages/package/artifacts.ts) and where it is. */
export interface PackagedFile {
  path: string;
  name: string;
  sha256: string;
  sha512: string;
  size: number;
  /** What it is, for humans and for the publisher. */
  kind: string;
  platform?: Platform;
  /** built on the generated stand-in base image */
  standIn: boolean;
}

export interface PackageOutput {
  dir: string;
  files: PackagedFile[];
}

export interface SmokeCheck {
  level: string;
  name: string;
  ok: boolean;
  detail: string;
}

export interface SmokeOutput {
  checks: SmokeCheck[];
  reports: string[];
}

export interface StageOutputs {
  source?: SourceOutput;
  patch?: PatchOutput;
  build?: BuildOutput;
  package?: PackageOutput;
  smoke?: SmokeOutput;
}

export const STAGE_NAMES = ['source', 'patch', 'build', 'package', 'smoke'] as const;
export type StageName = (typeof STAGE_NAMES)[number];

export interface Stage<N extends StageName> {
  name: N;
  description: string;
  /**
   * The files that feed the stage (its own code, scripts, templates, data; folders whole),
   * hashed by content into its inputs: editing any of them reruns the stage.
   */
  sources(ctx: StageContext): string[];
  /** Everything else that decides the output, JSON-serialisable; hashed to decide whether to rerun. */
  inputs(ctx: StageContext, prev: StageOutputs): Promise<unknown>;
  /**
   * Checks of the options and the machine that need no earlier stage's output, run for every
   * selected stage before any stage does work (dry runs too): bad input fails at once.
   */
  verify?(ctx: StageContext): Promise<void>;
  run(ctx: StageContext, prev: StageOutputs): Promise<NonNullable<StageOutputs[N]>>;
  /** Whether a recorded output is still intact on disk. */
  intact(ctx: StageContext, out: NonNullable<StageOutputs[N]>): Promise<boolean>;
}

/** A failure the user can act on: the message names the thing and the fix (details.hint: the fix alone, for --json). */
export class StageError extends Error {
  constructor(
    message: string,
    readonly stage: StageName | 'cli',
    readonly details?: Record<string, unknown> & { hint?: string },
  ) {
    super(message);
  }
}
