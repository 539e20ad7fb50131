/**
 * A short-held lock on the cache folder (a `lock` file created with O_EXCL holding the owner's pid).
 * Only quick steps run under it: taking a lease, starting an extraction, and the GC's deletions.
 * A lock left by a dead process is broken.
 */
import { closeSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ShipError } from '../errors.ts';
import { ensureCacheDir } from './cache-dir.ts';

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Whether process `pid` is alive (a process of another user counts as alive). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryBreakStale(lock: string): void {
  let pid = NaN;
  let age = 0;
  try {
    pid = Number.parseInt(readFileSync(lock, 'utf8'), 10);
    age = Date.now() - statSync(lock).mtimeMs;
  } catch {
    return;
  }
  // An empty lock file is one whose owner died between create and write: stale after a moment.
  if (Number.isNaN(pid) ? age > 1000 : !pidAlive(pid)) {
    const aside = `${lock}.stale-${randomBytes(6).toString('hex')}`;
    try {
      renameSync(lock, aside);
      unlinkSync(aside);
    } catch {
      // someone else broke it first
    }
  }
}

/**
 * Runs `fn` holding the cache lock (synchronous; waits up to `timeoutMs`).
 * @throws ERR_MP_CACHE_LOCKED when the lock stays held by a live process
 */
export function withCacheLock<T>(cacheDir: string, fn: () => T, timeoutMs = 30_000): T {
  ensureCacheDir(cacheDir);
  const lock = join(cacheDir, 'lock');
  const deadline = Date.now() + timeoutMs;
  let fd: number | undefined;
  for (let spins = 0; fd === undefined; spins++) {
    try {
      fd = openSync(lock, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (spins % 50 === 49) tryBreakStale(lock);
      if (Date.now() > deadline) {
        throw new ShipError('ERR_MP_CACHE_LOCKED', `the modulepickle cache '${cacheDir}' stayed locked for ${timeoutMs} ms; remove '${lock}' if no modulepickle process is running`, lock);
      }
      Atomics.wait(sleeper, 0, 0, 1 + (spins % 3));
    }
  }
  try {
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return fn();
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      // broken by another process that thought we were dead
    }
  }
}
