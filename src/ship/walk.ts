/**
 * The file walk: which files under the root ship. Files git would not ignore (nested `.gitignore`,
 * `.git/info/exclude`, and `.modulepickleignore`), minus node_modules, .git and common caches,
 * with `include`/`exclude` patterns on top, plus workspace package links and extra (loaded) files. Folders the
 * library owns (its cache folders, see owned.ts) never ship, whatever the patterns say.
 *
 * `TreeWalker` keeps what it found per folder, so a folder can be walked again on its own (`refresh`): the
 * watcher-backed tree state (tree-watch.ts) re-walks only the folders that changed. `walkProject` is one full walk.
 */
import { lstatSync, readdirSync, readlinkSync, realpathSync, type Dirent, type Stats } from 'node:fs';
import { dirname, isAbsolute, join, posix, relative, sep } from 'node:path';
import type { Ignore } from 'ignore';
import { isLocalPath } from './root.ts';
import { checkSymlinkTarget } from './path-rules.ts';
import { comparePaths } from './manifest.ts';
import { configuredCaches, ownedWhy, taggedWhy } from './owned.ts';
import { cacheTagName, hasCacheTag } from '../runtime/cache-dir.ts';
import { isIgnored, matcher, outerLevels, readRules, ruleFileNames, type Level } from './walk-rules.ts';

export { ignoreFileName } from './walk-rules.ts';

/** Folder and file names that never ship, at any depth. */
export const alwaysExcluded: ReadonlySet<string> = new Set([
  'node_modules', '.git', '.hg', '.svn', '.cache', '.turbo', '.parcel-cache', '.nyc_output', '.eslintcache',
  '.DS_Store', '.modulepickle', '.pnpm-store', '.yarn-cache', '__pycache__', '.pytest_cache', '.next', '.nuxt', '.vite',
]);

/** Options of the walk. */
export interface WalkOptions {
  /** gitignore-style patterns (relative to the root) that ship even when ignored. */
  readonly include?: readonly string[];
  /** gitignore-style patterns (relative to the root) that never ship. */
  readonly exclude?: readonly string[];
  /** Absolute paths that ship even when ignored (e.g. every loaded local module), if local to the root. */
  readonly extraFiles?: Iterable<string>;
  /** The cacheDir option of the call: this folder never ships (nor does the cache the environment selects). */
  readonly cacheDir?: string;
}

/** The stat fields the ship layer uses (a full `Stats` is not kept: it costs four Dates per file). */
export interface FileStat {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly ino: number;
  readonly mode: number;
}

/** A file or symlink found by the walk. `rel` is a POSIX path relative to the root. */
export interface WalkEntry {
  readonly rel: string;
  readonly abs: string;
  readonly kind: 'file' | 'symlink';
  readonly stat: FileStat;
  readonly target?: string;
}

function fileStat(st: Stats): FileStat {
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, mode: st.mode };
}

/** Whether two stats describe the same file state. */
export function sameStat(a: FileStat, b: FileStat): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino && a.mode === b.mode;
}

/** What the walk found, and what it skipped with the reason. */
export interface WalkResult {
  readonly entries: WalkEntry[];
  readonly skipped: { rel: string; reason: string }[];
}

const Decision = { Skip: 0, File: 1, Dir: 2, IgnoredDir: 3 } as const;
type Decision = (typeof Decision)[keyof typeof Decision];

/** A folder's listing and the ship decision for each name, reused while the folder's mtime is unchanged. */
interface Listing {
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly listedAt: number;
  readonly names: string[];
  readonly dirs: boolean[];
  /** The folder holds a valid CACHEDIR.TAG. */
  readonly tagged: boolean;
  key: unknown[];
  decisions: Decision[];
}
const listings = new Map<string, Listing>();

/** Racy window for folder listings: as for files (see stat-cache.ts). */
function racyMs(mtimeMs: number): number {
  return mtimeMs % 1000 === 0 ? 2000 : 50;
}

function byName(a: Dirent, b: Dirent): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** A walked folder. */
export interface DirNode {
  readonly abs: string;
  readonly rel: string;
  /** Rules that apply to this folder's entries, before its own rule files. */
  readonly parentLevels: Level[];
  readonly dirIgnored: boolean;
  readonly ino: number;
  readonly dev: number;
  /** Rules for its entries (its own rule files included). */
  levels: Level[];
  /** Names of its files and symlinks that ship. */
  files: Set<string>;
  /** Names of its child folders that were walked. */
  dirs: Set<string>;
}

/** Hooks of a walker (the tree watch uses them). */
export interface WalkHooks {
  /** Called before a folder is listed (watch first, then list: nothing created after the listing is missed). */
  beforeList?(abs: string, rel: string): void;
  /** Called when a walked folder leaves the walk. */
  onRemove?(abs: string): void;
}

/** A walk of one root that remembers each folder, so folders can be walked again on their own. */
export class TreeWalker {
  readonly root: string;
  /** Files and symlinks that ship from the tree walk, by root-relative path (extra files and links are apart). */
  readonly entries = new Map<string, WalkEntry>();
  readonly skipped = new Map<string, string>();
  readonly nodes = new Map<string, DirNode>();
  /** Root-relative paths of owned folders (what a symlink must not point into), with why. */
  readonly ownedRels = new Map<string, string>();
  /** Paths added, changed or removed since the last `takeChanged()`. */
  #changed = new Set<string>();
  readonly #forced: Ignore | undefined;
  readonly #userExclude: Ignore | undefined;
  readonly #owned: Map<string, string>;
  readonly #hooks: WalkHooks;
  #outer: Level[] = [];

  constructor(root: string, options: WalkOptions = {}, hooks: WalkHooks = {}) {
    this.root = root;
    this.#forced = options.include?.length ? matcher([options.include.join('\n')]) : undefined;
    this.#userExclude = options.exclude?.length ? matcher([options.exclude.join('\n')]) : undefined;
    this.#owned = new Map(configuredCaches(options.cacheDir).map((o) => [o.dir, o.why] as const));
    for (const [dir, why] of this.#owned) if (dir === root || isLocalPath(root, dir)) this.ownedRels.set(relative(root, dir).split(sep).join('/'), why);
    this.#hooks = hooks;
  }

  /** Walks the whole tree. Returns the rule files above the root (their changes need a new walk). */
  scan(): string[] {
    const outer = outerLevels(this.root);
    this.#outer = outer.levels;
    this.#visit(this.root, '', this.#outer, false);
    return outer.files;
  }

  /** Paths added, changed or removed since the last call. */
  takeChanged(): Set<string> {
    const c = this.#changed;
    this.#changed = new Set();
    return c;
  }

  /**
   * Walks folder `abs` again: re-lists it, re-stats the entries named in `names` (every entry when null) and new
   * ones, walks new child folders, drops removed ones; a changed rule file re-walks the folder's whole subtree.
   * Returns false when the folder is no longer part of the walk (the caller refreshes its parent).
   */
  refresh(abs: string, names: ReadonlySet<string> | null): boolean {
    const node = this.nodes.get(abs);
    if (!node) return false;
    let st: Stats | undefined;
    try {
      st = lstatSync(abs);
    } catch {
      st = undefined;
    }
    if (!st?.isDirectory() || st.ino !== node.ino) {
      this.#remove(node);
      if (abs === this.root && st?.isDirectory()) this.#visit(abs, '', this.#outer, false);
      return abs === this.root;
    }
    if (names === null || ruleFileNames.some((n) => names.has(n)) || names.has(cacheTagName)) {
      this.#remove(node);
      this.#visit(abs, node.rel, node.parentLevels, node.dirIgnored);
      return true;
    }
    const listing = this.#list(abs, node.rel, true)?.listing;
    if (!listing) return true;
    const decisions = this.#decide(listing, node.rel, node.levels, node.dirIgnored);
    const files = new Set<string>();
    const dirs = new Map<string, boolean>();
    for (let i = 0; i < listing.names.length; i++) {
      const d = decisions[i];
      if (d === Decision.File) files.add(listing.names[i]!);
      else if (d === Decision.Dir || d === Decision.IgnoredDir) dirs.set(listing.names[i]!, d === Decision.IgnoredDir);
    }
    const prefix = abs.endsWith(sep) ? abs : abs + sep;
    const relOf = (name: string): string => (node.rel ? `${node.rel}/${name}` : name);
    for (const name of node.files) if (!files.has(name)) this.#drop(relOf(name));
    for (const name of node.dirs) {
      const child = this.nodes.get(prefix + name);
      if (child && !dirs.has(name)) this.#remove(child);
    }
    const oldFiles = node.files;
    const oldDirs = node.dirs;
    node.files = new Set();
    node.dirs = new Set();
    for (const name of files) {
      const rel = relOf(name);
      if (oldFiles.has(name) && !names.has(name)) node.files.add(name);
      // an event on the name counts as a change even when the stat looks the same (two writes in one timestamp
      // tick): the stat cache's racy-clean rule then decides whether to hash it again
      else if (this.#add(prefix + name, rel, names.has(name))) node.files.add(name);
    }
    for (const [name, ignoredDir] of dirs) {
      if (oldDirs.has(name) && this.nodes.has(prefix + name)) node.dirs.add(name);
      else if (this.#visit(prefix + name, relOf(name), node.levels, ignoredDir)) node.dirs.add(name);
    }
    return true;
  }

  /** Whether a symlink entry points into an owned folder (it would dangle on the receiver); why, or undefined. */
  symlinkIntoOwned(e: WalkEntry): string | undefined {
    if (e.kind !== 'symlink' || this.ownedRels.size === 0) return undefined;
    const to = posix.normalize(posix.join(posix.dirname(e.rel), e.target!));
    for (const [rel, why] of this.ownedRels) {
      if (rel === '' || to === rel || to.startsWith(`${rel}/`)) return `never ships: a symlink into '${rel || '.'}', ${why}`;
    }
    return undefined;
  }

  /** The owned folder (between `dir` and the root, both included) that holds `dir`, if any. */
  ownedAncestor(dir: string): { rel: string; why: string } | undefined {
    for (let d = dir; d === this.root || isLocalPath(this.root, d); d = dirname(d)) {
      if (this.nodes.has(d)) return undefined;
      const why = ownedWhy(d, this.#owned);
      if (why !== undefined) return { rel: relative(this.root, d).split(sep).join('/') || '.', why };
      if (d === this.root) return undefined;
    }
    return undefined;
  }

  /**
   * An extra file (a real path): its walk entry when it is local, not owned and not already in the tree walk;
   * `skipped` with the reason when it lies in an owned folder; undefined otherwise.
   */
  extraEntry(real: string): WalkEntry | { skipped: string; rel: string } | undefined {
    if (!isLocalPath(this.root, real) || real === this.root) return undefined;
    const rel = relative(this.root, real).split(sep).join('/');
    if (this.entries.has(rel)) return undefined;
    const inOwned = this.ownedAncestor(dirname(real));
    if (inOwned) return { skipped: `never ships: inside '${inOwned.rel}', ${inOwned.why}`, rel };
    const r = this.#entryOf(real, rel);
    return r && 'skipped' in r ? { skipped: r.skipped, rel } : r;
  }

  #skipOwned(dirRel: string, why: string): void {
    this.skipped.set(dirRel || '.', `never ships: ${why}`);
    this.ownedRels.set(dirRel, why);
  }

  #list(dirAbs: string, dirRel: string, fresh: boolean): { listing: Listing; st: Stats } | undefined {
    let st: Stats;
    try {
      st = lstatSync(dirAbs);
    } catch (err) {
      this.skipped.set(dirRel || '.', `unreadable folder (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      return undefined;
    }
    if (!st.isDirectory()) return undefined;
    let cached = listings.get(dirAbs);
    if (fresh || !cached || cached.mtimeMs !== st.mtimeMs || cached.ctimeMs !== st.ctimeMs || !(st.mtimeMs + racyMs(st.mtimeMs) < cached.listedAt)) {
      const listedAt = Date.now();
      let dirents;
      try {
        dirents = readdirSync(dirAbs, { withFileTypes: true });
      } catch (err) {
        this.skipped.set(dirRel || '.', `unreadable folder (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
        return undefined;
      }
      const names = dirents.filter((d) => !alwaysExcluded.has(d.name)).sort(byName);
      const tagged = names.some((d) => d.name === cacheTagName) && hasCacheTag(dirAbs);
      cached = { mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, listedAt, names: names.map((d) => d.name), dirs: names.map((d) => d.isDirectory()), tagged, key: [], decisions: [] };
      if (listings.size >= 200_000) listings.clear();
      listings.set(dirAbs, cached);
    }
    return { listing: cached, st };
  }

  /** Decisions depend only on the listing, the rule matchers (kept by identity) and the options. */
  #decide(listing: Listing, dirRel: string, here: Level[], dirIgnored: boolean): Decision[] {
    const forced = this.#forced;
    const userExclude = this.#userExclude;
    const key: unknown[] = [dirRel, forced, userExclude, dirIgnored, ...here.flatMap((l) => [l.ig, l.base, l.prepend])];
    if (listing.key.length === key.length && listing.key.every((k, i) => k === key[i])) return listing.decisions;
    listing.key = key;
    listing.decisions = listing.names.map((name, i) => {
      const rel = dirRel ? `${dirRel}/${name}` : name;
      const isDir = listing.dirs[i]!;
      if (userExclude?.ignores(isDir ? `${rel}/` : rel)) return Decision.Skip;
      const ignored = dirIgnored || isIgnored(here, rel, isDir);
      if (isDir) return !ignored ? Decision.Dir : forced ? Decision.IgnoredDir : Decision.Skip;
      return ignored && !forced?.ignores(rel) ? Decision.Skip : Decision.File;
    });
    return listing.decisions;
  }

  /** Walks a folder and everything under it; false when it is not part of the walk (owned, unreadable). */
  #visit(dirAbs: string, dirRel: string, levels: Level[], dirIgnored: boolean): boolean {
    const mine = this.#owned.get(dirAbs);
    if (mine !== undefined) return (this.#skipOwned(dirRel, mine), false);
    this.#hooks.beforeList?.(dirAbs, dirRel);
    const listed = this.#list(dirAbs, dirRel, false);
    if (!listed) return (this.#hooks.onRemove?.(dirAbs), false);
    const { listing, st } = listed;
    if (listing.tagged) return (this.#skipOwned(dirRel, taggedWhy), this.#hooks.onRemove?.(dirAbs), false);
    this.skipped.delete(dirRel || '.');
    let here = levels;
    const { names } = listing;
    if (names.includes('.gitignore') || names.includes(ruleFileNames[1]!)) {
      const rules = ruleFileNames.map((name) => (names.includes(name) ? (readRules(join(dirAbs, name)) ?? '') : ''));
      if (rules.some(Boolean)) here = [...levels, { ig: matcher(rules), base: dirRel, prepend: '' }];
    }
    const node: DirNode = { abs: dirAbs, rel: dirRel, parentLevels: levels, dirIgnored, ino: st.ino, dev: st.dev, levels: here, files: new Set(), dirs: new Set() };
    this.nodes.set(dirAbs, node);
    const decisions = this.#decide(listing, dirRel, here, dirIgnored);
    const prefix = dirAbs.endsWith(sep) ? dirAbs : dirAbs + sep;
    for (let i = 0; i < names.length; i++) {
      const decision = decisions[i];
      if (decision === Decision.Skip) continue;
      const name = names[i]!;
      const rel = dirRel ? `${dirRel}/${name}` : name;
      if (decision === Decision.File) {
        if (this.#add(prefix + name, rel)) node.files.add(name);
      } else if (this.#visit(prefix + name, rel, here, decision === Decision.IgnoredDir)) node.dirs.add(name);
    }
    return true;
  }

  /** The entry for a file or symlink, a skip reason, or undefined when it is gone. */
  #entryOf(abs: string, rel: string): WalkEntry | { skipped: string } | undefined {
    let st: Stats;
    try {
      st = lstatSync(abs);
    } catch {
      return undefined;
    }
    if (st.isFile()) return { rel, abs, kind: 'file', stat: fileStat(st) };
    if (!st.isSymbolicLink()) return { skipped: 'not a regular file or symlink' };
    let target: string;
    try {
      target = readlinkSync(abs);
    } catch {
      return undefined;
    }
    if (isAbsolute(target)) {
      if (!isLocalPath(this.root, target)) return { skipped: `symlink to '${target}' outside the root` };
      target = relative(dirname(abs), target);
    }
    target = target.split(sep).join('/');
    const problem = checkSymlinkTarget(rel, target);
    if (problem) return { skipped: problem };
    return { rel, abs, kind: 'symlink', stat: fileStat(st), target };
  }

  /** Adds (or re-stats) one entry; true when it ships. `touched`: reported changed even with the same stat. */
  #add(abs: string, rel: string, touched = false): boolean {
    const e = this.#entryOf(abs, rel);
    const old = this.entries.get(rel);
    if (!e || 'skipped' in e) {
      if (e) this.skipped.set(rel, e.skipped);
      if (old) (this.entries.delete(rel), this.#changed.add(rel));
      return false;
    }
    this.skipped.delete(rel);
    if (touched || !old || !sameStat(old.stat, e.stat) || old.kind !== e.kind || old.target !== e.target) this.#changed.add(rel);
    this.entries.set(rel, e);
    return true;
  }

  #drop(rel: string): void {
    if (this.entries.delete(rel)) this.#changed.add(rel);
    this.skipped.delete(rel);
  }

  /** Removes a folder and its subtree from the walk. */
  #remove(node: DirNode): void {
    const prefix = node.abs.endsWith(sep) ? node.abs : node.abs + sep;
    for (const name of node.dirs) {
      const child = this.nodes.get(prefix + name);
      if (child) this.#remove(child);
    }
    for (const name of node.files) this.#drop(node.rel ? `${node.rel}/${name}` : name);
    const inside = (rel: string): boolean => node.rel === '' || rel === node.rel || rel.startsWith(`${node.rel}/`);
    for (const rel of [...this.skipped.keys()]) if (inside(rel)) this.skipped.delete(rel);
    for (const rel of [...this.ownedRels.keys()]) if (inside(rel) && !this.#owned.has(rel ? join(this.root, rel) : this.root)) this.ownedRels.delete(rel);
    this.nodes.delete(node.abs);
    this.#hooks.onRemove?.(node.abs);
  }
}

/** Workspace packages linked into `<root>/node_modules` whose real folder is local code. */
export function workspaceLinks(root: string, isOwned: (real: string) => boolean): WalkEntry[] {
  const out: WalkEntry[] = [];
  const nm = join(root, 'node_modules');
  const names: string[] = [];
  try {
    for (const d of readdirSync(nm, { withFileTypes: true })) {
      if (d.name.startsWith('@') && d.isDirectory()) {
        for (const s of readdirSync(join(nm, d.name))) names.push(`${d.name}/${s}`);
      } else names.push(d.name);
    }
  } catch {
    return out;
  }
  for (const name of names) {
    const abs = join(nm, name);
    let st: Stats;
    let real: string;
    try {
      st = lstatSync(abs);
      if (!st.isSymbolicLink()) continue;
      real = realpathSync(abs);
    } catch {
      continue;
    }
    if (!isLocalPath(root, real) || real === root || isOwned(real)) continue;
    const target = relative(dirname(abs), real).split(sep).join('/');
    out.push({ rel: `node_modules/${name}`, abs, kind: 'symlink', stat: fileStat(st), target });
  }
  return out;
}

/** Extra files (absolute paths) as walk entries, skipping owned and unsafe ones (recorded in `skipped`). */
export function extraEntries(walker: TreeWalker, files: Iterable<string>, skipped: Map<string, string>): WalkEntry[] {
  const out = new Map<string, WalkEntry>();
  for (const file of files) {
    let real: string;
    try {
      real = realpathSync(file);
    } catch {
      continue;
    }
    const e = walker.extraEntry(real);
    if (!e) continue;
    if ('skipped' in e) skipped.set(e.rel, e.skipped);
    else out.set(e.rel, e);
  }
  return [...out.values()];
}

/**
 * Walks the root and returns the entries that ship, sorted by path. Synchronous: it is faster for many small files. */
export function walkProject(root: string, options: WalkOptions = {}): WalkResult {
  const walker = new TreeWalker(root, options);
  walker.scan();
  const skipped = new Map(walker.skipped);
  const all = [...walker.entries.values(), ...extraEntries(walker, options.extraFiles ?? [], skipped), ...workspaceLinks(root, (real) => walker.ownedAncestor(real) !== undefined)];
  const entries = all.filter((e) => {
    const why = walker.symlinkIntoOwned(e);
    if (why) skipped.set(e.rel, why);
    return !why;
  });
  entries.sort((a, b) => comparePaths(a.rel, b.rel));
  return { entries, skipped: [...skipped].map(([rel, reason]) => ({ rel, reason })) };
}
