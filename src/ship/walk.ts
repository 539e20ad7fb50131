/**
 * The file walk: which files under the root ship. Files git would not ignore (nested `.gitignore`,
 * `.git/info/exclude`, and `.modulepickleignore`), minus node_modules, .git and common caches,
 * with `include`/`exclude` patterns on top, plus workspace package links and extra (loaded) files. Folders the
 * library owns (its cache folders, see owned.ts) never ship, whatever the patterns say.
 */
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, type Stats } from 'node:fs';
import { dirname, isAbsolute, join, posix, relative, sep } from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { isLocalPath } from './root.ts';
import { checkSymlinkTarget } from './path-rules.ts';
import { comparePaths } from './manifest.ts';
import { configuredCaches, ownedWhy, taggedWhy } from './owned.ts';
import { cacheTagName, hasCacheTag } from '../runtime/cache-dir.ts';

/** Folder and file names that never ship, at any depth. */
export const alwaysExcluded: ReadonlySet<string> = new Set([
  'node_modules', '.git', '.hg', '.svn', '.cache', '.turbo', '.parcel-cache', '.nyc_output', '.eslintcache',
  '.DS_Store', '.modulepickle', '.pnpm-store', '.yarn-cache', '__pycache__', '.pytest_cache', '.next', '.nuxt', '.vite',
]);

/** Name of our own ignore file (gitignore syntax), read at every level like `.gitignore`. */
export const ignoreFileName = '.modulepickleignore';

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

/** What the walk found, and what it skipped with the reason. */
export interface WalkResult {
  readonly entries: WalkEntry[];
  readonly skipped: { rel: string; reason: string }[];
}

interface Level {
  readonly ig: Ignore;
  /** Relative folder (POSIX, '' for the root or above) whose rules these are. */
  readonly base: string;
  /** Prefix to add to root-relative paths (for rule files above the root). */
  readonly prepend: string;
}

function readRules(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Matchers are kept across builds, keyed by their rules text: the matcher caches its answers per path,
 * which makes a warm walk several times faster. Bounded, so a long-lived process does not grow without end.
 */
const matchers = new Map<string, Ignore>();
function matcher(rules: readonly string[]): Ignore {
  const key = rules.join('\0\0');
  let ig = matchers.get(key);
  if (!ig) {
    if (matchers.size >= 256) matchers.clear();
    ig = ignore();
    for (const r of rules) if (r) ig.add(r);
    matchers.set(key, ig);
  }
  return ig;
}

function findGitRoot(root: string): string | undefined {
  let dir = root;
  for (;;) {
    if (existsSync(join(dir, '.git'))) return dir;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

function gitDirOf(gitRoot: string): string {
  const dotgit = join(gitRoot, '.git');
  try {
    if (lstatSync(dotgit).isFile()) {
      const m = /^gitdir:\s*(.+)$/m.exec(readFileSync(dotgit, 'utf8'));
      if (m?.[1]) {
        const gitdir = isAbsolute(m[1].trim()) ? m[1].trim() : join(gitRoot, m[1].trim());
        const common = readRules(join(gitdir, 'commondir'));
        return common ? join(gitdir, common.trim()) : gitdir;
      }
    }
  } catch {
    // fall through
  }
  return dotgit;
}

/** Rule levels that apply to the root itself: info/exclude and .gitignore files from the git root down. */
function outerLevels(root: string): Level[] {
  const levels: Level[] = [];
  const gitRoot = findGitRoot(root);
  if (gitRoot) {
    const prepend = gitRoot === root ? '' : relative(gitRoot, root).split(sep).join('/') + '/';
    const exclude = readRules(join(gitDirOf(gitRoot), 'info', 'exclude'));
    if (exclude) levels.push({ ig: matcher([exclude]), base: '', prepend });
    let dir = gitRoot;
    const parts = relative(gitRoot, root).split(sep).filter(Boolean);
    for (let i = 0; i <= parts.length; i++) {
      if (i > 0) dir = join(dir, parts[i - 1]!);
      if (dir === root) break;
      const rules = readRules(join(dir, '.gitignore'));
      if (rules) levels.push({ ig: matcher([rules]), base: '', prepend: relative(dir, root).split(sep).join('/') + '/' });
    }
  }
  return levels;
}

function isIgnored(levels: readonly Level[], rel: string, isDir: boolean): boolean {
  let ignored = false;
  const tail = isDir ? '/' : '';
  for (const l of levels) {
    const local = l.base === '' ? rel : rel.slice(l.base.length + 1);
    const r = l.ig.test(l.prepend + local + tail);
    if (r.ignored) ignored = true;
    else if (r.unignored) ignored = false;
  }
  return ignored;
}

/** Workspace packages linked into `<root>/node_modules` whose real folder is local code. */
function workspaceLinks(root: string, out: WalkEntry[], isOwned: (real: string) => boolean): void {
  const nm = join(root, 'node_modules');
  const names: string[] = [];
  try {
    for (const d of readdirSync(nm, { withFileTypes: true })) {
      if (d.name.startsWith('@') && d.isDirectory()) {
        for (const s of readdirSync(join(nm, d.name))) names.push(`${d.name}/${s}`);
      } else names.push(d.name);
    }
  } catch {
    return;
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

/**
 * Walks the root and returns the entries that ship, sorted by path. Synchronous: it is faster for many small files. */
export function walkProject(root: string, options: WalkOptions = {}): WalkResult {
  const entries: WalkEntry[] = [];
  const skipped: { rel: string; reason: string }[] = [];
  const forced = options.include?.length ? matcher([options.include.join('\n')]) : undefined;
  const userExclude = options.exclude?.length ? matcher([options.exclude.join('\n')]) : undefined;
  const seen = new Set<string>();
  const owned = new Map(configuredCaches(options.cacheDir).map((o) => [o.dir, o.why] as const));
  /** Root-relative paths of owned folders (what a symlink must not point into), with why. */
  const ownedRels = new Map<string, string>();
  for (const [dir, why] of owned) if (dir === root || isLocalPath(root, dir)) ownedRels.set(relative(root, dir).split(sep).join('/'), why);
  const visited = new Set<string>();
  const skipOwned = (dirRel: string, why: string): void => {
    skipped.push({ rel: dirRel || '.', reason: `never ships: ${why}` });
    ownedRels.set(dirRel, why);
  };

  const visit = (dirAbs: string, dirRel: string, levels: Level[], dirIgnored: boolean): void => {
    const mine = owned.get(dirAbs);
    if (mine !== undefined) return skipOwned(dirRel, mine);
    let dirStat: Stats;
    try {
      dirStat = lstatSync(dirAbs);
    } catch (err) {
      skipped.push({ rel: dirRel || '.', reason: `unreadable folder (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
      return;
    }
    let cached = listings.get(dirAbs);
    if (!cached || cached.mtimeMs !== dirStat.mtimeMs || cached.ctimeMs !== dirStat.ctimeMs || !(dirStat.mtimeMs + racyMs(dirStat.mtimeMs) < cached.listedAt)) {
      const listedAt = Date.now();
      let dirents;
      try {
        dirents = readdirSync(dirAbs, { withFileTypes: true });
      } catch (err) {
        skipped.push({ rel: dirRel || '.', reason: `unreadable folder (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
        return;
      }
      const names = dirents.filter((d) => !alwaysExcluded.has(d.name)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const tagged = names.some((d) => d.name === cacheTagName) && hasCacheTag(dirAbs);
      cached = { mtimeMs: dirStat.mtimeMs, ctimeMs: dirStat.ctimeMs, listedAt, names: names.map((d) => d.name), dirs: names.map((d) => d.isDirectory()), tagged, key: [], decisions: [] };
      if (listings.size >= 200_000) listings.clear();
      listings.set(dirAbs, cached);
    }
    if (cached.tagged) return skipOwned(dirRel, taggedWhy);
    visited.add(dirAbs);
    let here = levels;
    const { names, dirs } = cached;
    if (names.includes('.gitignore') || names.includes(ignoreFileName)) {
      const rules = ['.gitignore', ignoreFileName].map((name) => (names.includes(name) ? (readRules(join(dirAbs, name)) ?? '') : ''));
      if (rules.some(Boolean)) here = [...levels, { ig: matcher(rules), base: dirRel, prepend: '' }];
    }
    // Decisions depend only on the listing, the rule matchers (kept by identity) and the options.
    const key: unknown[] = [dirRel, forced, userExclude, dirIgnored, ...here.flatMap((l) => [l.ig, l.base, l.prepend])];
    const reuse = cached.key.length === key.length && cached.key.every((k, i) => k === key[i]);
    if (!reuse) {
      cached.key = key;
      cached.decisions = names.map((name, i) => {
        const rel = dirRel ? `${dirRel}/${name}` : name;
        const isDir = dirs[i]!;
        if (userExclude?.ignores(isDir ? `${rel}/` : rel)) return Decision.Skip;
        const ignored = dirIgnored || isIgnored(here, rel, isDir);
        if (isDir) return !ignored ? Decision.Dir : forced ? Decision.IgnoredDir : Decision.Skip;
        return ignored && !forced?.ignores(rel) ? Decision.Skip : Decision.File;
      });
    }
    const prefix = dirAbs.endsWith(sep) ? dirAbs : dirAbs + sep;
    for (let i = 0; i < names.length; i++) {
      const decision = cached.decisions[i];
      if (decision === Decision.Skip) continue;
      const name = names[i]!;
      const rel = dirRel ? `${dirRel}/${name}` : name;
      if (decision === Decision.File) add(prefix + name, rel);
      else visit(prefix + name, rel, here, decision === Decision.IgnoredDir);
    }
  };

  const add = (abs: string, rel: string, extra = false): void => {
    if (extra && seen.has(rel)) return;
    let st: Stats;
    try {
      st = lstatSync(abs);
    } catch {
      return;
    }
    if (st.isFile()) {
      if (extra) seen.add(rel);
      entries.push({ rel, abs, kind: 'file', stat: fileStat(st) });
    } else if (st.isSymbolicLink()) {
      let target = readlinkSync(abs);
      if (isAbsolute(target)) {
        if (!isLocalPath(root, target)) return void skipped.push({ rel, reason: `symlink to '${target}' outside the root` });
        target = relative(dirname(abs), target);
      }
      target = target.split(sep).join('/');
      const problem = checkSymlinkTarget(rel, target);
      if (problem) return void skipped.push({ rel, reason: problem });
      if (extra) seen.add(rel);
      entries.push({ rel, abs, kind: 'symlink', stat: fileStat(st), target });
    } else {
      skipped.push({ rel, reason: 'not a regular file or symlink' });
    }
  };

  visit(root, '', outerLevels(root), false);
  let seenFilled = false;
  for (const file of options.extraFiles ?? []) {
    if (!seenFilled) {
      for (const e of entries) seen.add(e.rel);
      seenFilled = true;
    }
    let real: string;
    try {
      real = realpathSync(file);
    } catch {
      continue;
    }
    if (!isLocalPath(root, real) || real === root) continue;
    const rel = relative(root, real).split(sep).join('/');
    const inOwned = ownedAncestor(dirname(real));
    if (inOwned) {
      if (!seen.has(rel)) skipped.push({ rel, reason: `never ships: inside '${inOwned.rel}', ${inOwned.why}` });
      seen.add(rel);
      continue;
    }
    add(real, rel, true);
  }
  workspaceLinks(root, entries, (real) => ownedAncestor(real) !== undefined);
  const kept = entries.filter((e) => {
    if (e.kind !== 'symlink' || ownedRels.size === 0) return true;
    const to = posix.normalize(posix.join(posix.dirname(e.rel), e.target!));
    for (const [rel, why] of ownedRels) {
      if (rel === '' || to === rel || to.startsWith(`${rel}/`)) {
        skipped.push({ rel: e.rel, reason: `never ships: a symlink into '${rel || '.'}', ${why}` });
        return false;
      }
    }
    return true;
  });
  kept.sort((a, b) => comparePaths(a.rel, b.rel));
  return { entries: kept, skipped };

  /** The owned folder (between `dir` and the root, both included) that holds `dir`, if any. */
  function ownedAncestor(dir: string): { rel: string; why: string } | undefined {
    for (let d = dir; d === root || isLocalPath(root, d); d = dirname(d)) {
      if (visited.has(d)) return undefined;
      const why = ownedWhy(d, owned);
      if (why !== undefined) return { rel: relative(root, d).split(sep).join('/') || '.', why };
      if (d === root) return undefined;
    }
    return undefined;
  }
}
