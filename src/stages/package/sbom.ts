// An SPDX 2.3 JSON SBOM for a Go binary, from what the binary says it was built from
// (`go version -m`): the main module, every dependency module with its version and Go module
// hash, the Go toolchain/standard library, and the build settings.
//
// Module hashes: `go version -m` prints each dependency's h1 hash, except for a build with
// -mod=vendor (how Kubernetes builds kubelet), where it prints none. Then the hashes come from
// `modules` (the caller passes the build tree's go.sum via moduleHashesFromGoSum, and the
// release manifest's pins); a hash given both ways must agree. A module replaced by a local
// directory (Kubernetes' staging modules) has no module hash of its own: its files are part of
// the main module's tree, and the SBOM says so.
//
// The document is deterministic: no random UUIDs, the creation time is given (the release's
// SOURCE_DATE_EPOCH), the binary's path is reduced to its file name, and the
// documentNamespace ends in a hash of the content, so a rebuild gives the same bytes.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../../manifest.js';
import { stableStringify } from '../../lib/fsutil.js';

export interface ModuleHash {
  path: string;
  version: string;
  /** Go module hash, "h1:<base64 sha256>". */
  h1: string;
  /** Where the hash comes from, for the SBOM's comments (e.g. "go.sum of the build tree", "release manifest pin"). */
  source?: string;
}

export interface GoModuleRef {
  path: string;
  version: string;
  sum?: string;
}

export interface GoBuildInfo {
  /** e.g. go1.26.8 */
  goVersion: string;
  /** The main package path (the `path` line). */
  path: string;
  main: GoModuleRef;
  deps: (GoModuleRef & { replace?: GoModuleRef })[];
  /** `build` lines in order: [key, value]. */
  settings: [string, string][];
}

export class SbomError extends Error {}

/** Parse the output of `go version -m <binary>`. */
export function parseGoVersionM(text: string): GoBuildInfo {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const first = /^(.*): (go\S+)$/.exec(lines[0] ?? '');
  if (!first) throw new SbomError(`not the output of "go version -m": ${JSON.stringify((lines[0] ?? '').slice(0, 120))}`);
  const info: GoBuildInfo = { goVersion: first[2]!, path: '', main: { path: '', version: '' }, deps: [], settings: [] };
  for (const line of lines.slice(1)) {
    const f = line.replace(/^\t/, '').split('\t');
    const [kind, a = '', b = '', c = ''] = f;
    const ref = (): GoModuleRef => ({ path: a, version: b, ...(c ? { sum: c } : {}) });
    if (kind === 'path') info.path = a;
    else if (kind === 'mod') info.main = ref();
    else if (kind === 'dep') info.deps.push(ref());
    else if (kind === '=>') {
      const last = info.deps.at(-1);
      if (!last) throw new SbomError(`"go version -m": a replacement line before any dep: ${line}`);
      last.replace = ref();
    } else if (kind === 'build') {
      const rest = f.slice(1).join('\t');
      const eq = rest.indexOf('=');
      info.settings.push(eq < 0 ? [rest, ''] : [rest.slice(0, eq), rest.slice(eq + 1)]);
    }
  }
  if (!info.main.path) throw new SbomError('"go version -m" printed no main module (a binary built without module support?)');
  return info;
}

/** Module hashes from a go.sum text (the `/go.mod` lines are not module hashes and are left out). */
export function moduleHashesFromGoSum(text: string, source = 'go.sum of the build tree'): ModuleHash[] {
  const out: ModuleHash[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+) (\S+) (h1:[A-Za-z0-9+/]{43}=)$/.exec(line.trim());
    if (m && !m[2]!.endsWith('/go.mod')) out.push({ path: m[1]!, version: m[2]!, h1: m[3]!, source });
  }
  return out;
}

/** The SHA-256 inside a Go module hash, as lower-case hex (what SPDX wants in a checksum). */
export function h1ToSha256Hex(h1: string): string {
  const m = /^h1:([A-Za-z0-9+/]{43}=)$/.exec(h1);
  if (!m) throw new SbomError(`not a Go module hash: ${h1}`);
  return Buffer.from(m[1]!, 'base64').toString('hex');
}

function toolVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version?: string }).version ?? '0';
  } catch {
    return '0';
  }
}

/** An SPDX identifier (letters, digits, "." and "-") that stays unique: a readable part and a short hash. */
function spdxId(kind: string, key: string): string {
  const readable = key.replace(/[^A-Za-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 80);
  const h = createHash('sha256').update(key).digest('hex').slice(0, 8);
  return `SPDXRef-${kind}-${readable}-${h}`;
}

function purl(modulePath: string, version: string): string {
  const p = modulePath.split('/').map(encodeURIComponent).join('/');
  return `pkg:golang/${p}@${encodeURIComponent(version)}`;
}

function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface SpdxSbomOptions {
  /** The artifact's name, e.g. kubelet-linux-amd64. */
  name: string;
  /** The version the binary reports, e.g. v1.36.4+rke2r1. */
  version: string;
  binaryPath: string;
  /** Hex SHA-256 of the binary. */
  sha256: string;
  /** Output of `go version -m <binary>`. */
  goVersionM: string;
  /** Module hashes for modules the build info gives none for (go.sum of the tree, manifest pins). */
  modules?: ModuleHash[];
  /** What the main module is when the build info says "(devel)": e.g. the upstream tag, its pinned hash, and a note on the patches. */
  mainModule?: { version: string; h1?: string; note?: string };
  /** Creation time: the release's source date, so rebuilds give the same document. */
  created: Date;
}

interface SpdxPackage {
  SPDXID: string;
  name: string;
  versionInfo?: string;
  packageFileName?: string;
  downloadLocation: string;
  filesAnalyzed: boolean;
  checksums?: { algorithm: string; checksumValue: string }[];
  primaryPackagePurpose: string;
  licenseConcluded: string;
  licenseDeclared: string;
  copyrightText: string;
  externalRefs?: { referenceCategory: string; referenceType: string; referenceLocator: string }[];
  comment?: string;
}

/** The SPDX 2.3 JSON document (a plain object: write it with JSON.stringify(doc, null, 2)). */
type ModuleHashInfo = { h1?: string; how: string };
type Relationship = { spdxElementId: string; relationshipType: string; relatedSpdxElement: string; comment?: string };
const NONE = 'NOASSERTION';

export function makeSpdxSbom(opts: SpdxSbomOptions): Record<string, unknown> {
  if (!/^[0-9a-f]{64}$/.test(opts.sha256)) throw new SbomError(`sha256 of ${opts.binaryPath} must be 64 hex digits`);
  const info = parseGoVersionM(opts.goVersionM);
  const hashOf = moduleHasher(opts.modules ?? []);

  const app = appPackage(opts, info);
  const main = mainModulePackage(opts, info, hashOf);
  const std = stdlibPackage(info);
  const packages: SpdxPackage[] = [app, main, std];
  const relationships: Relationship[] = [
    { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: app.SPDXID },
    { spdxElementId: app.SPDXID, relationshipType: 'GENERATED_FROM', relatedSpdxElement: main.SPDXID },
    { spdxElementId: app.SPDXID, relationshipType: 'STATIC_LINK', relatedSpdxElement: std.SPDXID },
  ];
  // Every dependency module, as the binary records it (a replacement is what was compiled in).
  for (const dep of info.deps) {
    const pkg = dependencyPackage(dep, hashOf);
    packages.push(pkg);
    relationships.push({ spdxElementId: app.SPDXID, relationshipType: 'STATIC_LINK', relatedSpdxElement: pkg.SPDXID });
    relationships.push({ spdxElementId: main.SPDXID, relationshipType: 'DEPENDS_ON', relatedSpdxElement: pkg.SPDXID });
  }
  return spdxDocument(opts, info, packages, relationships);
}

/** The hash of a module (and a sentence on where it came from), or why there is none: from the binary's build info, else from the supplied hashes, which must agree with it. */
function moduleHasher(modules: readonly ModuleHash[]): (ref: GoModuleRef) => ModuleHashInfo {
  const supplied = new Map<string, ModuleHash>();
  for (const m of modules) {
    const key = `${m.path}@${m.version}`;
    const prev = supplied.get(key);
    if (prev && prev.h1 !== m.h1) {
      throw new SbomError(`conflicting module hashes for ${key}: ${prev.h1} (${prev.source ?? 'given'}) and ${m.h1} (${m.source ?? 'given'})`);
    }
    if (!prev) supplied.set(key, m);
  }
  return (ref) => {
    const given = supplied.get(`${ref.path}@${ref.version}`);
    if (ref.sum) {
      if (given && given.h1 !== ref.sum) {
        throw new SbomError(
          `the binary was built from ${ref.path}@${ref.version} ${ref.sum}, but ${given.source ?? 'the supplied hashes'} say ${given.h1}: the build did not use the pinned module`,
        );
      }
      return { h1: ref.sum, how: "from the binary's build info" };
    }
    if (given) return { h1: given.h1, how: `from ${given.source ?? 'the supplied module hashes'} (the build info has none: a -mod=vendor build)` };
    return { how: 'no module hash known: the build info has none (a -mod=vendor build) and none was supplied' };
  };
}

function moduleComment(h: ModuleHashInfo, extra = ''): string {
  return (h.h1 ? `Go module hash ${h.h1} ${h.how}; the SHA256 checksum is that hash in hex (the Go checksum database's hash of the module's files).` : `${h.how}.`) + extra;
}

/** The binary itself. */
function appPackage(opts: SpdxSbomOptions, info: GoBuildInfo): SpdxPackage {
  const settings = info.settings.map(([k, v]) => `${k}=${v}`);
  const goos = info.settings.find(([k]) => k === 'GOOS')?.[1];
  const goarch = info.settings.find(([k]) => k === 'GOARCH')?.[1];
  return {
    SPDXID: spdxId('Package', `app:${opts.name}`),
    name: opts.name,
    versionInfo: opts.version,
    packageFileName: path.basename(opts.binaryPath),
    downloadLocation: NONE,
    filesAnalyzed: false,
    checksums: [{ algorithm: 'SHA256', checksumValue: opts.sha256 }],
    primaryPackagePurpose: 'APPLICATION',
    licenseConcluded: NONE,
    licenseDeclared: NONE,
    copyrightText: NONE,
    comment:
      `Go program ${info.path}${goos && goarch ? ` for ${goos}/${goarch}` : ''}, built with ${info.goVersion}. ` +
      `Build settings (go version -m): ${settings.join(' ')}`,
  };
}

/** The main module: its version and hash from the build info, or from the caller for a "(devel)" build from a source tree. */
function mainModulePackage(opts: SpdxSbomOptions, info: GoBuildInfo, hashOf: (ref: GoModuleRef) => ModuleHashInfo): SpdxPackage {
  const devel = info.main.version === '(devel)' || info.main.version === '';
  const mainVersion = devel ? opts.mainModule?.version : info.main.version;
  const mainHash: ModuleHashInfo = devel
    ? opts.mainModule?.h1
      ? { h1: opts.mainModule.h1, how: 'as given by the caller (the build info says "(devel)")' }
      : { how: 'no module hash: the build info says "(devel)", i.e. built from a source tree' }
    : hashOf(info.main);
  return {
    SPDXID: spdxId('Package', `gomod:${info.main.path}`),
    name: info.main.path,
    ...(mainVersion ? { versionInfo: mainVersion } : {}),
    downloadLocation: NONE,
    filesAnalyzed: false,
    ...(mainHash.h1 ? { checksums: [{ algorithm: 'SHA256', checksumValue: h1ToSha256Hex(mainHash.h1) }] } : {}),
    primaryPackagePurpose: 'SOURCE',
    licenseConcluded: NONE,
    licenseDeclared: NONE,
    copyrightText: NONE,
    ...(mainVersion ? { externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: purl(info.main.path, mainVersion) }] } : {}),
    comment: `The main module. ${moduleComment(mainHash)}${opts.mainModule?.note ? ` ${opts.mainModule.note}` : ''}`,
  };
}

/** The Go standard library, compiled into the binary. */
function stdlibPackage(info: GoBuildInfo): SpdxPackage {
  const goVer = info.goVersion.replace(/^go/, '');
  return {
    SPDXID: spdxId('Package', `stdlib:${info.goVersion}`),
    name: 'stdlib',
    versionInfo: info.goVersion,
    downloadLocation: NONE,
    filesAnalyzed: false,
    primaryPackagePurpose: 'LIBRARY',
    licenseConcluded: NONE,
    licenseDeclared: NONE,
    copyrightText: NONE,
    externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: `pkg:golang/stdlib@${encodeURIComponent(goVer)}` }],
    comment: `The Go standard library and runtime of the toolchain that built the binary (${info.goVersion}).`,
  };
}

/** One dependency module; a go.mod replacement is described as what was compiled in. */
function dependencyPackage(dep: GoBuildInfo['deps'][number], hashOf: (ref: GoModuleRef) => ModuleHashInfo): SpdxPackage {
  const r = dep.replace;
  const localDir = r && (r.version === '' || r.version === '(devel)');
  const effective: GoModuleRef = r && !localDir ? r : dep;
  const h = localDir ? { how: `no module hash of its own: replaced by the local directory ${r!.path}, part of the main module's source tree` } : hashOf(effective);
  const note = r && !localDir ? ` Replaces ${dep.path} ${dep.version} (go.mod replace).` : '';
  return {
    SPDXID: spdxId('Package', `gomod:${effective.path}@${effective.version}${localDir ? `=>${r!.path}` : ''}`),
    name: effective.path,
    versionInfo: effective.version,
    downloadLocation: NONE,
    filesAnalyzed: false,
    ...(h.h1 ? { checksums: [{ algorithm: 'SHA256', checksumValue: h1ToSha256Hex(h.h1) }] } : {}),
    primaryPackagePurpose: 'LIBRARY',
    licenseConcluded: NONE,
    licenseDeclared: NONE,
    copyrightText: NONE,
    externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: purl(effective.path, effective.version) }],
    comment: moduleComment(h, note),
  };
}

/** The document around the packages, with a namespace unique to its content and equal for equal content. */
function spdxDocument(opts: SpdxSbomOptions, info: GoBuildInfo, packages: SpdxPackage[], relationships: Relationship[]): Record<string, unknown> {
  const docName = `${opts.name}-${opts.version}`;
  const doc: Record<string, unknown> = {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: docName,
    documentNamespace: '',
    creationInfo: {
      created: isoSeconds(opts.created),
      creators: [`Tool: kubelet-lxc-${toolVersion()}`],
      comment: `Generated from "go version -m ${path.basename(opts.binaryPath)}" (${info.deps.length} dependency modules).`,
    },
    packages,
    relationships,
  };
  const digest = createHash('sha256').update(stableStringify(doc)).digest('hex').slice(0, 32);
  doc.documentNamespace = `https://kubelet-lxc.invalid/spdx/${encodeURIComponent(docName)}-${digest}`;
  return doc;
}
