/**
 * Loading shipped modules: `importFromTree(dir, 'src/x.ts')` imports a module of a materialized tree.
 * Each tree has its own folder, so its ESM URLs (and its module graph) are its own: old functions keep
 * old modules, and a dynamic `import()` in old code resolves inside its own tree. A TypeScript loader
 * (tsx) is registered once, only when a `.ts` module is loaded and none is active.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isMainThread, threadId } from 'node:worker_threads';
import { ShipError } from '../errors.ts';
import { checkRelPath } from '../ship/path-rules.ts';
import { checkPackage } from './packages.ts';
import { resolveNodeModules } from './node-modules.ts';
import { treeDirKey } from './keys.ts';

const tsRe = /\.(?:[cm]?ts|tsx)$/;
let tsLoader: Promise<void> | undefined;

const cjsLoaderActive = (): boolean => createRequire(import.meta.url).extensions['.ts'] !== undefined;
/** A worker thread registered tsx's ESM loader itself (see ensureTypeScriptLoader). */
let threadEsmRegistered = false;

/** Whether a TypeScript loader is active in this process or thread (e.g. it runs under `tsx`). */
export function typeScriptLoaderActive(): boolean {
  // A loader once active stays active: the check (a createRequire) runs until then only.
  if (tsActive) return true;
  return (tsActive = cjsLoaderActive() && (isMainThread || threadEsmRegistered));
}
let tsActive = false;

async function importTsxApi(which: 'esm' | 'cjs', nodeModules: string | undefined): Promise<{ register: (o?: object) => unknown }> {
  const bases = [nodeModules ? join(nodeModules, '..', 'noop.js') : undefined, import.meta.url].filter((b): b is string => !!b);
  for (const base of bases) {
    try {
      const resolved = createRequire(base).resolve(`tsx/${which}/api`);
      // the ESM entry of the API (its CJS entry would load a second copy of tsx)
      const esm = resolved.replace(/index\.cjs$/, 'index.mjs');
      return (await import(pathToFileURL(esm).href)) as { register: (o?: object) => unknown };
    } catch {
      // try the next base
    }
  }
  throw new ShipError('ERR_MP_TS_LOADER_MISSING', 'shipped code has TypeScript modules but tsx is not installed on this receiver; `npm install tsx` next to your code, or ship compiled JavaScript');
}

/**
 * tsx applies a tsconfig's compiler options only to the files its `include` matches, relative to the config's
 * folder. A tree's own tsconfig would cover only that tree, not the next version's; so tsx gets a per-process
 * config beside the trees that extends the tree's and includes every tree of the namespace.
 */
function treesTsconfig(tsconfig: string): string {
  const treeDir = dirname(tsconfig);
  const trees = dirname(dirname(treeDir));
  const nsDir = dirname(trees);
  if (basename(trees) !== 'trees' || basename(treeDir) !== 'tree') return tsconfig;
  const file = join(nsDir, `tsconfig-${process.pid}${isMainThread ? '' : `-t${threadId}`}.json`);
  const extendsPath = `./${relative(nsDir, tsconfig).split(sep).join('/')}`;
  writeFileSync(file, JSON.stringify({ extends: extendsPath, include: ['trees/*/tree/**/*'] }));
  process.once('exit', () => rmSync(file, { force: true }));
  return file;
}

/**
 * Registers tsx's ESM and CommonJS loaders once, unless a TypeScript loader is already active. `tsconfig`
 * (e.g. the tree's own tsconfig.json) configures them: tsx otherwise reads the cwd's, which on a receiver is not
 * the project's (decorator settings and path aliases would be lost).
 * @throws ERR_MP_TS_LOADER_MISSING when tsx cannot be found
 */
export function ensureTypeScriptLoader(options: { nodeModules?: string | false; tsconfig?: string } = {}): Promise<void> {
  if (tsLoader) return tsLoader;
  if (typeScriptLoaderActive()) return (tsLoader = Promise.resolve());
  // A worker thread inherits `--import tsx`, which there installs tsx's CommonJS hooks, but Node 20 applies no
  // module hooks of the main thread to it: a thread registers tsx's ESM loader itself.
  const cjsActive = cjsLoaderActive();
  const nm = resolveNodeModules(options.nodeModules);
  tsLoader = (async () => {
    const esm = await importTsxApi('esm', nm);
    const cjs = cjsActive ? undefined : await importTsxApi('cjs', nm);
    const tsconfig = options.tsconfig && existsSync(options.tsconfig) ? treesTsconfig(options.tsconfig) : undefined;
    const saved = process.env.TSX_TSCONFIG_PATH;
    // tsx's CommonJS loader reads its tsconfig path from the environment when it registers
    if (tsconfig && saved === undefined) process.env.TSX_TSCONFIG_PATH = tsconfig;
    try {
      esm.register(tsconfig ? { tsconfig } : {});
      cjs?.register();
      threadEsmRegistered = !isMainThread;
    } finally {
      if (saved === undefined) delete process.env.TSX_TSCONFIG_PATH;
    }
  })();
  tsLoader.catch(() => {
    tsLoader = undefined;
  });
  return tsLoader;
}

interface TreeInfo {
  readonly packages: Record<string, string>;
  readonly hasTypeScript: boolean;
}
const infos = new Map<string, TreeInfo>();

/** Sender package versions and whether the tree has TypeScript, read once from the tree's manifest. */
function treeInfo(treeDir: string): TreeInfo {
  let info = infos.get(treeDir);
  if (info) return info;
  try {
    const m = JSON.parse(readFileSync(join(dirname(treeDir), 'manifest.json'), 'utf8')) as { packages?: [string, string][]; files?: unknown[][] };
    const ts = (m.files ?? []).some((f) => typeof f[0] === 'string' && f[1] !== 'l' && tsRe.test(f[0]) && !/\.d\.[cm]?ts$/.test(f[0]));
    info = { packages: Object.fromEntries(m.packages ?? []), hasTypeScript: ts };
  } catch {
    info = { packages: {}, hasTypeScript: false };
  }
  infos.set(treeDir, info);
  return info;
}

function packageNameOf(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** Turns "cannot find package" errors from shipped code into ERR_MP_PACKAGE_MISSING / ERR_MP_PACKAGE_VERSION. */
function explain(err: unknown, treeDir: string, nodeModules: string | false | undefined): unknown {
  const e = err as NodeJS.ErrnoException;
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' && e?.code !== 'MODULE_NOT_FOUND') return err;
  const m = /Cannot find (?:package|module) '([^']+)'/.exec(e.message);
  const spec = m?.[1];
  if (!spec || spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('file:') || spec.startsWith('node:')) return err;
  const name = packageNameOf(spec);
  try {
    checkPackage(name, treeInfo(treeDir).packages[name], { nodeModules });
  } catch (typed) {
    if (typed instanceof ShipError) {
      (typed as { cause?: unknown }).cause = err;
      return typed;
    }
  }
  return err;
}

/** URL of a module in a tree (validated relative path). @throws ERR_MP_UNSAFE_PATH */
export function treeModuleUrl(treeDir: string, relPath: string): string {
  const problem = checkRelPath(relPath);
  if (problem) throw new ShipError('ERR_MP_UNSAFE_PATH', `refused module path ${JSON.stringify(relPath)}: ${problem}`, relPath);
  return pathToFileURL(join(treeDir, relPath)).href;
}

/**
 * Imports module `relPath` (POSIX, relative to the project root) from a materialized tree.
 * @throws ERR_MP_UNSAFE_PATH, ERR_MP_TS_LOADER_MISSING, ERR_MP_PACKAGE_MISSING, ERR_MP_PACKAGE_VERSION
 */
export async function importFromTree<T = Record<string, unknown>>(treeDir: string, relPath: string, options: { nodeModules?: string | false } = {}): Promise<T> {
  const url = treeModuleUrl(treeDir, relPath);
  if (tsRe.test(relPath) || treeInfo(treeDir).hasTypeScript) await ensureTypeScriptLoader({ ...options, tsconfig: join(treeDir, 'tsconfig.json') });
  try {
    return (await import(url)) as T;
  } catch (err) {
    throw explain(err, treeDir, options.nodeModules);
  }
}

/**
 * URL of local module `relPath` in the tree of the payload being decoded (`ctx.scratch[treeDirKey]`).
 * The modules layer calls this from `restore`/section decode for `{ kind: 'local', path }` references.
 * @throws ERR_MP_NO_TREE when the payload shipped no tree, ERR_MP_UNSAFE_PATH
 */
export function localModuleUrl(ctx: { readonly scratch: Map<unknown, unknown> }, relPath: string): string {
  const dir = ctx.scratch.get(treeDirKey);
  if (typeof dir !== 'string') {
    throw new ShipError('ERR_MP_NO_TREE', `the payload references local module '${relPath}' but carries no shipped tree (made with { ship: false }?); pickle it with shipping on`, relPath);
  }
  return treeModuleUrl(dir, relPath);
}
