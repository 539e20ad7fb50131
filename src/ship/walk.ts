/**
 * The file walk: which files under the root ship. Files git would not ignore (nested `.gitignore`,
 * `.git/info/exclude`, and `.modulepickleignore`), minus node_modules, .git and common caches,
 * with `include`/`exclude` patterns on top, plus workspace package links and extra (loaded) files.
 */
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, type Stats } from 'node:fs';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { isLocalPath } from './root.ts';
import { checkSymlinkTarget } from './path-rules.ts';
import { comparePaths } from './manifest.ts';

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
}

/** A file or symlink found by the walk. `rel` is a POSIX path relative to the root. */
export interface WalkEntry {
  readonly rel: string;
  readonly abs: string;
  readonly kind: 'file' | 'symlink';
  readonly stat: Stats;
  readonly target?: string;
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
    if (exclude) levels.push({ ig: ignore().add(exclude), base: '', prepend });
    let dir = gitRoot;
    const parts = relative(gitRoot, root).split(sep).filter(Boolean);
    for (let i = 0; i <= parts.length; i++) {
      if (i > 0) dir = join(dir, parts[i - 1]!);
      if (dir === root) break;
      const rules = readRules(join(dir, '.gitignore'));
      if (rules) levels.push({ ig: ignore().add(rules), base: '', prepend: relative(dir, root).split(sep).join('/') + '/' });
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
function workspaceLinks(root: string, out: WalkEntry[]): void {
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
    if (!isLocalPath(root, real) || real === root) continue;
    const target = relative(dirname(abs), real).split(sep).join('/');
    out.push({ rel: `node_modules/${name}`, abs, kind: 'symlink', stat: st, target });
  }
}

/** Walks the root and returns the entries that ship, sorted by path. Synchronous: it is faster for many small files. */
export function walkProject(root: string, options: WalkOptions = {}): WalkResult {
  const entries: WalkEntry[] = [];
  const skipped: { rel: string; reason: string }[] = [];
  const forced = options.include?.length ? ignore().add(options.include.join('\n')) : undefined;
  const userExclude = options.exclude?.length ? ignore().add(options.exclude.join('\n')) : undefined;
  const seen = new Set<string>();

  const visit = (dirAbs: string, dirRel: string, levels: Level[], dirIgnored: boolean): void => {
    let dirents;
    try {
      dirents = readdirSync(dirAbs, { withFileTypes: true });
    } catch (err) {
      skipped.push({ rel: dirRel || '.', reason: `unreadable folder (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
      return;
    }
    let here = levels;
    const names = new Set(dirents.map((d) => d.name));
    if (names.has('.gitignore') || names.has(ignoreFileName)) {
      const ig = ignore();
      let any = false;
      for (const name of ['.gitignore', ignoreFileName]) {
        const rules = names.has(name) ? readRules(join(dirAbs, name)) : undefined;
        if (rules) {
          ig.add(rules);
          any = true;
        }
      }
      if (any) here = [...levels, { ig, base: dirRel, prepend: '' }];
    }
    for (const d of dirents) {
      if (alwaysExcluded.has(d.name)) continue;
      const rel = dirRel ? `${dirRel}/${d.name}` : d.name;
      const abs = join(dirAbs, d.name);
      const isDir = d.isDirectory();
      if (userExclude?.ignores(isDir ? `${rel}/` : rel)) continue;
      const ignored = dirIgnored || isIgnored(here, rel, isDir);
      if (isDir) {
        if (!ignored || forced) visit(abs, rel, here, ignored);
        continue;
      }
      if (ignored && !forced?.ignores(rel)) continue;
      add(abs, rel);
    }
  };

  const add = (abs: string, rel: string): void => {
    if (seen.has(rel)) return;
    let st: Stats;
    try {
      st = lstatSync(abs);
    } catch {
      return;
    }
    if (st.isFile()) {
      seen.add(rel);
      entries.push({ rel, abs, kind: 'file', stat: st });
    } else if (st.isSymbolicLink()) {
      let target = readlinkSync(abs);
      if (isAbsolute(target)) {
        if (!isLocalPath(root, target)) return void skipped.push({ rel, reason: `symlink to '${target}' outside the root` });
        target = relative(dirname(abs), target);
      }
      target = target.split(sep).join('/');
      const problem = checkSymlinkTarget(rel, target);
      if (problem) return void skipped.push({ rel, reason: problem });
      seen.add(rel);
      entries.push({ rel, abs, kind: 'symlink', stat: st, target });
    } else {
      skipped.push({ rel, reason: 'not a regular file or symlink' });
    }
  };

  visit(root, '', outerLevels(root), false);
  for (const file of options.extraFiles ?? []) {
    let real: string;
    try {
      real = realpathSync(file);
    } catch {
      continue;
    }
    if (!isLocalPath(root, real) || real === root) continue;
    add(real, relative(root, real).split(sep).join('/'));
  }
  workspaceLinks(root, entries);
  entries.sort((a, b) => comparePaths(a.rel, b.rel));
  return { entries, skipped };
}
