/**
 * The project root: local modules are recorded relative to it, and it is the folder whose files ship.
 * One rule for every layer (see `findProjectRoot`): option `root`, else detected from the entry script
 * (or the current directory when there is none): nearest workspace root, else package.json, else git root.
 */
import { existsSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { findProjectRoot } from '../ship/root.ts';

const cache = new Map<string, string>();

function detect(start: string, option?: string): string {
  const key = `${option ?? ''}\0${start}`;
  let root = cache.get(key);
  if (root === undefined) {
    try {
      root = findProjectRoot(start, option).dir;
    } catch (err) {
      if (option !== undefined) throw err;
      root = realpathSync(process.cwd()); // no project anywhere above: the current directory
    }
    cache.set(key, root);
  }
  return root;
}

/**
 * The project root for an operation: option `root` when given, else detected from the entry script
 * (`process.argv[1]`), else from the current directory.
 * @throws ERR_MP_NO_ROOT when option `root` is not a folder
 */
export function projectRoot(options?: Readonly<Record<string, unknown>>): string {
  const opt = options?.['root'];
  if (typeof opt === 'string') return detect(resolve(opt), opt);
  const entry = process.argv[1];
  return detect(entry && existsSync(entry) ? entry : process.cwd());
}
