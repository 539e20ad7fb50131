/**
 * A persisted stat cache per project root: skips rehashing files whose stat is unchanged.
 * It lives in the user cache folder (never in the project). Git's racy-clean rule applies: a file
 * whose mtime is not safely older than the moment it was hashed is hashed again, so an edit within
 * the same timestamp granule is still seen.
 */
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from './manifest.ts';
import type { FileStat } from './walk.ts';
import { defaultCacheDir, ensureCacheDir } from '../runtime/cache-dir.ts';

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

const memory = new Map<string, { rows: Map<string, Row>; logLines: number }>();

/** Journal lines kept before the base file is rewritten. */
const maxLogLines = 64;
/** Changes at most this large are appended to the journal instead of rewriting the whole cache. */
const maxLogRows = 2000;

interface LogLine {
  set?: Record<string, Row>;
  del?: string[];
}

function load(file: string): { rows: Map<string, Row>; logLines: number } {
  const rows = new Map<string, Row>();
  let logLines = 0;
  try {
    const json = JSON.parse(readFileSync(file, 'utf8')) as CacheFile;
    if (json.format === 1) for (const [k, v] of Object.entries(json.entries)) rows.set(k, v);
  } catch {
    return { rows, logLines };
  }
  let log = '';
  try {
    log = readFileSync(`${file}.log`, 'utf8');
  } catch {
    // no journal
  }
  for (const line of log.split('\n')) {
    if (!line) continue;
    logLines++;
    try {
      const l = JSON.parse(line) as LogLine;
      for (const [k, v] of Object.entries(l.set ?? {})) rows.set(k, v);
      for (const k of l.del ?? []) rows.delete(k);
    } catch {
      // a torn last line (killed writer): skip it
    }
  }
  return { rows, logLines };
}

/**
 * The stat cache of one root, loaded from memory or disk. On disk: a base JSON file plus an append-only
 * journal of small changes (so a one-file edit does not rewrite the whole cache), compacted now and then.
 */
export class StatCache {
  readonly file: string;
  readonly #rows: Map<string, Row>;
  readonly #logLines: number;
  readonly #next = new Map<string, Row>();
  readonly #changed = new Map<string, Row>();
  readonly root: string;
  readonly #cacheDir: string;

  private constructor(root: string, cacheDir: string, file: string, rows: Map<string, Row>, logLines: number) {
    this.root = root;
    this.#cacheDir = cacheDir;
    this.file = file;
    this.#rows = rows;
    this.#logLines = logLines;
  }

  /** Opens the cache of `root` (a real path). `cacheDir` defaults to the user cache folder. */
  static open(root: string, cacheDir?: string): StatCache {
    const dir = defaultCacheDir(cacheDir);
    const file = join(dir, 'statcache', `${sha256Hex(root).slice(0, 32)}.json`);
    const state = memory.get(file) ?? load(file);
    return new StatCache(root, dir, file, state.rows, state.logLines);
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
    const row: Row = [st.size, st.mtimeMs, st.ctimeMs, st.ino, st.mode, hash, hashedAt];
    this.#next.set(rel, row);
    this.#changed.set(rel, row);
  }

  /** Saves the rows seen in this build: a journal line for small changes, else an atomic rewrite. */
  save(): void {
    const removed: string[] = [];
    for (const k of this.#rows.keys()) if (!this.#next.has(k)) removed.push(k);
    if (this.#changed.size === 0 && removed.length === 0) {
      memory.set(this.file, { rows: this.#rows, logLines: this.#logLines });
      return;
    }
    try {
      mkdirSync(join(ensureCacheDir(this.#cacheDir), 'statcache'), { recursive: true });
      if (this.#changed.size + removed.length <= maxLogRows && this.#logLines < maxLogLines && this.#rows.size > 0) {
        const line: LogLine = { set: Object.fromEntries(this.#changed), del: removed };
        appendFileSync(`${this.file}.log`, `${JSON.stringify(line)}\n`);
        memory.set(this.file, { rows: this.#next, logLines: this.#logLines + 1 });
        return;
      }
      memory.set(this.file, { rows: this.#next, logLines: 0 });
      const body: CacheFile = { format: 1, entries: Object.fromEntries(this.#next) };
      const tmp = `${this.file}.${process.pid}.${Date.now()}.tmp`;
      writeFileSync(tmp, JSON.stringify(body));
      renameSync(tmp, this.file);
      rmSync(`${this.file}.log`, { force: true });
    } catch {
      // a cache that cannot be written only costs speed
      memory.set(this.file, { rows: this.#next, logLines: maxLogLines });
    }
  }

  /**
   * Saves only what this build looked at (a build that re-walked some folders): the rows it recorded, and the paths
   * it names as removed; every other row stays.
   */
  saveChanges(removed: readonly string[]): void {
    const gone = removed.filter((k) => this.#rows.has(k));
    if (this.#changed.size === 0 && gone.length === 0) return;
    for (const [k, v] of this.#changed) this.#rows.set(k, v);
    for (const k of gone) this.#rows.delete(k);
    try {
      mkdirSync(join(ensureCacheDir(this.#cacheDir), 'statcache'), { recursive: true });
      if (this.#changed.size + gone.length <= maxLogRows && this.#logLines < maxLogLines) {
        const line: LogLine = { set: Object.fromEntries(this.#changed), del: gone };
        appendFileSync(`${this.file}.log`, `${JSON.stringify(line)}\n`);
        memory.set(this.file, { rows: this.#rows, logLines: this.#logLines + 1 });
        return;
      }
      memory.set(this.file, { rows: this.#rows, logLines: 0 });
      const tmp = `${this.file}.${process.pid}.${Date.now()}.tmp`;
      writeFileSync(tmp, JSON.stringify({ format: 1, entries: Object.fromEntries(this.#rows) } satisfies CacheFile));
      renameSync(tmp, this.file);
      rmSync(`${this.file}.log`, { force: true });
    } catch {
      memory.set(this.file, { rows: this.#rows, logLines: maxLogLines });
    }
  }

  /** Drops every in-memory copy (tests and benchmarks use this to measure a fresh process). */
  static clearMemory(): void {
    memory.clear();
  }
}
