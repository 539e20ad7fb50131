/**
 * Trees in use. A process holds one lease file per tree it uses (`<wrapper>/leases/<pid>-<token>`),
 * with an in-process reference count; the GC never removes a tree with a live lease. Releasing the last
 * reference removes the lease and purges the tree's CommonJS modules from `require.cache`.
 */
import { mkdirSync, readdirSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isMainThread, threadId } from 'node:worker_threads';
import { withCacheLock } from './cache-lock.ts';
import { gcCache } from './gc.ts';
import { materializeTree, materializeTreeSync, materializedTree, unlinkQuiet, type MaterializedTree, type MaterializeOptions } from './materialize.ts';

// A worker thread's leases carry its thread id, so that its pool can drop them when it ends (a terminated thread
// runs no exit hook): see dropThreadLeftovers.
const token = `${isMainThread ? '' : `t${threadId}-`}${randomBytes(6).toString('hex')}`;
const held = new Map<string, { count: number; lease: string; tree: MaterializedTree }>();
const byDir = new Map<string, string>();
let exitHook = false;

/** A tree this process uses; call `release()` when no function from it runs anymore. */
export interface TreeHandle extends MaterializedTree {
  release(): void;
}

function hookExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const h of held.values()) unlinkQuiet(h.lease);
  });
}

/** Takes a lease on a complete tree under the cache lock; false when the GC removed it meanwhile. */
function lease(tree: MaterializedTree): boolean {
  const key = tree.wrapper;
  const h = held.get(key);
  if (h) {
    h.count++;
    return true;
  }
  const file = join(tree.wrapper, 'leases', `${process.pid}-${token}`);
  const ok = withCacheLock(tree.cacheDir, () => {
    if (!existsSync(join(tree.wrapper, 'manifest.json'))) return false;
    mkdirSync(join(tree.wrapper, 'leases'), { recursive: true });
    writeFileSync(file, '');
    const now = new Date();
    utimesSync(join(tree.wrapper, 'manifest.json'), now, now);
    return true;
  });
  if (!ok) return false;
  hookExit();
  held.set(key, { count: 1, lease: file, tree });
  byDir.set(tree.dir, key);
  return true;
}

function handle(tree: MaterializedTree): TreeHandle {
  let released = false;
  return {
    ...tree,
    release: () => {
      if (released) return;
      released = true;
      releaseTree(tree.dir);
    },
  };
}

/**
 * Materializes a tree (when needed) and leases it for this process.
 * @throws the errors of `materializeTree`
 */
export async function openTree(text: unknown, options: MaterializeOptions & GcSchedule = {}): Promise<TreeHandle> {
  for (;;) {
    const tree = await materializeTree(text, options);
    if (lease(tree)) return handle(afterCreate(tree, options));
  }
}

/** Synchronous `openTree` with the blobs at hand (inline payload blobs or the cache). */
export function openTreeSync(text: unknown, blobs: ReadonlyMap<string, Uint8Array>, options: Omit<MaterializeOptions, 'blobSource'> & GcSchedule = {}): TreeHandle {
  for (;;) {
    const tree = materializeTreeSync(text, blobs, options);
    if (lease(tree)) return handle(afterCreate(tree, options));
  }
}

/**
 * Leases the tree of version `id` when this receiver's cache already has it (no manifest text needed), else
 * undefined (the caller fetches the manifest and opens it with `openTree`).
 * @throws ERR_MP_MANIFEST_INVALID for a malformed id
 */
export function openTreeById(id: string, options: Pick<MaterializeOptions, 'cacheDir' | 'nodeModules'> = {}): TreeHandle | undefined {
  // A tree this process holds a lease on cannot be collected: open it again without touching the file system
  // (finding the cache and node_modules folders costs a walk up from the cwd and a readlink). The key holds
  // everything those lookups depend on.
  const env = process.env;
  const key = `${id}\0${options.cacheDir ?? ''}\0${String(options.nodeModules ?? '')}\0${env.MODULEPICKLE_CACHE ?? ''}\0${env.MODULEPICKLE_NODE_MODULES ?? ''}\0${process.cwd()}`;
  const known = openedById.get(key);
  if (known) {
    const h = held.get(known.wrapper);
    if (h) {
      h.count++;
      return handle(known);
    }
    openedById.delete(key);
  }
  const tree = materializedTree(id, options);
  if (!tree || !lease(tree)) return undefined;
  if (openedById.size >= 256) openedById.clear();
  openedById.set(key, tree);
  return handle(tree);
}

/** Trees opened by id, by id and everything their lookup depends on (see openTreeById). */
const openedById = new Map<string, MaterializedTree>();

/** When a new tree was built, bound the cache soon after (off the caller's path). */
export interface GcSchedule {
  /** Cache budget in bytes for the GC that runs after a new tree is built; false: no automatic GC. */
  readonly cacheMaxBytes?: number | false;
}

/** Automatic GC runs at most this often per process (it scans the whole cache). */
const autoGcEveryMs = 30_000;
let lastAutoGc = 0;

function afterCreate(tree: MaterializedTree, options: GcSchedule): MaterializedTree {
  if (tree.created && options.cacheMaxBytes !== false && process.env.MODULEPICKLE_NO_GC !== '1' && Date.now() - lastAutoGc > autoGcEveryMs) {
    lastAutoGc = Date.now();
    const maxBytes = options.cacheMaxBytes;
    setTimeout(() => {
      try {
        gcCache({ cacheDir: tree.cacheDir, maxBytes });
      } catch {
        // the next build tries again
      }
    }, 0).unref();
  }
  return tree;
}

/** Drops one reference to the tree at `dir`; the last one removes the lease and purges its CommonJS modules. */
export function releaseTree(dir: string): void {
  const key = byDir.get(dir);
  const h = key === undefined ? undefined : held.get(key);
  if (!h || !key) return;
  if (--h.count > 0) return;
  held.delete(key);
  byDir.delete(dir);
  unlinkQuiet(h.lease);
  purgeRequireCache(dir);
}

/** Removes every `require.cache` entry under `dir` (ESM instances cannot be unloaded; they stay). */
export function purgeRequireCache(dir: string): number {
  const cache = createRequire(import.meta.url).cache;
  const prefix = dir.endsWith(sep) ? dir : dir + sep;
  let n = 0;
  for (const k of Object.keys(cache)) {
    if (k.startsWith(prefix)) {
      delete cache[k];
      n++;
    }
  }
  return n;
}

/** Tree folders this process holds leases on, with their reference counts. */
export function heldTrees(): { dir: string; id: string; count: number }[] {
  return [...held.values()].map((h) => ({ dir: h.tree.dir, id: h.tree.id, count: h.count }));
}

/**
 * Removes what worker thread `thread` of this process left in the cache folder: its tree leases and its TypeScript
 * config (loader.ts). A thread ended by `terminate()` runs no exit hook, and its pid stays alive, so the GC would keep
 * them, and the trees they lease, until the process exits. Never throws.
 */
export function dropThreadLeftovers(thread: number, cacheDir: string): void {
  const prefix = `${process.pid}-t${thread}-`;
  const ls = (dir: string): string[] => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  for (const ns of ls(join(cacheDir, 'ns'))) {
    unlinkQuiet(join(cacheDir, 'ns', ns, `tsconfig-${process.pid}-t${thread}.json`));
    for (const id of ls(join(cacheDir, 'ns', ns, 'trees'))) {
      const dir = join(cacheDir, 'ns', ns, 'trees', id, 'leases');
      for (const name of ls(dir)) if (name.startsWith(prefix)) unlinkQuiet(join(dir, name));
    }
  }
}
