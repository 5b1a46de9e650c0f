// One owner for a state directory and a pin root. Two mimd processes over the
// same pins and records would undo each other's changes: a second start runs
// restore (unpinning the first one's newest version, rewriting its records,
// putting its own program into the pinned link) before it finds the API
// socket taken. So `run` and `purge` take an exclusive flock(2) on both
// before anything else. The lock is held by an open fd: it goes with the
// process, however it ends (a SIGKILL leaves no stale lock to clean up).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { closeSync } from 'node:fs';
import { native } from './native';

/** The lock file in the state directory (bpffs holds no regular files: the pin root's directory itself is locked). */
export const STATE_LOCK_FILE = 'mimd.lock';

/** Another process holds one of the locks: nothing was changed. */
export class OwnerLockedError extends Error {
  readonly code = 'MIMD_LOCKED';
  constructor(
    /** `stateDir` or `pinRoot` */
    readonly field: string,
    readonly lockPath: string,
    /** the holder, from /proc/locks; null when it could not be found */
    readonly pid: number | null,
  ) {
    super(
      `${field} ${lockPath} is owned by another mimd (${pid === null ? 'pid unknown' : `pid ${pid}`}${pid === null ? '' : commandOf(pid)}): ` +
        'nothing was changed; stop it first, or give this one its own stateDir and pinRoot',
    );
    this.name = 'OwnerLockedError';
  }
}

export interface OwnerLock {
  /** Releases both locks (idempotent); the process's end does it too. */
  release(): void;
}

/**
 * Takes the state directory's lock, then the pin root's (which must exist:
 * see preparePinRoot; null skips it, for a purge with no pin root to purge).
 * Creates the state directory (mode 0700) if missing. Throws
 * OwnerLockedError, holding neither lock, when another process has one.
 */
export function takeOwnership(dirs: { stateDir: string; pinRoot: string | null }): OwnerLock {
  fs.mkdirSync(dirs.stateDir, { recursive: true, mode: 0o700 });
  const fds: number[] = [];
  const release = (): void => {
    for (const fd of fds.splice(0)) closeSync(fd);
  };
  try {
    fds.push(lock('stateDir', path.join(dirs.stateDir, STATE_LOCK_FILE), true));
    if (dirs.pinRoot !== null) fds.push(lock('pinRoot', dirs.pinRoot, false));
  } catch (err) {
    release();
    throw err;
  }
  return { release };
}

function lock(field: string, lockPath: string, create: boolean): number {
  try {
    return native.lockExclusive(lockPath, create);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EAGAIN' || (err as NodeJS.ErrnoException).code === 'EWOULDBLOCK') {
      throw new OwnerLockedError(field, lockPath, holderOf(lockPath));
    }
    throw err;
  }
}

/**
 * The pid that holds a flock on `file`, from /proc/locks, whose lines read
 * `1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF` (pid, then the file's
 * device as hex major:minor and its inode).
 */
export function holderOf(file: string): number | null {
  let st: fs.Stats;
  let table: string;
  try {
    st = fs.statSync(file);
    table = fs.readFileSync('/proc/locks', 'utf8');
  } catch {
    return null;
  }
  // st_dev in the kernel's encoding (new_encode_dev)
  const major = (st.dev >> 8) & 0xfff;
  const minor = (st.dev & 0xff) | ((st.dev >> 12) & 0xfff00);
  for (const line of table.split('\n')) {
    const m = /^\d+: FLOCK\s+\S+\s+WRITE\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
    if (m && parseInt(m[2]!, 16) === major && parseInt(m[3]!, 16) === minor && Number(m[4]) === st.ino) return Number(m[1]);
  }
  return null;
}

/** ", mimd --config x.yaml" from /proc/<pid>/cmdline, or nothing. */
function commandOf(pid: number): string {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    return argv.length > 0 ? `: ${argv.join(' ').slice(0, 200)}` : '';
  } catch {
    return '';
  }
}
