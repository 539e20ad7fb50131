/**
 * The project root: local modules are recorded relative to it.
 */
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

let cached: { cwd: string; root: string } | undefined;

/** Nearest folder at or above `from` holding a `package.json` (or `from` itself when none), as a realpath. */
export function findProjectRoot(from: string): string {
  let dir = resolve(from);
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return realpathSync(dir);
    const up = dirname(dir);
    if (up === dir) return realpathSync(resolve(from));
    dir = up;
  }
}

/**
 * The project root for an operation: option `root` when given, else the nearest folder at or above the current
 * directory that holds a `package.json`. Encoding and decoding on one machine compute the same folder.
 */
export function projectRoot(options?: Readonly<Record<string, unknown>>): string {
  const opt = options?.['root'];
  if (typeof opt === 'string') return realpathSync(resolve(opt));
  const cwd = process.cwd();
  if (cached?.cwd !== cwd) cached = { cwd, root: findProjectRoot(cwd) };
  return cached.root;
}
