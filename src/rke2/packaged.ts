// One description of a file the package stage produced: its artifact-list entry (name, kind,
// platform, size, digests, stand-in or not) and its path.
import { describeArtifact } from '../stages/package/artifacts.js';
import type { PackagedFile } from '../stages/types.js';

export async function packagedFile(file: string, kind: string, platform?: PackagedFile['platform'], o: { standIn?: boolean } = {}): Promise<PackagedFile> {
  return { path: file, ...(await describeArtifact(file, kind, { platform, standIn: o.standIn })) };
}
