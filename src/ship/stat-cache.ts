/**
 * A persisted stat cache per project root: skips rehashing files whose stat is unchanged.
 * It lives in the user cache folder (never in the project). Git's racy-clean rule applies: a file
 * whose mtime is not safely older than the moment it was hashed is hashed again, so an edit within
 * the same timestamp granule is still seen.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from './manifest.ts';
import type { FileStat } from './walk.ts';
import { defaultCacheDir } from '../runtime/cache-dir.ts';

/**
 * A file modified less than this long before it was hashed is "racily clean" and rehashed next time.
 * Filesystems with sub-second timestamps still update them from a coarse clock (a few ms), so 50 ms;
 * whole-second timestamps (FAT, some network filesystems) need 2 s.
 */
export function racyWindowMs(st: FileStat): number {
  return st.mtimeMs % 1000 === 0 ? 2000 : 50;
}

/** [size, mtimeMs, ctimeMs, ino, mode, hash, hashedAtMs] */
type Row = [number, number, number, number, number, string, number];

interface CacheFile {
  format: 1;
  entries: Record<string, Row>;
}

const memory = new Map<string, Map<string, Row>>();

/** The stat cache of one root, loaded from memory or disk. */
export class StatCache {
  readonly file: string;
  readonly #rows: Map<string, Row>;
  readonly #next = new Map<string, Row>();
  #dirty = false;
  readonly root: string;

  private constructor(root: string, file: string, rows: Map<string, Row>) {
    this.root = root;
    this.file = file;
    this.#rows = rows;
  }

  /** Opens the cache of `root` (a real path). `cacheDir` defaults to the user cache folder. */
  static open(root: string, cacheDir?: string): StatCache {
    const file = join(defaultCacheDir(cacheDir), 'statcache', `${sha256Hex(root).slice(0, 32)}.json`);
    let rows = memory.get(file);
    if (!rows) {
      rows = new Map();
      try {
        const json = JSON.parse(readFileSync(file, 'utf8')) as CacheFile;
        if (json.format === 1) for (const [k, v] of Object.entries(json.entries)) rows.set(k, v);
      } catch {
        // missing or corrupt: start empty
      }
    }
    return new StatCache(root, file, rows);
  }

  /** The cached hash of `rel` when its stat is unchanged and it was not racily clean, else undefined. */
  lookup(rel: string, st: FileStat): string | undefined {
    const row = this.#rows.get(rel);
    if (!row) return undefined;
    if (row[0] !== st.size || row[1] !== st.mtimeMs || row[2] !== st.ctimeMs || row[3] !== st.ino || row[4] !== st.mode) return undefined;
    const window = racyWindowMs(st);
    if (!(st.mtimeMs + window < row[6]) || !(st.ctimeMs + window < row[6])) return undefined;
    this.#next.set(rel, row);
    return row[5];
  }

  /** Records the hash of `rel`, computed from content read after `st` was taken at `hashedAt`. */
  record(rel: string, st: FileStat, hash: string, hashedAt: number): void {
    this.#next.set(rel, [st.size, st.mtimeMs, st.ctimeMs, st.ino, st.mode, hash, hashedAt]);
    this.#dirty = true;
  }

  /** Saves the rows seen in this build (atomic replace); a no-op when nothing changed. */
  save(): void {
    if (!this.#dirty && this.#next.size === this.#rows.size) {
      memory.set(this.file, this.#rows);
      return;
    }
    memory.set(this.file, this.#next);
    const body: CacheFile = { format: 1, entries: Object.fromEntries(this.#next) };
    const tmp = `${this.file}.${process.pid}.${Date.now()}.tmp`;
    try {
      mkdirSync(join(this.file, '..'), { recursive: true });
      writeFileSync(tmp, JSON.stringify(body));
      renameSync(tmp, this.file);
    } catch {
      // a cache that cannot be written only costs speed
    }
  }

  /** Drops every in-memory copy (tests and benchmarks use this to measure a fresh process). */
  static clearMemory(): void {
    memory.clear();
  }
}
