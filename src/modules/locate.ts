/**
 * What a module file is: a file of an installed package (name, version, file inside the package) or a local file
 * of the project (path relative to the root). Local means: the realpath is inside the root and not under
 * `node_modules`, so a workspace package symlinked into `node_modules` is local.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModuleRef } from './module-ref.ts';

const pkgCache = new Map<string, { name: string; version: string } | null>();

function readPackage(dir: string): { name: string; version: string } | null {
  let hit = pkgCache.get(dir);
  if (hit !== undefined) return hit;
  hit = null;
  try {
    const json = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
    if (typeof json.name === 'string') hit = { name: json.name, version: typeof json.version === 'string' ? json.version : '0.0.0' };
  } catch {
    hit = null;
  }
  pkgCache.set(dir, hit);
  return hit;
}

function toPosix(p: string): string {
  return sep === '/' ? p : p.split(sep).join('/');
}

/** Turns a script URL or filename into a file path (drops query strings loaders add). */
export function urlToPath(urlOrPath: string): string | undefined {
  if (urlOrPath.startsWith('file://')) {
    try {
      return fileURLToPath(urlOrPath.replace(/[?#].*$/, ''));
    } catch {
      return undefined;
    }
  }
  if (urlOrPath.startsWith('/') || /^[A-Za-z]:[\\/]/.test(urlOrPath)) return urlOrPath;
  return undefined;
}

const realCache = new Map<string, string>();
function realpath(file: string): string {
  let r = realCache.get(file);
  if (r === undefined) {
    try {
      r = realpathSync(file);
    } catch {
      r = file;
    }
    realCache.set(file, r);
  }
  return r;
}

/** Classifies a module file. `esm` says how it was loaded (import vs require). */
export function locateModule(file: string, esm: boolean, root: string): ModuleRef {
  const real = realpath(file);
  const rel = relative(root, real);
  const inside = rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep) && !/^[A-Za-z]:/.test(rel);
  const parts = real.split(sep);
  const nm = parts.lastIndexOf('node_modules');
  if (inside && !toPosix(rel).split('/').includes('node_modules')) return { kind: 'local', path: toPosix(rel), esm };
  if (nm >= 0) {
    // The package folder: nearest ancestor (below node_modules) with a named package.json.
    let dir = dirname(real);
    const stop = parts.slice(0, nm + 1).join(sep);
    while (dir.length > stop.length) {
      const pkg = readPackage(dir);
      if (pkg) return { kind: 'package', name: pkg.name, version: pkg.version, file: toPosix(relative(dir, real)), esm };
      dir = dirname(dir);
    }
  }
  return { kind: 'file', path: real, esm };
}
