/**
 * Cache garbage collection: bounds the cache by bytes, removing least-recently-used trees that no live
 * process leases, then blobs no remaining tree references. Leftovers of killed processes (temp folders,
 * leases of dead pids) are removed too. Deletions are decided again under the cache lock.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { defaultCacheDir } from './cache-dir.ts';
import { pidAlive, withCacheLock } from './cache-lock.ts';
import { moveAside, unlinkQuiet } from './materialize.ts';

/** Default cache budget: 2 GiB. */
export const defaultCacheMaxBytes = 2 * 1024 * 1024 * 1024;

/** Options of `gcCache`. */
export interface GcOptions {
  readonly cacheDir?: string;
  /** Budget in bytes (default 2 GiB; `MODULEPICKLE_CACHE_MAX_BYTES` overrides the default). */
  readonly maxBytes?: number;
}

/** What a GC run did. */
export interface GcResult {
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  readonly removedTrees: string[];
  readonly removedBlobs: number;
  readonly keptInUse: number;
}

interface TreeInfo {
  wrapper: string;
  id: string;
  lastUsed: number;
  copied: number;
  hashes: string[];
  leased: boolean;
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function liveLeases(wrapper: string): boolean {
  let live = false;
  for (const name of list(join(wrapper, 'leases'))) {
    if (pidAlive(Number.parseInt(name, 10))) live = true;
    else unlinkQuiet(join(wrapper, 'leases', name));
  }
  return live;
}

function readTrees(cacheDir: string): TreeInfo[] {
  const out: TreeInfo[] = [];
  for (const ns of list(join(cacheDir, 'ns'))) {
    // per-process TypeScript configs (see loader.ts) of processes that are gone
    for (const name of list(join(cacheDir, 'ns', ns))) {
      const m = /^tsconfig-(\d+)(?:-t\d+)?\.json$/.exec(name);
      if (m && !pidAlive(Number(m[1]))) unlinkQuiet(join(cacheDir, 'ns', ns, name));
    }
    for (const id of list(join(cacheDir, 'ns', ns, 'trees'))) {
      const wrapper = join(cacheDir, 'ns', ns, 'trees', id);
      try {
        const text = readFileSync(join(wrapper, 'manifest.json'), 'utf8');
        const files = (JSON.parse(text) as { files: unknown[][] }).files;
        const meta = JSON.parse(readFileSync(join(wrapper, 'meta.json'), 'utf8')) as { copied?: number };
        const hashes = files.filter((f) => f[1] !== 'l').map((f) => String(f[2]));
        out.push({ wrapper, id, lastUsed: statSync(join(wrapper, 'manifest.json')).mtimeMs, copied: meta.copied ?? 0, hashes, leased: liveLeases(wrapper) });
      } catch {
        // not a tree we made
      }
    }
  }
  return out;
}

function readBlobs(cacheDir: string): Map<string, { size: number; mtime: number }> {
  const blobs = new Map<string, { size: number; mtime: number }>();
  const root = join(cacheDir, 'blobs');
  for (const sub of list(root)) {
    for (const h of list(join(root, sub))) {
      try {
        const st = statSync(join(root, sub, h));
        blobs.set(h, { size: st.size, mtime: st.mtimeMs });
      } catch {
        // raced with another GC
      }
    }
  }
  return blobs;
}

/** Removes temp folders of dead processes; true when a live extraction is in progress. */
function sweepTmp(cacheDir: string): boolean {
  let busy = false;
  for (const name of list(join(cacheDir, 'tmp'))) {
    const pid = Number.parseInt(name.split('-')[1] ?? '', 10);
    if (name.startsWith('tree-') && pidAlive(pid)) busy = true;
    else if (!pidAlive(pid)) rmSync(join(cacheDir, 'tmp', name), { recursive: true, force: true });
  }
  return busy;
}

/**
 * Bounds the cache folder by bytes: LRU trees without a live lease go first, then blobs no tree uses.
 * Safe to run while other processes use the cache.
 */
export function gcCache(options: GcOptions = {}): GcResult {
  const cacheDir = defaultCacheDir(options.cacheDir);
  const envMax = Number(process.env.MODULEPICKLE_CACHE_MAX_BYTES);
  const maxBytes = options.maxBytes ?? (envMax > 0 ? envMax : defaultCacheMaxBytes);
  if (!existsSync(cacheDir)) return { bytesBefore: 0, bytesAfter: 0, removedTrees: [], removedBlobs: 0, keptInUse: 0 };
  const trees = readTrees(cacheDir);
  const blobs = readBlobs(cacheDir);
  const refs = new Map<string, number>();
  for (const t of trees) for (const h of new Set(t.hashes)) refs.set(h, (refs.get(h) ?? 0) + 1);
  let bytes = 0;
  for (const b of blobs.values()) bytes += b.size;
  for (const t of trees) bytes += t.copied;
  const bytesBefore = bytes;
  const victims: TreeInfo[] = [];
  const dropBlobs = new Set<string>();
  const candidates = trees.filter((t) => !t.leased).sort((a, b) => a.lastUsed - b.lastUsed);
  for (const t of candidates) {
    if (bytes <= maxBytes) break;
    victims.push(t);
    bytes -= t.copied;
    for (const h of new Set(t.hashes)) {
      const n = (refs.get(h) ?? 1) - 1;
      refs.set(h, n);
      if (n === 0 && blobs.has(h)) {
        dropBlobs.add(h);
        bytes -= blobs.get(h)!.size;
      }
    }
  }
  if (bytes > maxBytes) {
    const orphans = [...blobs].filter(([h]) => !refs.has(h)).sort((a, b) => a[1].mtime - b[1].mtime);
    for (const [h, b] of orphans) {
      if (bytes <= maxBytes) break;
      dropBlobs.add(h);
      bytes -= b.size;
    }
  }
  const removedTrees: string[] = [];
  let removedBlobs = 0;
  const aside: string[] = [];
  const victimDirs: string[] = [];
  withCacheLock(cacheDir, () => {
    const busy = sweepTmp(cacheDir);
    for (const t of victims) {
      // leased between the scan and now: keep it and its blobs
      if (liveLeases(t.wrapper)) {
        for (const h of t.hashes) dropBlobs.delete(h);
        continue;
      }
      victimDirs.push(t.wrapper);
      removedTrees.push(t.id);
    }
    if (!busy) {
      for (const h of dropBlobs) {
        unlinkQuiet(join(cacheDir, 'blobs', h.slice(0, 2), h));
        removedBlobs++;
      }
    }
    for (const w of victimDirs) {
      const moved = moveAside(cacheDir, w);
      if (moved) aside.push(moved);
    }
  });
  for (const dir of aside) rmSync(dir, { recursive: true, force: true });
  return { bytesBefore, bytesAfter: bytes, removedTrees, removedBlobs, keptInUse: trees.filter((t) => t.leased).length };
}
