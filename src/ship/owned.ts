/**
 * Folders the library owns, which never ship: the cache folders it writes to during a call (blobs, trees, temp
 * folders, the stat cache, leases and locks all live in one). Two mechanisms, because each misses a case the other
 * covers: the configured cache folders by real path (symlinks resolved; this process writes there even before the
 * folder exists or is tagged), and any folder holding a `CACHEDIR.TAG` (every cache folder modulepickle writes to is
 * tagged first, so a cache another process uses, under another setting, is recognised too; so are other tools'
 * tagged caches, which are never code either).
 */
import { realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { cacheDirOf, cacheTagName, hasCacheTag, type CacheDirSource } from '../runtime/cache-dir.ts';

/** A folder that never ships, by real path, and why. */
export interface OwnedFolder {
  readonly dir: string;
  readonly why: string;
}

/** The real path of `p`, resolving symlinks in the part of it that exists. */
export function realpathDeep(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    const up = dirname(p);
    return up === p ? p : join(realpathDeep(up), basename(p));
  }
}

const sourceText: Record<CacheDirSource, string> = {
  option: 'the cacheDir option',
  MODULEPICKLE_CACHE: '$MODULEPICKLE_CACHE',
  XDG_CACHE_HOME: '$XDG_CACHE_HOME/modulepickle',
  default: 'the default cache folder',
};

/** Why a folder with a valid `CACHEDIR.TAG` is skipped. */
export const taggedWhy = `a cache folder (it holds a ${cacheTagName}: modulepickle's cache, maybe another process's, or another tool's)`;

/**
 * The configured cache folders of this process (the `cacheDir` option when given, and the one the environment
 * selects), by real path, with why each never ships.
 */
export function configuredCaches(cacheDir?: string): OwnedFolder[] {
  const out: OwnedFolder[] = [];
  const seen = new Set<string>();
  for (const c of cacheDir ? [cacheDirOf(cacheDir), cacheDirOf()] : [cacheDirOf()]) {
    const dir = realpathDeep(c.dir);
    if (seen.has(dir)) continue;
    seen.add(dir);
    out.push({ dir, why: `modulepickle's cache folder (${sourceText[c.source]}${dir !== c.dir ? `, '${c.dir}' resolved` : ''})` });
  }
  return out;
}

/** Whether `dir` is owned: one of `owned` or tagged. Returns why, or undefined. */
export function ownedWhy(dir: string, owned: ReadonlyMap<string, string>): string | undefined {
  return owned.get(dir) ?? (hasCacheTag(dir) ? taggedWhy : undefined);
}
