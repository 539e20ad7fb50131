/**
 * Project root detection. The root is the folder whose files ship; every shipped path is relative to it.
 * Default: the nearest workspace root (a package.json with `workspaces`, or pnpm-workspace.yaml) above the
 * code, else the nearest git root, else the nearest folder with a package.json.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { ShipError } from '../errors.ts';

/** Why a root was chosen (for logs and errors). */
export type RootReason = 'option' | 'workspace' | 'git' | 'package.json';

/** A project root: its real path and how it was found. */
export interface ProjectRoot {
  readonly dir: string;
  readonly reason: RootReason;
}

function ancestors(start: string): string[] {
  const out: string[] = [];
  let dir = start;
  for (;;) {
    out.push(dir);
    const up = dirname(dir);
    if (up === dir) return out;
    dir = up;
  }
}

function isWorkspaceRoot(dir: string): boolean {
  if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return true;
  const pkg = join(dir, 'package.json');
  if (!existsSync(pkg)) return false;
  try {
    const json = JSON.parse(readFileSync(pkg, 'utf8')) as { workspaces?: unknown };
    return json.workspaces !== undefined;
  } catch {
    return false;
  }
}

/**
 * Finds the project root for code at `start` (a file or folder), or validates `option` when given.
 * @throws ERR_MP_NO_ROOT when nothing above `start` looks like a project root, or `option` is not a folder.
 */
export function findProjectRoot(start: string, option?: string): ProjectRoot {
  if (option !== undefined) {
    const dir = resolve(option);
    let ok = false;
    try {
      ok = statSync(dir).isDirectory();
    } catch {
      ok = false;
    }
    if (!ok) throw new ShipError('ERR_MP_NO_ROOT', `the root option '${option}' is not a folder; pass an existing project folder as { root }`);
    return { dir: realpathSync(dir), reason: 'option' };
  }
  let from = realpathSync(resolve(start));
  try {
    if (!statSync(from).isDirectory()) from = dirname(from);
  } catch {
    from = dirname(from);
  }
  const chain = ancestors(from).filter((d) => !d.split(sep).includes('node_modules'));
  const workspace = chain.find(isWorkspaceRoot);
  if (workspace) return { dir: workspace, reason: 'workspace' };
  const git = chain.find((d) => existsSync(join(d, '.git')));
  if (git) return { dir: git, reason: 'git' };
  const pkg = chain.find((d) => existsSync(join(d, 'package.json')));
  if (pkg) return { dir: pkg, reason: 'package.json' };
  throw new ShipError(
    'ERR_MP_NO_ROOT',
    `no project root above '${from}' (no package.json, git repository or workspace); pass { root: '/path/to/project' }`,
    from,
  );
}

/** Whether the real path `file` is inside `root` and not under a node_modules folder (i.e. local code). */
export function isLocalPath(root: string, file: string): boolean {
  if (file !== root && !file.startsWith(root.endsWith(sep) ? root : root + sep)) return false;
  return !file.slice(root.length).split(sep).includes('node_modules');
}
