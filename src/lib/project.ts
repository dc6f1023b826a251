// Where the project's own files are (releases, patches, lab, the builder's Dockerfile), from
// the installed source, not the working directory.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
