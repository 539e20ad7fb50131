/**
 * Wires the function and module layer into a registry: the function reducer (matcher), module references,
 * identity reducers for built-in objects, and the `modules` payload section.
 */
import { types } from 'node:util';
import { DecodeError, EncodeError } from '../errors.ts';
import type { Registry, Reducer, ReduceContext, Section } from '../codec/registry.ts';
import { hasPrivateState, privateInstanceReducer } from './instance-private.ts';
import { intrinsicTable, intrinsicValue, refreshIntrinsics } from '../modules/intrinsics.ts';
import { indexedValues, refreshModuleIndex } from '../modules/module-index.ts';
import { loadModules, needKey, type ModuleNeed } from '../modules/load.ts';
import { checkModuleRef, loadedModules, moduleBase, restoreExport, restoreFunction, setFunctionState } from './decode-function.ts';
import { projectRoot } from '../modules/project-root.ts';
import { encodeFunction, functionOwnKeys, isMainFile, ModuleValue, wrapModuleValue, takeState, type FunctionArgs, type FunctionState } from './encode-function.ts';
import { loadedModulesKey, moduleNeedsKey } from './module-records.ts';
import type { ExportRef } from '../modules/module-ref.ts';

/** Reducer for every function, closure and class (by reference or by value). */
export const functionReducer: Reducer<Function, FunctionArgs, FunctionState | undefined> = {
  name: 'mp.function',
  code: true,
  reduce: (fn, ctx) => {
    refreshOnce(ctx);
    return encodeFunction(fn, ctx);
  },
  getState: (fn) => takeState(fn),
  restore: (args, ctx) => restoreFunction(args, ctx),
  setState: (fn, state) => setFunctionState(fn, state),
  ownProps: (fn) => functionOwnKeys(fn),
};

/** Reducer for module objects and exported values standing in captures. */
export const moduleValueReducer: Reducer<ModuleValue, ExportRef> = {
  name: 'mp.module',
  code: true,
  reduce: (mv) => mv.ref,
  restore: (ref, ctx) => restoreExport(ref, ctx) as ModuleValue,
};

/** Reducer for built-in objects (`Math`, `JSON`, `console`, `process`, prototypes) by property path. */
export const intrinsicReducer: Reducer<object, readonly string[]> = {
  name: 'mp.intrinsic',
  // Not data: an untrusted payload must not hand the application `process` or `globalThis` in place of data.
  code: true,
  reduce: (value) => intrinsicTable().get(value) ?? [],
  restore: (path) => {
    if (!Array.isArray(path) || !path.every((p) => typeof p === 'string')) throw new DecodeError('ERR_MP_BAD_INTRINSIC', 'malformed built-in reference in payload');
    const v = intrinsicValue(path);
    if ((typeof v !== 'object' && typeof v !== 'function') || v === null) {
      throw new DecodeError('ERR_MP_BAD_INTRINSIC', `built-in '${path.join('.')}' does not exist in Node.js ${process.version}`);
    }
    return v;
  },
};

/** Reducer for ES module namespaces met as values (not through a capture). */
export const namespaceReducer: Reducer<object, ExportRef> = {
  name: 'mp.namespace',
  code: true,
  reduce: (ns, ctx) => {
    // A CommonJS module imported since the last payload builds its namespace around exports not indexed yet.
    refreshOnce(ctx);
    const wrapped = wrapModuleValue(ns, ctx, projectRoot(ctx.options));
    if (!(wrapped instanceof ModuleValue)) throw new EncodeError('ERR_MP_UNKNOWN_MODULE', 'an ES module namespace could not be identified', ctx.path() as never);
    return wrapped.ref;
  },
  restore: (ref, ctx) => restoreExport(ref, ctx) as object,
};

/** Reducer for module objects and exported objects met as plain values (registered by identity). */
export const moduleObjectReducer: Reducer<object, ExportRef> = {
  name: 'mp.moduleObject',
  code: true,
  reduce: (value, ctx) => {
    const wrapped = wrapModuleValue(value, ctx, projectRoot(ctx.options));
    if (!(wrapped instanceof ModuleValue)) throw new EncodeError('ERR_MP_UNKNOWN_MODULE', 'a module object could not be identified', ctx.path() as never);
    return wrapped.ref;
  },
  restore: (ref, ctx) => restoreExport(ref, ctx) as object,
};

const identityState = new WeakMap<Registry, { size: number; seen: WeakSet<object> }>();

/**
 * Registers module objects (CommonJS `module.exports`, builtin exports, objects exported by packages) by identity,
 * so that they travel as references even when met as plain data. Runs at install and after every encode.
 */
function refreshModuleIdentities(registry: Registry, root: string = projectRoot()): void {
  let st = identityState.get(registry);
  if (!st) identityState.set(registry, (st = { size: -1, seen: new WeakSet() }));
  const values = indexedValues(root);
  if (values.size === st.size) return;
  st.size = values.size;
  const intrinsics = intrinsicTable();
  for (const [v, ref] of values) {
    if (typeof v !== 'object' || st.seen.has(v) || intrinsics.has(v) || isMainFile(ref)) continue;
    st.seen.add(v);
    registry.registerValue(v, moduleObjectReducer);
  }
}

const installed = new Set<Registry>();
const refreshedKey = Symbol('modulepickle.modulesRefreshed');

/** Once per payload: index newly loaded modules and register new module objects by identity. */
function refreshOnce(ctx: ReduceContext): void {
  if (ctx.scratch.has(refreshedKey)) return;
  ctx.scratch.set(refreshedKey, true);
  const root = projectRoot(ctx.options);
  refreshModuleIndex(root);
  for (const r of installed) refreshModuleIdentities(r, root);
}

/** Before each payload: built-in objects of lazy globals the program read since the last one go by reference. */
function refreshBuiltins(): void {
  for (const v of refreshIntrinsics()) {
    if (typeof v !== 'function') for (const r of installed) r.registerValue(v, intrinsicReducer as never);
  }
}

/** The `modules` section: the modules a payload references; decoding loads them before the body. */
export const modulesSection: Section = {
  name: 'modules',
  rank: 20,
  code: true,
  begin: refreshBuiltins,
  encode(ctx) {
    refreshOnce(ctx);
    const needs = ctx.scratch.get(moduleNeedsKey) as Map<string, ModuleNeed> | undefined;
    return needs?.size ? [...needs.values()] : undefined;
  },
  decode(data, ctx) {
    if (!Array.isArray(data)) throw new DecodeError('ERR_MP_BAD_MODULE_REF', 'malformed modules section');
    const needs: ModuleNeed[] = data.map((n: unknown) => {
      const r = n as { module?: unknown; namespace?: unknown };
      if (typeof r !== 'object' || r === null) throw new DecodeError('ERR_MP_BAD_MODULE_REF', 'malformed modules section entry');
      checkModuleRef(r.module);
      return { module: r.module, namespace: r.namespace === true };
    });
    const loaded = loadedModules(ctx) as Map<string, unknown>;
    const result = loadModules(needs.filter((n) => !loaded.has(needKey(n))), moduleBase(ctx));
    const store = (m: Map<string, unknown>): void => {
      for (const [k, v] of m) loaded.set(k, v);
      ctx.scratch.set(loadedModulesKey, loaded);
    };
    if (result instanceof Promise) return result.then(store);
    store(result);
  },
};

/**
 * Installs the function/module layer into a registry: the function matcher, module references, built-in objects
 * by reference and the `modules` section.
 */
export function installFunctionLayer(registry: Registry): void {
  installed.add(registry);
  registry.registerMatcher((v): v is Function => typeof v === 'function', functionReducer as never);
  registry.register(ModuleValue, moduleValueReducer);
  for (const [value] of intrinsicTable()) {
    if (typeof value !== 'function') registry.registerValue(value, intrinsicReducer as never);
  }
  registry.registerMatcher((v) => types.isModuleNamespaceObject(v), namespaceReducer);
  registry.registerMatcher(hasPrivateState, privateInstanceReducer as never);
  registry.registerSection(modulesSection);
  refreshModuleIdentities(registry);
}
