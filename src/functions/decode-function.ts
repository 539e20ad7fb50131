/**
 * Receiver side of the function reducer: turns `FunctionArgs` back into functions.
 */
import { DecodeError } from '../errors.ts';
import type { RestoreContext } from '../codec/registry.ts';
import { intrinsicValue } from '../modules/intrinsics.ts';
import { loadModules, moduleFile, resolveExport, sameBases, type ModuleBases, type ModuleNeed } from '../modules/load.ts';
import { createRequire } from 'node:module';
import type { ExportRef, ModuleRef } from '../modules/module-ref.ts';
import { projectRoot } from '../modules/project-root.ts';
import type { FunctionArgs, FunctionState } from './encode-function.ts';
import { loadedModulesKey, treeDirKey } from './module-records.ts';
import { assignCaptures, buildFunction, classTracker, compileMaker, type BuildSpec, type Maker, type ScopeRecord } from './rebuild.ts';
import { applyShapeState } from './class-parts.ts';
import { retargetUrls } from './source-edits.ts';
import { pathToFileURL } from 'node:url';

const scopes = new WeakMap<Function, ScopeRecord | null>();
const reused = new WeakSet<Function>();
/** How each by-value function was rebuilt here, so that {@link instantiate} can build it again in fresh scopes. */
interface Recipe {
  readonly spec: BuildSpec;
  readonly scope: ScopeRecord | null;
  readonly eager: Readonly<Record<string, unknown>>;
  state?: FunctionState;
  /** Compiled on the first `instantiate` (null: this function is not made by a maker). */
  maker?: Maker | null;
}
const recipes = new WeakMap<Function, Recipe>();
/** Bound functions rebuilt here (their state is only a key list). */
const boundFns = new WeakSet<Function>();

function bad(what: string): never {
  throw new DecodeError('ERR_MP_BAD_FUNCTION', `malformed function in payload: ${what}`);
}

const kinds = new Set(['function', 'arrow', 'class', 'method', 'getter', 'setter']);
const moduleKinds = new Set(['builtin', 'package', 'local', 'file']);

/** Validates a module reference read from a payload. @throws ERR_MP_BAD_MODULE_REF */
export function checkModuleRef(m: unknown): asserts m is ModuleRef {
  const r = m as Record<string, unknown>;
  const ok = typeof r === 'object' && r !== null && moduleKinds.has(r['kind'] as string) &&
    (r['kind'] === 'builtin' ? typeof r['name'] === 'string' :
      r['kind'] === 'package' ? typeof r['name'] === 'string' && typeof r['version'] === 'string' && typeof r['file'] === 'string' :
        typeof r['path'] === 'string');
  if (!ok) throw new DecodeError('ERR_MP_BAD_MODULE_REF', 'malformed module reference in payload');
}

/** Validates an export reference read from a payload. @throws ERR_MP_BAD_MODULE_REF */
export function checkExportRef(e: unknown): asserts e is ExportRef {
  const r = e as Record<string, unknown>;
  if (typeof r !== 'object' || r === null || !Array.isArray(r['path']) || !(r['path'] as unknown[]).every((p) => typeof p === 'string')) {
    throw new DecodeError('ERR_MP_BAD_MODULE_REF', 'malformed export reference in payload');
  }
  checkModuleRef(r['module']);
}

/** Loaded modules of the payload being decoded (loads synchronously when the `modules` section did not run). */
export function loadedModules(ctx: RestoreContext, need?: ModuleNeed): ReadonlyMap<string, unknown> {
  let loaded = ctx.scratch.get(loadedModulesKey) as Map<string, unknown> | undefined;
  if (!loaded) ctx.scratch.set(loadedModulesKey, (loaded = new Map()));
  if (need) {
    const extra = loadModules([need], moduleBase(ctx));
    if (extra instanceof Promise) {
      throw new DecodeError('ERR_MP_ASYNC_REQUIRED', 'an ES module must be imported to decode this value; use loads() instead of loadsSync()');
    }
    for (const [k, v] of extra) loaded.set(k, v);
  }
  return loaded;
}

/**
 * Where references resolve: local files in the shipped tree when present (else the project root), packages in the
 * receiver's own installation (the project root), then next to the tree.
 */
export function moduleBase(ctx: RestoreContext): ModuleBases {
  const tree = ctx.scratch.get(treeDirKey);
  const root = projectRoot(ctx.options);
  return typeof tree === 'string' ? { local: tree, packages: [root] } : sameBases(root);
}

/** Resolves an export reference, loading its module synchronously when the section did not. */
export function restoreExport(ref: unknown, ctx: RestoreContext): unknown {
  checkExportRef(ref);
  if (ref.view === 'module') {
    const file = moduleFile(ref.module, moduleBase(ctx));
    const req = createRequire(file ?? moduleBase(ctx).local);
    if (file) req(file);
    const mod = file ? req.cache[file] : undefined;
    if (!mod) throw new DecodeError('ERR_MP_MODULE_LOAD', `no CommonJS module object for ${file ?? 'a builtin'}`);
    return mod;
  }
  const need: ModuleNeed = { module: ref.module, namespace: ref.view === 'namespace' };
  let loaded = loadedModules(ctx);
  try {
    return resolveExport(ref, loaded);
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_MP_MODULE_NOT_LOADED') throw e;
  }
  loaded = loadedModules(ctx, need);
  return resolveExport(ref, loaded);
}

/**
 * The source of a by-value function with its `import()` and `import.meta` pointed at this side's copy of the
 * module that defined it (the shipped tree, or the receiver's install of a package).
 */
function originExpression(args: Extract<FunctionArgs, { t: 'value' }>, ctx: RestoreContext): string {
  if (args.origin === undefined) return args.expression;
  checkModuleRef(args.origin);
  if (!Array.isArray(args.urlSpans) || typeof args.url !== 'string') bad('module URL offsets');
  const file = moduleFile(args.origin, moduleBase(ctx));
  return file ? retargetUrls(args.expression, args.urlSpans, args.url, pathToFileURL(file).href) : args.expression;
}

/** Rebuilds a function from reducer arguments. @throws ERR_MP_BAD_FUNCTION and module errors */
export function restoreFunction(args: FunctionArgs, ctx: RestoreContext): Function {
  if (typeof args !== 'object' || args === null) bad('arguments');
  switch (args.t) {
    case 'intrinsic': {
      if (!Array.isArray(args.path)) bad('intrinsic path');
      const v = intrinsicValue(args.path);
      if (typeof v !== 'function') throw new DecodeError('ERR_MP_MODULE_EXPORT', `built-in '${args.path.join('.')}' does not exist in Node.js ${process.version}`);
      return v;
    }
    case 'ref': {
      const v = restoreExport(args.ref, ctx);
      if (typeof v !== 'function') throw new DecodeError('ERR_MP_MODULE_EXPORT', `export '${args.ref.path.join('.')}' is not a function on this side`);
      return v;
    }
    case 'require': {
      checkModuleRef(args.module);
      const file = moduleFile(args.module, moduleBase(ctx));
      if (!file) bad('require of a builtin');
      return createRequire(file);
    }
    case 'bound': {
      if (typeof args.target !== 'function' || !Array.isArray(args.args)) bad('bound function');
      const fn = Function.prototype.bind.call(args.target, args.thisArg, ...(args.args as unknown[])) as Function;
      boundFns.add(fn);
      return fn;
    }
    case 'value': {
      if (!kinds.has(args.kind) || typeof args.expression !== 'string' || typeof args.eager !== 'object' || args.eager === null) bad('source');
      if (typeof args.tracker === 'string') {
        const existing = classTracker().get(args.tracker);
        if (existing) {
          reused.add(existing);
          return existing;
        }
      }
      assignCaptures(args.scope, args.eager);
      const spec: BuildSpec = {
        kind: args.kind,
        expression: originExpression(args, ctx),
        strict: args.strict === true,
        url: typeof args.url === 'string' ? args.url : '',
        line: Number(args.line) || 0,
        column: Number(args.column) || 0,
        offset: Number(args.offset) || 0,
        home: args.home === true,
        thisArg: 'thisArg' in args ? args.thisArg : undefined,
        ...('superClass' in args ? { superClass: args.superClass } : {}),
      };
      const fn = buildFunction(spec, args.scope);
      scopes.set(fn, args.scope);
      if (typeof args.tracker === 'string') classTracker().set(args.tracker, fn);
      else recipes.set(fn, { spec, scope: args.scope, eager: args.eager });
      return fn;
    }
    default:
      return bad(`unknown form '${String((args as { t?: unknown }).t)}'`);
  }
}

/** Assigns a by-value function's captures (after every value it may point to exists). */
export function setFunctionState(fn: Function, state: FunctionState | undefined): void {
  if (!state || reused.has(fn)) return;
  if (boundFns.has(fn)) {
    applyShapeState(fn, { keys: state.keys });
    return;
  }
  const scope = scopes.get(fn);
  if (scope === undefined) return;
  assignCaptures(scope, state.captures);
  applyShapeState(fn, state);
  const recipe = recipes.get(fn);
  if (recipe) recipe.state = state;
}

/** A copy of a scope chain: the same names, new record objects (so new scopes on the receiver). */
function freshChain(record: ScopeRecord | null): ScopeRecord | null {
  return record === null ? null : { names: record.names, parent: freshChain(record.parent) };
}

/** Assigns captures through a maker's setter. @throws ERR_MP_BAD_FUNCTION for a name no scope declares */
function setAll(set: ReturnType<Maker>[0], captures: Readonly<Record<string, unknown>>): void {
  for (const name of Object.keys(captures)) {
    if (!set(name, captures[name])) throw new DecodeError('ERR_MP_BAD_FUNCTION', `capture '${name}' is not declared by its scope record`);
  }
}

/**
 * A new closure of a by-value function rebuilt here (a template): the same code in new scopes, holding the
 * template's captured values and then `captures` (the values its payload left out), as if the function had been
 * decoded again with those captures. Calls that overlap each get their own scopes. Arrows are made by a maker
 * compiled once per template (no `eval` per call); other functions are rebuilt in a fresh copy of the scope chain.
 * @throws ERR_MP_BAD_FUNCTION when `template` is not a by-value function rebuilt here, or a capture is not declared
 */
export function instantiate(template: Function, captures: unknown): Function {
  const recipe = recipes.get(template);
  if (!recipe) throw new DecodeError('ERR_MP_BAD_FUNCTION', 'the template of a call is not a function rebuilt from source');
  if (typeof captures !== 'object' || captures === null || Array.isArray(captures)) bad('captures of a call');
  const state = recipe.state;
  if (recipe.maker === undefined) recipe.maker = compileMaker(recipe.spec, recipe.scope) ?? null;
  if (recipe.maker) {
    const [set, fn] = recipe.maker();
    setAll(set, recipe.eager);
    if (state) setAll(set, state.captures);
    setAll(set, captures as Record<string, unknown>);
    if (state) applyShapeState(fn, state);
    return fn;
  }
  const scope = freshChain(recipe.scope);
  assignCaptures(scope, recipe.eager);
  const fn = buildFunction(recipe.spec, scope);
  scopes.set(fn, scope);
  if (state) assignCaptures(scope, state.captures);
  assignCaptures(scope, captures as Record<string, unknown>);
  if (state) applyShapeState(fn, state);
  return fn;
}
