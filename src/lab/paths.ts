// Where the lab's guest-side files (the repository's lab/ folder) are.
import { fileURLToPath } from 'node:url';

/** Absolute path of a file in the repository's lab/ folder. */
export function labFile(name: string): string {
  return fileURLToPath(new URL(`../../lab/${name}`, import.meta.url));
}
