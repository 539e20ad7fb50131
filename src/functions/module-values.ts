/**
 * Module-related decisions of the sender: module objects standing in captures become references, exported functions
 * of ES modules are found through their defining module's scope, `require` functions are recognized, and the entry
 * script is never referenced.
 */
import { existsSync } from 'node:fs';
import { Module as CjsModule } from 'node:module';
import { EncodeError } from '../errors.ts';
import type { ReduceContext } from '../codec/registry.ts';
import { findModuleValue, isModuleNamespace, mainModuleFile, matchNamespace, esmModuleRef, resolveAccessorExports } from '../modules/module-index.ts';
import { readGetterValue } from './getter-value.ts';
import { esmExports } from '../modules/esm-exports.ts';
import { locateModule, urlToPath } from '../modules/locate.ts';
import type { ExportRef, ModuleRef } from '../modules/module-ref.ts';
import { functionInfo, type FunctionInfo } from './function-info.ts';
import { loadedScripts, prefetchSources, refreshScripts, scriptSource, type FunctionLocation, type ScopeSnapshot } from './inspector.ts';
import { recordModule } from './module-records.ts';
import { moduleBindings } from './module-bindings.ts';

/** A module object or exported value standing in a capture: travels as a reference. */
export class ModuleValue {
  constructor(readonly ref: ExportRef) {}
}

/** ES module namespaces identified from the loaded scripts (a module's namespace never changes its module). */
const namespaceRefs = new WeakMap<object, ExportRef>();

/** Replaces module objects (namespaces, `module.exports`, interop objects, package exports) with references. */
export function wrapModuleValue(v: unknown, ctx: ReduceContext, root: string): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (v instanceof CjsModule && typeof (v as { filename?: unknown }).filename === 'string') {
    // The CommonJS wrapper's `module`: the receiver's own module object of that file.
    const ref: ExportRef = { module: locateModule((v as { filename: string }).filename, false, root), view: 'module', path: [] };
    // The entry script is never loaded on the receiver (it would run the program again): a stand-in instead.
    if (isMainFile(ref)) return { id: '.', filename: (v as { filename: string }).filename, exports: (v as { exports: unknown }).exports };
    recordModule(ctx, ref.module, false);
    return new ModuleValue(ref);
  }
  let ref = findModuleValue(v, root);
  if (ref && isMainFile(ref)) return v;
  if (!ref && isModuleNamespace(v)) ref = namespaceRefs.get(v);
  if (!ref && isModuleNamespace(v)) {
    const candidates: { url: string; source: () => string }[] = [];
    const ids: string[] = [];
    refreshScripts();
    for (const [id, s] of loadedScripts()) {
      if (!s.isModule || !s.url.startsWith('file:')) continue;
      ids.push(id);
      candidates.push({ url: s.url, source: () => scriptSource(id) });
    }
    prefetchSources(ids);
    const mod = matchNamespace(v, candidates, root, (fn) => functionInfo(fn).location?.url);
    if (!mod) {
      throw new EncodeError('ERR_MP_UNKNOWN_MODULE', 'an ES module namespace was captured but its module could not be identified; import the names you need instead of `* as ns`', ctx.path() as never);
    }
    ref = { module: mod, view: 'exports', path: [] };
    namespaceRefs.set(v, ref);
  }
  if (!ref) return v;
  recordModule(ctx, ref.module, ref.view === 'namespace');
  return new ModuleValue(ref);
}

/** Whether a reference points into the program's entry script (never loaded on a receiver). */
export function isMainFile(ref: ExportRef): boolean {
  if (ref.module.kind !== 'local' && ref.module.kind !== 'file') return false;
  const main = mainModuleFile();
  return main !== undefined && (ref.module.kind === 'file' ? ref.module.path === main : main.endsWith(ref.module.path));
}

const exportsByScript = new Map<string, ReturnType<typeof esmExports>>();

/** Export names of an ES module, from the source V8 runs (the file on disk may have been edited since it loaded). */
function moduleExports(loc: FunctionLocation): ReturnType<typeof esmExports> {
  if (exportsByScript.has(loc.scriptId)) return exportsByScript.get(loc.scriptId);
  const exp = esmExports(scriptSource(loc.scriptId));
  exportsByScript.set(loc.scriptId, exp);
  return exp;
}

const files = new Set<string>();
/** Whether a module URL names a file on disk (remembered once seen: a module that ran from a file stays one). */
function isFile(url: string): boolean {
  if (files.has(url)) return true;
  const file = urlToPath(url);
  if (!file || !existsSync(file)) return false;
  files.add(url);
  return true;
}

/**
 * An exported function or class of an ES module, held by an exported binding of its defining module that no code
 * assigns: the receiver's copy of the module then holds the same function under that name. A binding code may
 * assign (`export let handler = ...; handler = other`) can hold something else on the receiver, whose module has
 * not run that code, so its value travels by value instead.
 */
export function esmExportRef(fn: Function, info: FunctionInfo, allScopes: readonly ScopeSnapshot[], root: string): ExportRef | undefined {
  const loc = info.location;
  // A class has its own block scope binding its name; it says nothing about where the class lives.
  const scopes = allScopes.filter((s) => !(s.type === 'block' && Object.keys(s.vars).every((k) => s.vars[k] === fn)));
  // The defining module's scope is the outermost one; the function may be nested (e.g. made by a constructor
  // and exported as `export const pack = packr.pack`): what counts is that an exported binding holds it.
  const top = scopes[scopes.length - 1];
  if (!loc?.isModule || !loc.url.startsWith('file:') || top?.type !== 'module') return undefined;
  const vars = top.vars;
  const exp = moduleExports(loc);
  if (!exp) return undefined;
  let name: string | undefined;
  let binding: string | undefined;
  for (const [local, names] of exp.locals) {
    if (vars[local] === fn && names[0] !== undefined) {
      name = names[0];
      binding = local;
      break;
    }
  }
  if (name === undefined || binding === undefined) return undefined;
  const bindings = moduleBindings(loc.scriptId, scriptSource(loc.scriptId));
  if (!bindings?.stable.has(binding)) return undefined;
  // Code that is no file (`node -e`, `--input-type`) exports nothing anyone could import.
  if (!isFile(loc.url)) return undefined;
  const mod = esmModuleRef(loc.url, root);
  return mod ? { module: mod, view: 'exports', path: [name] } : undefined;
}

/** A `require` function made by Node.js for a module (it closes over that module's `Module` object). */
export function requireFunctionRef(fn: Function, info: FunctionInfo, scopes: readonly ScopeSnapshot[], root: string): ModuleRef | undefined {
  if (!info.location?.url.startsWith('node:internal/modules/') || fn.name !== 'require') return undefined;
  for (const s of scopes) {
    const mod = s.vars['mod'] as { filename?: unknown } | undefined;
    if (mod && typeof mod.filename === 'string') return locateModule(mod.filename, false, root);
  }
  return undefined;
}


/**
 * An export of a CommonJS module behind a getter (esbuild, tsc and Babel output) that holds this function: the
 * getters of the function's own file are read without calling them (see `getter-value.ts`), once per file.
 */
export function getterExportRef(fn: Function, info: FunctionInfo, root: string): ExportRef | undefined {
  const loc = info.location;
  if (!loc || loc.isModule || !loc.url.startsWith('file:')) return undefined;
  const file = urlToPath(loc.url);
  if (!file) return undefined;
  let name = '';
  try {
    name = typeof fn.name === 'string' ? fn.name : '';
  } catch {
    // a throwing `name` getter: no preferred export
  }
  resolveAccessorExports(file, root, (get) => readGetterValue(get), fn, name);
  return findModuleValue(fn, root);
}
