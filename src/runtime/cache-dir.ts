/**
 * Where modulepickle keeps its per-user cache: `MODULEPICKLE_CACHE`, else `$XDG_CACHE_HOME/modulepickle`,
 * else `~/Library/Caches/modulepickle` (macOS), `%LOCALAPPDATA%\modulepickle` (Windows) or `~/.cache/modulepickle`.
 *
 * Every cache folder the library writes to is tagged with a `CACHEDIR.TAG` file (the Cache Directory Tagging
 * Specification, https://bford.info/cachedir/, also honoured by tar --exclude-caches, borg and restic) before
 * anything else is written into it: the ship walk never enters a tagged folder, so a cache inside a project, even
 * one another process uses, never ships.
 */
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The tag file's name. */
export const cacheTagName = 'CACHEDIR.TAG';
/** The first bytes of a valid tag (fixed by the specification). */
export const cacheTagSignature = 'Signature: 8a477f597d28d172789f06886806bc55';
const tagText = `${cacheTagSignature}\n# This file is a cache directory tag created by modulepickle.\n# For information about cache directory tags, see https://bford.info/cachedir/\n`;

/** Where the cache folder setting came from (for `modulepickle inspect` and messages). */
export type CacheDirSource = 'option' | 'MODULEPICKLE_CACHE' | 'XDG_CACHE_HOME' | 'default';

/** The cache folder for this user and where that choice came from (not created). */
export function cacheDirOf(explicit?: string): { dir: string; source: CacheDirSource } {
  if (explicit) return { dir: resolve(explicit), source: 'option' };
  const env = process.env.MODULEPICKLE_CACHE;
  if (env) return { dir: resolve(env), source: 'MODULEPICKLE_CACHE' };
  if (process.env.XDG_CACHE_HOME) return { dir: join(process.env.XDG_CACHE_HOME, 'modulepickle'), source: 'XDG_CACHE_HOME' };
  let home: string;
  try {
    home = homedir();
  } catch {
    return { dir: join(tmpdir(), `modulepickle-${process.getuid?.() ?? 'user'}`), source: 'default' };
  }
  if (process.platform === 'darwin') return { dir: join(home, 'Library', 'Caches', 'modulepickle'), source: 'default' };
  if (process.platform === 'win32' && process.env.LOCALAPPDATA) return { dir: join(process.env.LOCALAPPDATA, 'modulepickle'), source: 'default' };
  return { dir: join(home, '.cache', 'modulepickle'), source: 'default' };
}

/** The cache folder for this user (not created). `explicit` wins over the environment. */
export function defaultCacheDir(explicit?: string): string {
  return cacheDirOf(explicit).dir;
}

/** Whether `dir` holds a valid `CACHEDIR.TAG`. */
export function hasCacheTag(dir: string): boolean {
  try {
    return readFileSync(join(dir, cacheTagName), 'latin1').startsWith(cacheTagSignature);
  } catch {
    return false;
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Creates the cache folder (when needed) and tags it with `CACHEDIR.TAG` before anything else goes in. The tag is
 * written with one `write` on an exclusively created file; a process that loses that race waits (briefly) until the
 * winner's tag is complete, so no library file ever sits in an untagged cache folder. Returns `dir`.
 * @throws the `mkdir` error when the folder cannot be created
 */
export function ensureCacheDir(dir: string): string {
  if (hasCacheTag(dir)) return dir;
  const tag = join(dir, cacheTagName);
  mkdirSync(dir, { recursive: true });
  let fd: number | undefined;
  try {
    fd = openSync(tag, 'wx', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return dir; // read-only cache: writes below fail with their own error
  }
  if (fd !== undefined) {
    try {
      writeSync(fd, tagText);
    } finally {
      closeSync(fd);
    }
    return dir;
  }
  for (let i = 0; i < 50 && !hasCacheTag(dir); i++) Atomics.wait(sleeper, 0, 0, 1);
  return dir;
}
