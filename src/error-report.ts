// What the CLI prints for a failure: one message that names the thing and the fix, never a stack.
import { CommanderError } from 'commander';
import { StageError } from './stages/types.js';
import { EngineError } from './lib/engine.js';
import { ManifestError } from './manifest.js';
import { CommandError, redactUrls } from './lib/exec.js';
import { PublishError } from './publish/index.js';
import { InstallError } from './rke2/index.js';
import { LabSetupError } from './lab/index.js';

export const ERRNO_WORDS: Record<string, string> = { EROFS: 'read-only file system', EACCES: 'permission denied', EPERM: 'operation not permitted', ENOTDIR: 'a part of the path is a file', ENOSPC: 'the disk is full' };

/** What main prints for a failure: the message (URLs redacted), the stage it came from, the fix when known. */
export interface ErrorReport {
  error: string;
  stage: string | null;
  hint: string | null;
}

const KNOWN_ERRORS = [StageError, EngineError, ManifestError, CommandError, PublishError, InstallError, LabSetupError];

/** The line in which a command that failed says it hit the full disk (git writing objects, tar, go report it only in their output). */
function diskFullLine(err: unknown): string | undefined {
  if (!(err instanceof CommandError)) return undefined;
  return `${err.stderr}\n${err.stdout}\n${err.message}`.split('\n').find((l) => /no space left on device/i.test(l))?.trim();
}

export function describeError(err: unknown): ErrorReport {
  if (err instanceof CommanderError) {
    return { error: err.message.replace(/^error: /, ''), stage: 'cli', hint: 'kubelet-lxc <command> --help lists the options' };
  }
  if (err instanceof StageError) return { error: redactUrls(err.message), stage: err.stage, hint: typeof err.details?.hint === 'string' ? redactUrls(err.details.hint) : null };
  if (err instanceof EngineError) return { error: redactUrls(err.message), stage: null, hint: err.hint ? redactUrls(err.hint) : null };
  const errno = err as NodeJS.ErrnoException;
  const toolLine = diskFullLine(err);
  if (errno.code === 'ENOSPC' || toolLine) {
    const where = toolLine ? ` (${redactUrls((err as CommandError).command)}: ${redactUrls(toolLine)})` : errno.path ? ` (writing ${errno.path})` : '';
    return {
      error: `the disk is full${where}: free space (work/ and its cache hold the trees and builds; docker system df shows the engine's share) and rerun; finished artifacts are intact, unfinished ones were not kept`,
      stage: null,
      hint: 'free disk space and rerun',
    };
  }
  if (KNOWN_ERRORS.some((k) => err instanceof k)) return { error: redactUrls((err as Error).message), stage: null, hint: null };
  if (errno.code === 'EACCES' || errno.code === 'EROFS' || errno.code === 'ENOTDIR' || errno.code === 'EPERM') {
    return {
      error: `cannot write ${errno.path ?? 'a file'} (${ERRNO_WORDS[errno.code]}): give --workdir and --cache-dir directories this user can write`,
      stage: null,
      hint: 'give --workdir and --cache-dir directories this user can write',
    };
  }
  // a message for the user; the stack only when asked for
  return { error: redactUrls(err instanceof Error ? err.message : String(err)), stage: null, hint: null };
}
