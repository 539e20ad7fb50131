/**
 * Modules this process has loaded: CommonJS from `require.cache`, ESM from a list the caller keeps.
 * Local ones (inside the root, not under node_modules) ship even when ignored.
 */
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isLocalPath } from './root.ts';

/** Absolute paths of every module in `require.cache`, plus `extra` (file paths or `file:` URLs, e.g. ESM modules). */
export function loadedModulePaths(extra: Iterable<string> = []): string[] {
  const out = new Set<string>(Object.keys(createRequire(import.meta.url).cache).filter((k) => isAbsolute(k)));
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

/** The loaded modules local to `root` (real paths). */
export function localLoadedModules(root: string, extra: Iterable<string> = []): string[] {
  const out: string[] = [];
  for (const p of loadedModulePaths(extra)) {
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
