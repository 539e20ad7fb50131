/**
 * Ignore rules of the walk: `.gitignore` files (nested, and those between the git root and the project root),
 * `.git/info/exclude`, and `.modulepickleignore`, as levels of gitignore matchers applied in order.
 */
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import ignore, { type Ignore } from 'ignore';

/** Name of our own ignore file (gitignore syntax), read at every level like `.gitignore`. */
export const ignoreFileName = '.modulepickleignore';

/** Names of the rule files read in every folder. */
export const ruleFileNames: readonly string[] = ['.gitignore', ignoreFileName];

/** One set of rules and where it applies. */
export interface Level {
  readonly ig: Ignore;
  /** Relative folder (POSIX, '' for the root or above) whose rules these are. */
  readonly base: string;
  /** Prefix to add to root-relative paths (for rule files above the root). */
  readonly prepend: string;
}

/** A file's text, or undefined when it cannot be read. */
export function readRules(file: string): string | undefined {
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

/** A gitignore matcher for `rules` (shared by rules text). */
export function matcher(rules: readonly string[]): Ignore {
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

/** The rule levels that apply to the root itself, and the rule files above the root they come from (read or not). */
export interface OuterRules {
  readonly levels: Level[];
  /** Absolute paths of every rule file above the root that would change the levels (present or not). */
  readonly files: string[];
}

/** Rule levels that apply to the root itself: info/exclude and .gitignore files from the git root down. */
export function outerLevels(root: string): OuterRules {
  const levels: Level[] = [];
  const files: string[] = [];
  const gitRoot = findGitRoot(root);
  if (gitRoot) {
    const prepend = gitRoot === root ? '' : relative(gitRoot, root).split(sep).join('/') + '/';
    const excludeFile = join(gitDirOf(gitRoot), 'info', 'exclude');
    files.push(excludeFile);
    const exclude = readRules(excludeFile);
    if (exclude) levels.push({ ig: matcher([exclude]), base: '', prepend });
    let dir = gitRoot;
    const parts = relative(gitRoot, root).split(sep).filter(Boolean);
    for (let i = 0; i <= parts.length; i++) {
      if (i > 0) dir = join(dir, parts[i - 1]!);
      if (dir === root) break;
      files.push(join(dir, '.gitignore'));
      const rules = readRules(join(dir, '.gitignore'));
      if (rules) levels.push({ ig: matcher([rules]), base: '', prepend: relative(dir, root).split(sep).join('/') + '/' });
    }
  }
  return { levels, files };
}

/** Whether the root-relative `rel` is ignored by the levels (the last matching level decides). */
export function isIgnored(levels: readonly Level[], rel: string, isDir: boolean): boolean {
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
