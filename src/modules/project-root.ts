/**
 * The project root: local modules are recorded relative to it, and it is the folder whose files ship.
 * One rule for every layer (see `findProjectRoot`): option `root`, else detected from the entry script
 * (or the current directory when there is none): nearest workspace root, else package.json, else git root.
 *
 * Answers are cached for the life of the process, per start folder and option: every payload asks, and the walk
 * up the folders costs a stat per level. That is the rule Node's own module loader follows (it reads each
 * package.json once per process), so code already running keeps the project it was loaded from even if a
 * package.json appears above it later; a new process sees the new layout.
 */
import { existsSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { findProjectRoot } from '../ship/root.ts';

const cache = new Map<string, string>();
const optionRoots = new Map<string, string>();
let entryStart: string | undefined;
let entryCwd: string | undefined;
let defaultRoot: string | undefined;

function detect(start: string, option?: string): string {
  const key = `${option ?? ''}\0${start}`;
  let root = cache.get(key);
  if (root === undefined) {
    try {
      root = findProjectRoot(start, option).dir;
    } catch (err) {
      if (option !== undefined) throw err;
      root = realpathSync(process.cwd()); // no project anywhere above: the current directory
    }
    cache.set(key, root);
  }
  return root;
}

/** Where detection starts when no option names the root: the entry script, else the current directory. */
function defaultStart(): string {
  const cwd = process.cwd();
  // The entry script does not change while the process runs; the current directory can (process.chdir).
  if (entryStart === undefined || (entryCwd !== undefined && entryCwd !== cwd)) {
    const entry = process.argv[1];
    const hasEntry = entry !== undefined && entry !== '' && existsSync(entry);
    entryStart = hasEntry ? entry : cwd;
    entryCwd = hasEntry ? undefined : cwd;
    defaultRoot = undefined;
  }
  return entryStart;
}

/**
 * The project root for an operation: option `root` when given, else detected from the entry script
 * (`process.argv[1]`), else from the current directory. Cached per process (see the module comment).
 * @throws ERR_MP_NO_ROOT when option `root` is not a folder
 */
export function projectRoot(options?: Readonly<Record<string, unknown>>): string {
  const opt = options?.['root'];
  if (typeof opt === 'string') {
    // A relative option is relative to the current directory, which may change.
    const key = opt.startsWith('/') ? opt : `${process.cwd()}\0${opt}`;
    let root = optionRoots.get(key);
    if (root === undefined) optionRoots.set(key, (root = detect(resolve(opt), opt)));
    return root;
  }
  const start = defaultStart();
  return (defaultRoot ??= detect(start));
}
