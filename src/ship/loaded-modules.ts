/**
 * Modules this process has loaded: CommonJS from `require.cache`, ESM from a list the caller keeps.
 * Local ones (inside the root, not under node_modules) ship even when ignored.
 */
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isLocalPath } from './root.ts';

const requireCache = createRequire(import.meta.url).cache;

/** Absolute paths of every module in `require.cache`, plus `extra` (file paths or `file:` URLs, e.g. ESM modules). */
export function loadedModulePaths(extra: Iterable<string> = []): string[] {
  const out = new Set<string>(Object.keys(requireCache).filter((k) => isAbsolute(k)));
  for (const e of extra) {
    if (e.startsWith('file:')) out.add(fileURLToPath(e));
    else if (isAbsolute(e)) out.add(e);
  }
  return [...out];
}

/** Real paths of loaded modules (a loaded module's file stays put; a deleted one is looked up again). */
const reals = new Map<string, string>();

/**
 * The real path of a loaded module's file, cached: a loaded module's file stays where it is (an edit rewrites its
 * contents, which the tree check sees). @throws the realpath error when the file does not exist
 */
export function realModulePath(p: string): string {
  let real = reals.get(p);
  if (real === undefined) {
    real = realpathSync(p);
    if (reals.size >= 100_000) reals.clear();
    reals.set(p, real);
  }
  return real;
}

/** The last answer for `require.cache` alone, by root: valid while the cache's key count and last key are the same. */
const lastLocal = new Map<string, { count: number; last: string | undefined; out: readonly string[] }>();

/**
 * The loaded modules local to `root` (real paths). Without `extra`, the answer is kept until `require.cache`
 * changes (modules are added at the end of its key order, so a count and a last key tell).
 */
export function localLoadedModules(root: string, extra?: Iterable<string>): readonly string[] {
  if (extra !== undefined) return collectLocal(root, loadedModulePaths(extra));
  const keys = Object.keys(requireCache);
  const last = keys[keys.length - 1];
  const hit = lastLocal.get(root);
  if (hit && hit.count === keys.length && hit.last === last) return hit.out;
  const out = collectLocal(root, loadedModulePaths());
  if (lastLocal.size >= 64) lastLocal.clear();
  lastLocal.set(root, { count: keys.length, last, out });
  return out;
}

function collectLocal(root: string, paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let real = reals.get(p);
    if (real === undefined) {
      try {
        real = realpathSync(p);
      } catch {
        continue; // deleted since it was loaded
      }
      if (reals.size >= 100_000) reals.clear();
      reals.set(p, real);
    }
    if (isLocalPath(root, real)) out.push(real);
  }
  return out;
}
