/**
 * Which node_modules folder shipped code resolves its bare imports against on this receiver:
 * the `nodeModules` option, else `MODULEPICKLE_NODE_MODULES`, else the nearest node_modules above the
 * cwd, else the node_modules that holds modulepickle itself.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ShipError } from '../errors.ts';
import { sha256Hex } from '../ship/manifest.ts';

function nearestNodeModules(start: string): string | undefined {
  let dir = start;
  for (;;) {
    const nm = join(dir, 'node_modules');
    if (existsSync(nm)) return nm;
    // a folder named node_modules above us (we are installed inside one)
    if (basename(dir) === 'node_modules') return dir;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/**
 * The real path of the receiver's node_modules, or undefined when there is none.
 * @throws ERR_MP_NODE_MODULES when the named folder does not exist
 */
export function resolveNodeModules(option?: string | false): string | undefined {
  if (option === false) return undefined;
  const named = option ?? process.env.MODULEPICKLE_NODE_MODULES;
  if (named) {
    const abs = resolve(named);
    let ok = false;
    try {
      ok = statSync(abs).isDirectory();
    } catch {
      ok = false;
    }
    if (!ok) throw new ShipError('ERR_MP_NODE_MODULES', `the nodeModules folder '${abs}' does not exist; install the project's dependencies there or name another folder`, abs);
    return realpathSync(abs);
  }
  const found = nearestNodeModules(process.cwd()) ?? nearestNodeModules(dirname(fileURLToPath(import.meta.url)));
  return found ? realpathSync(found) : undefined;
}

/** Short key naming a node_modules folder (trees are materialized per key). */
export function nodeModulesKey(nodeModules: string | undefined): string {
  return nodeModules ? sha256Hex(nodeModules).slice(0, 16) : 'none';
}
