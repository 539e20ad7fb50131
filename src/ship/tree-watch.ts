/**
 * The watched tree: a project tree kept up to date by one `fs.watch` per walked folder, so that a call on an
 * unchanged tree costs no walk and no stat, and reuses the last manifest, its text and its version id.
 *
 * Freshness: an edit's inotify event is queued by the kernel inside the write syscall, before the write returns;
 * libuv reads the queue and runs the watch callbacks in its poll phase. `watchedBuild` first awaits two chained
 * `setImmediate`s, which always puts one poll phase between the caller and the check (one is not enough when the
 * caller runs in an I/O callback: measured), so every write that finished before the call is seen. Folders with
 * events are walked again on their own (named entries re-stated, new folders watched before they are listed);
 * a changed rule file re-walks its subtree. What the watch cannot see falls back to the full check
 * (`buildManifest`) with one warning: another platform, a non-local file system, the watch budget, a watcher error.
 */
import { readdirSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { assembleBuild, buildManifest, hashEntry, type BuildOptions, type ShipBuild } from './build.ts';
import { checkLimits, defaultMaxBytes, defaultMaxFileBytes } from './limits.ts';
import { comparePaths, type ManifestEntry } from './manifest.ts';
import { findProjectRoot, type RootReason } from './root.ts';
import { StatCache } from './stat-cache.ts';
import { TreeWalker, extraEntries, sameStat, workspaceLinks, type WalkEntry } from './walk.ts';
import { defaultMaxFolders, inotifyLimits, unwatchableFileSystem, unwatchablePlatform, warnFallbackOnce } from './watch-support.ts';

/** `ship.watch`: false for the full check on every call; an object to tune the watch. */
export type WatchOption = boolean | { readonly maxFolders?: number };

/** Options of a watched build: a build's, plus `watch`. */
export interface WatchedBuildOptions extends BuildOptions {
  readonly watch?: WatchOption;
}

/** More events than this between two calls are treated as a mass change (and a possible inotify queue overflow). */
const burstLimit = (): number => Math.min(4096, Math.floor((inotifyLimits().maxQueuedEvents ?? 16_384) / 4));
/** A watched tree unused this long is closed. */
const idleMs = 10 * 60_000;

/** Thrown inside a scan when watching cannot go on; the caller falls back. */
class Unwatchable extends Error {}

const afterPoll = (): Promise<void> => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

/** One watched root (for one set of walk options). */
class TreeWatch {
  readonly root: string;
  readonly rootReason: RootReason;
  readonly #options: WatchedBuildOptions;
  readonly #maxFolders: number;
  readonly #watchers = new Map<string, FSWatcher>();
  /** Folder → names with events (null: re-list everything). */
  readonly #dirty = new Map<string, Set<string> | null>();
  readonly #newDirs: string[] = [];
  readonly #devs = new Set<number>();
  #walker!: TreeWalker;
  #events = 0;
  #linksChanged = false;
  #extrasChanged = false;
  /** Why this watch can no longer be trusted (set by a watcher error). */
  broken: string | undefined;
  lastUsed = Date.now();
  // The last build and what it was made of.
  #build: ShipBuild | undefined;
  #entries = new Map<string, ManifestEntry>();
  #sorted: ManifestEntry[] = [];
  #extraKey = '';
  #extras: WalkEntry[] = [];
  #extraSkipped = new Map<string, string>();
  #links: WalkEntry[] = [];
  #packages: Record<string, string> | undefined;

  constructor(root: string, rootReason: RootReason, options: WatchedBuildOptions) {
    this.root = root;
    this.rootReason = rootReason;
    this.#options = options;
    const w = options.watch;
    this.#maxFolders = typeof w === 'object' && w.maxFolders !== undefined ? w.maxFolders : defaultMaxFolders();
  }

  /** Walks and watches the whole tree. @throws Unwatchable */
  start(): void {
    const platform = unwatchablePlatform() ?? unwatchableFileSystem(this.root);
    if (platform) throw new Unwatchable(platform);
    this.#walker = new TreeWalker(this.root, this.#options, {
      beforeList: (abs) => this.#watchDir(abs),
      onRemove: (abs) => this.#unwatch(abs),
    });
    const outer = this.#walker.scan();
    this.#checkDevs();
    for (const file of outer) this.#watchAbove(file, () => (this.broken ??= `'${file}' changed`));
    this.#watchLinks();
    this.#links = this.#linkEntries();
    this.#walker.takeChanged();
  }

  /** The build of the tree as it is now. @throws the build's ShipErrors, Unwatchable */
  update(extraFiles: readonly string[]): ShipBuild {
    this.lastUsed = Date.now();
    const walker = this.#walker;
    const treeChanged = this.#refreshDirty();
    let changed = treeChanged.size > 0 || this.#build === undefined;
    if (this.#linksChanged) {
      this.#linksChanged = false;
      this.#watchLinks();
      const links = this.#linkEntries();
      if (!sameEntries(links, this.#links)) changed = true;
      this.#links = links;
      this.#packages = undefined;
      changed = true;
    }
    const extraKey = extraFiles.join('\0');
    if (extraKey !== this.#extraKey || this.#extrasChanged || changed) {
      // an event in an extra file's folder: rebuild even if the stats look the same (see TreeWalker.refresh)
      if (this.#extrasChanged) changed = true;
      this.#extrasChanged = false;
      this.#extraKey = extraKey;
      const skipped = new Map<string, string>();
      const extras = extraEntries(walker, extraFiles, skipped);
      for (const e of extras) this.#watchExtraDir(dirname(e.abs));
      if (!sameEntries(extras, this.#extras) || skipped.size !== this.#extraSkipped.size) changed = true;
      this.#extras = extras;
      this.#extraSkipped = skipped;
    }
    if (!changed) return this.#build!;
    const wanted = [...walker.entries.values(), ...this.#extras, ...this.#links].filter((e) => walker.symlinkIntoOwned(e) === undefined);
    return this.#rebuild(wanted);
  }

  /** Closes every watcher. */
  close(): void {
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }

  /** The walk entry each manifest entry was made from (identity: a re-stat makes a new one). */
  #builtFrom = new Map<string, WalkEntry>();

  #rebuild(wanted: WalkEntry[]): ShipBuild {
    const o = this.#options;
    const totalBytes = checkLimits(wanted, o.maxBytes ?? defaultMaxBytes, o.maxFileBytes ?? defaultMaxFileBytes);
    const cache = o.statCache === false ? undefined : StatCache.open(this.root, o.cacheDir);
    const hashedAt = Date.now();
    const next = new Map<string, ManifestEntry>();
    const from = new Map<string, WalkEntry>();
    let hashed = 0;
    let samePaths = wanted.length === this.#entries.size;
    let packageChanged = this.#packages === undefined;
    for (const w of wanted) {
      // only the very walk entry it was made from (not re-stat-ed since) reuses a manifest entry; the rest goes
      // through the stat cache (cheap, and its racy-clean rule catches writes that leave the stat unchanged)
      let entry = this.#builtFrom.get(w.rel) === w ? this.#entries.get(w.rel) : undefined;
      if (entry === undefined) {
        const h = hashEntry(w, cache, hashedAt);
        if (h.hashed) hashed++;
        entry = h.entry;
        if (w.rel === 'package.json' || w.rel.endsWith('/package.json')) packageChanged = true;
      }
      if (samePaths && !this.#entries.has(w.rel)) samePaths = false;
      next.set(w.rel, entry);
      from.set(w.rel, w);
    }
    const removed = [...this.#entries.keys()].filter((rel) => !next.has(rel));
    for (const rel of removed) if (rel === 'package.json' || rel.endsWith('/package.json')) packageChanged = true;
    cache?.saveChanges(removed);
    const sorted = samePaths && this.#sorted.length ? this.#sorted.map((e) => next.get(e.path)!) : [...next.values()].sort((a, b) => comparePaths(a.path, b.path));
    const skipped = [...this.#walker.skipped, ...this.#extraSkipped].map(([rel, reason]) => ({ rel, reason }));
    const build = assembleBuild({
      root: this.root,
      rootReason: this.rootReason,
      entries: sorted,
      files: blobFilesOf(sorted, from),
      totalBytes,
      hashed,
      skipped,
      packages: packageChanged ? undefined : this.#packages,
    });
    this.#packages = build.manifest.packages as Record<string, string>;
    this.#entries = next;
    this.#builtFrom = from;
    this.#sorted = build.manifest.entries as ManifestEntry[];
    this.#build = build;
    return build;
  }

  /** Walks the folders with events again; returns the paths that changed. */
  #refreshDirty(): Set<string> {
    if (this.#dirty.size === 0) return new Set();
    const dirs = [...this.#dirty].sort((a, b) => a[0].length - b[0].length);
    this.#dirty.clear();
    const done = new Set<string>();
    for (const [abs, names] of dirs) {
      if (done.has(abs)) continue;
      done.add(abs);
      if (!this.#walker.refresh(abs, names)) {
        // gone from the walk: its parent (if walked) re-lists it
        const parent = dirname(abs);
        if (!done.has(parent) && this.#walker.nodes.has(parent)) (done.add(parent), this.#walker.refresh(parent, new Set([basename(abs)])));
      }
    }
    this.#checkDevs();
    return this.#walker.takeChanged();
  }

  #watchDir(abs: string): void {
    if (this.#watchers.has(abs)) return;
    if (this.#watchers.size >= this.#maxFolders) {
      throw new Unwatchable(`the tree has more than ${this.#maxFolders} folders to watch (ship.watch.maxFolders; fs.inotify.max_user_watches is ${inotifyLimits().maxUserWatches ?? 'unknown'})`);
    }
    this.#watchers.set(abs, this.#open(abs, (name) => this.#mark(abs, name)));
    this.#newDirs.push(abs);
  }

  /** Watches the folder of a file above the root (or of its missing folder); `onHit` on events for that name. */
  #watchAbove(file: string, onHit: () => void): void {
    for (let name = basename(file), dir = dirname(file); ; name = basename(dir), dir = dirname(dir)) {
      const key = `${dir}\0${name}`;
      if (this.#watchers.has(key)) return;
      try {
        this.#watchers.set(key, this.#open(dir, (n) => (n === null || n === name) && (this.#count(), onHit())));
        return;
      } catch (err) {
        if (err instanceof Unwatchable) throw err;
        if (dirname(dir) === dir) return;
      }
    }
  }

  /** Watches `<root>/node_modules` and its scope folders: workspace links (and installed versions) live there. */
  #watchLinks(): void {
    const nm = join(this.root, 'node_modules');
    const dirs = [nm];
    try {
      for (const d of readdirSync(nm, { withFileTypes: true })) if (d.name.startsWith('@') && d.isDirectory()) dirs.push(join(nm, d.name));
    } catch {
      // no node_modules: the root's watcher sees it appear
    }
    for (const dir of dirs) {
      const key = `${dir}\0links`;
      if (this.#watchers.has(key)) continue;
      try {
        this.#watchers.set(key, this.#open(dir, () => (this.#count(), (this.#linksChanged = true))));
      } catch (err) {
        if (err instanceof Unwatchable) throw err;
      }
    }
  }

  #watchExtraDir(dir: string): void {
    if (this.#walker.nodes.has(dir) || this.#watchers.has(`${dir}\0*`)) return;
    try {
      this.#watchers.set(`${dir}\0*`, this.#open(dir, () => (this.#count(), (this.#extrasChanged = true))));
    } catch (err) {
      if (err instanceof Unwatchable) throw err;
      this.#extrasChanged = true;
    }
  }

  /** Opens one watcher; ENOENT is left to the caller, every other failure makes the tree unwatchable. */
  #open(dir: string, onEvent: (name: string | null) => void): FSWatcher {
    let w: FSWatcher;
    try {
      w = watch(dir, { persistent: false }, (_type, name) => onEvent(typeof name === 'string' ? name : null));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw err;
      const why = code === 'ENOSPC' ? `the inotify watch limit was reached (fs.inotify.max_user_watches is ${inotifyLimits().maxUserWatches ?? 'unknown'})` : `fs.watch failed on '${dir}' (${code ?? String(err)})`;
      throw new Unwatchable(why);
    }
    w.on('error', (err: NodeJS.ErrnoException) => (this.broken ??= `a watcher failed on '${dir}' (${err.code ?? err.message})`));
    return w;
  }

  #unwatch(abs: string): void {
    this.#watchers.get(abs)?.close();
    this.#watchers.delete(abs);
  }

  #count(): void {
    if (++this.#events > burstLimit()) this.broken ??= 'a burst of file events (the inotify queue may have overflowed)';
  }

  #mark(abs: string, name: string | null): void {
    this.#count();
    if (abs === this.root && (name === 'node_modules' || name === null)) this.#linksChanged = true;
    const names = this.#dirty.get(abs);
    if (names === null) return;
    if (name === null) return void this.#dirty.set(abs, null);
    if (names) names.add(name);
    else this.#dirty.set(abs, new Set([name]));
  }

  /** Every new folder on another device than the root must be on a local file system too. @throws Unwatchable */
  #checkDevs(): void {
    const rootDev = this.#walker.nodes.get(this.root)?.dev;
    for (const abs of this.#newDirs.splice(0)) {
      const node = this.#walker.nodes.get(abs);
      if (!node || node.dev === rootDev || this.#devs.has(node.dev)) continue;
      const why = unwatchableFileSystem(abs);
      if (why) throw new Unwatchable(why);
      this.#devs.add(node.dev);
    }
  }

  #linkEntries(): WalkEntry[] {
    return workspaceLinks(this.root, (real) => this.#walker.ownedAncestor(real) !== undefined);
  }

  resetEvents(): void {
    this.#events = 0;
  }
}

/** Blob hash → a file with that content (the walk's absolute paths: no path strings are built). */
function blobFilesOf(entries: readonly ManifestEntry[], from: ReadonlyMap<string, WalkEntry>): Map<string, string> {
  const files = new Map<string, string>();
  for (const e of entries) if (e.kind === 'file' && !files.has(e.hash)) files.set(e.hash, from.get(e.path)!.abs);
  return files;
}

function sameEntry(a: WalkEntry, b: WalkEntry): boolean {
  return a.rel === b.rel && a.kind === b.kind && a.target === b.target && sameStat(a.stat, b.stat);
}

function sameEntries(a: readonly WalkEntry[], b: readonly WalkEntry[]): boolean {
  return a.length === b.length && a.every((e, i) => sameEntry(e, b[i]!));
}

const watches = new Map<string, TreeWatch>();
const unwatchable = new Map<string, string>();
let sweeper: NodeJS.Timeout | undefined;

function keyOf(root: string, o: WatchedBuildOptions): string {
  const w = o.watch;
  return JSON.stringify([root, o.include, o.exclude, o.cacheDir, o.maxBytes, o.maxFileBytes, o.statCache, typeof w === 'object' ? w.maxFolders : undefined]);
}

function sweep(): void {
  const now = Date.now();
  for (const [key, w] of watches) if (now - w.lastUsed > idleMs) (w.close(), watches.delete(key));
  if (watches.size === 0 && sweeper) (clearInterval(sweeper), (sweeper = undefined));
}

/** Whether the watch is turned off by option or environment (no warning then). */
function watchOff(o: WatchedBuildOptions): boolean {
  return o.watch === false || process.env.MODULEPICKLE_WATCH === '0';
}

/** Roots given by option, checked once (a stat and a realpath): the watch itself sees the folder go away. */
const optionRoots = new Map<string, ReturnType<typeof findProjectRoot>>();

function rootOf(from: string, option: string | undefined): ReturnType<typeof findProjectRoot> {
  if (option === undefined) return findProjectRoot(from);
  let found = optionRoots.get(option);
  if (!found) {
    found = findProjectRoot(from, option);
    if (optionRoots.size >= 256) optionRoots.clear();
    optionRoots.set(option, found);
  }
  return found;
}

/**
 * The build of the project tree, from the watched tree when it can be had: the first call walks and watches,
 * later calls cost what changed. Falls back to `buildManifest` (and warns once) where watching cannot be trusted.
 * @throws ERR_MP_NO_ROOT, ERR_MP_SHIP_TOO_LARGE, ERR_MP_SHIP_FILE_TOO_LARGE, ERR_MP_SHIP_EMPTY, ERR_MP_SHIP_READ
 */
export async function watchedBuild(options: WatchedBuildOptions): Promise<ShipBuild> {
  if (watchOff(options)) return buildManifest(options);
  const extras = [...(options.extraFiles ?? [])];
  const found = rootOf(options.from ?? extras[0] ?? process.cwd(), options.root);
  const key = keyOf(found.dir, options);
  if (unwatchable.has(key)) return buildManifest({ ...options, root: found.dir });
  await afterPoll();
  let w = watches.get(key);
  if (w?.broken !== undefined) {
    w.close();
    watches.delete(key);
    w = undefined;
  }
  if (!w) {
    w = new TreeWatch(found.dir, found.reason, options);
    try {
      w.start();
    } catch (err) {
      w.close();
      if (!(err instanceof Unwatchable)) throw err;
      unwatchable.set(key, err.message);
      warnFallbackOnce(found.dir, err.message);
      return buildManifest({ ...options, root: found.dir });
    }
    watches.set(key, w);
    sweeper ??= setInterval(sweep, 60_000).unref();
  }
  w.resetEvents();
  try {
    return w.update(extras);
  } catch (err) {
    // never keep a half-updated watch: the next call starts over
    w.close();
    watches.delete(key);
    if (!(err instanceof Unwatchable)) throw err;
    unwatchable.set(key, err.message);
    warnFallbackOnce(found.dir, err.message);
    return buildManifest({ ...options, root: found.dir });
  }
}

/** Closes every tree watch of this process (they are unref'd and never keep it alive; this frees them now). */
export function closeTreeWatches(): void {
  for (const w of watches.values()) w.close();
  watches.clear();
  unwatchable.clear();
  if (sweeper) (clearInterval(sweeper), (sweeper = undefined));
}

let holders = 0;

/**
 * Holds the tree watches open while an executor is (each executor takes one hold); when the last hold is released,
 * every watch closes. Returns the release function (idempotent).
 */
export function holdTreeWatches(): () => void {
  holders++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--holders === 0) closeTreeWatches();
  };
}

/** The roots watched now (for tests and tools). */
export function treeWatches(): { root: string }[] {
  return [...watches.values()].map((w) => ({ root: w.root }));
}

process.once('exit', closeTreeWatches);
