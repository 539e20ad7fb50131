/**
 * Which loaded module a value comes from: an index from value identity to a module reference, built from the loaded
 * `node:` builtins (`process.moduleLoadList`) and the CommonJS module cache (packages, local files), refreshed when
 * more modules load. ES module namespaces are matched by their export names.
 */
import { builtinModules, createRequire } from 'node:module';
import { realpathSync } from 'node:fs';
import { locateModule, urlToPath } from './locate.ts';
import type { ExportRef, ModuleRef } from './module-ref.ts';
import { esmExports, type EsmExports } from './esm-exports.ts';
import { namespaceBindings, type ModuleGraph } from './esm-namespace.ts';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);

interface IndexState {
  root: string;
  values: Map<object, ExportRef>;
  /** Module object -> its reference (CJS exports and builtin exports). */
  modules: Map<object, ModuleRef>;
  seenFiles: Set<string>;
  /** Files in the require cache still loading at the last refresh (an ES module's CommonJS import is cached
   * while the graph links, before it runs): indexed once loaded. */
  loading: Set<string>;
  seenBuiltins: Set<string>;
  /** Exports behind getters, by the file of the module that exports them (see `accessorExports`). */
  accessors: Map<string, AccessorExport[]>;
  loadListLength: number;
  cacheSize: number;
}

let state: IndexState | undefined;

// Deprecated or noisy builtins that warn when loaded; never scanned.
const skipBuiltins = new Set(['sys', 'punycode', 'domain', 'constants', 'module', 'repl', 'test', 'sea', 'sqlite']);
const builtinSet = new Set(builtinModules);

/** A value exported through a getter: recorded, never read (a getter may warn, throw or do work). */
interface AccessorExport {
  readonly name: string;
  readonly get: Function;
  readonly module: ModuleRef;
}

function isObjectLike(v: unknown): v is object {
  return (typeof v === 'object' && v !== null) || typeof v === 'function';
}

function dataValue(o: object, key: string): unknown {
  try {
    const d = Object.getOwnPropertyDescriptor(o, key);
    return d && 'value' in d ? d.value : undefined;
  } catch {
    return undefined;
  }
}

function indexExports(s: IndexState, exportsObj: unknown, module: ModuleRef, deep: boolean, file?: string): void {
  if (!isObjectLike(exportsObj)) return;
  if (!s.modules.has(exportsObj)) s.modules.set(exportsObj, module);
  if (!s.values.has(exportsObj)) s.values.set(exportsObj, { module, view: 'exports', path: [] });
  let keys: (string | symbol)[];
  try {
    keys = Reflect.ownKeys(exportsObj);
  } catch {
    return;
  }
  for (const key of keys) {
    if (typeof key !== 'string') continue;
    const name = key;
    let d: PropertyDescriptor | undefined;
    try {
      d = Object.getOwnPropertyDescriptor(exportsObj, name);
    } catch {
      continue;
    }
    if (!d) continue;
    if (!('value' in d)) {
      if (typeof d.get !== 'function') continue;
      // `fs.promises` is the `fs/promises` builtin: index that module instead of reading the getter.
      if (module.kind === 'builtin') indexBuiltin(s, `${module.name}/${name}`, false);
      else if (file !== undefined) addAccessor(s, file, { name, get: d.get, module });
      continue;
    }
    indexValue(s, d.value, module, name, deep);
  }
}

/** Indexes one exported value (and the methods of an exported class). */
function indexValue(s: IndexState, v: unknown, module: ModuleRef, name: string, deep: boolean): void {
  if (!isObjectLike(v) || s.values.has(v)) return;
  // Objects exported by packages/builtins (fs.promises, path.posix) go by reference; plain data of local
  // modules goes by value, as cloudpickle does for module globals.
  if (typeof v !== 'function' && module.kind !== 'builtin' && !deep) return;
  s.values.set(v, { module, view: 'exports', path: [name] });
  const proto = typeof v === 'function' ? dataValue(v, 'prototype') : undefined;
  if (isObjectLike(proto)) {
    // Methods of exported classes (EventEmitter.prototype.on), so `emitter.on` travels by reference.
    for (const k2 of Object.getOwnPropertyNames(proto)) {
      const m = dataValue(proto, k2);
      if (typeof m === 'function' && k2 !== 'constructor' && !s.values.has(m)) s.values.set(m, { module, view: 'exports', path: [name, 'prototype', k2] });
    }
  }
  if (module.kind === 'builtin' && typeof v === 'object') {
    for (const k2 of Object.keys(v)) {
      const v2 = dataValue(v, k2);
      if (typeof v2 === 'function' && !s.values.has(v2)) s.values.set(v2, { module, view: 'exports', path: [name, k2] });
    }
  }
}

function addAccessor(s: IndexState, file: string, a: AccessorExport): void {
  let list = s.accessors.get(file);
  if (!list) s.accessors.set(file, (list = []));
  list.push(a);
}

function indexBuiltin(s: IndexState, name: string, needLoaded: boolean, loaded?: ReadonlySet<string>): void {
  if (s.seenBuiltins.has(name) || name.startsWith('_') || skipBuiltins.has(name) || !builtinSet.has(name)) return;
  if (needLoaded && !loaded?.has(name)) return;
  s.seenBuiltins.add(name);
  let exp: unknown;
  try {
    exp = process.getBuiltinModule(name);
  } catch {
    return;
  }
  indexExports(s, exp, { kind: 'builtin', name }, true);
}

function refresh(s: IndexState): void {
  const loadList = (process as unknown as { moduleLoadList: string[] }).moduleLoadList;
  if (loadList.length !== s.loadListLength) {
    s.loadListLength = loadList.length;
    const loaded = new Set(loadList.filter((x) => x.startsWith('NativeModule ')).map((x) => x.slice(13)));
    for (const name of builtinModules) indexBuiltin(s, name, true, loaded);
  }
  const cache = require.cache;
  const files = Object.keys(cache);
  let loadedSince = false;
  for (const file of s.loading) {
    const m = cache[file];
    if (!m || m.loaded) {
      s.loading.delete(file);
      loadedSince ||= m !== undefined;
    }
  }
  if (files.length !== s.cacheSize || loadedSince) {
    s.cacheSize = files.length;
    for (const file of files) {
      if (s.seenFiles.has(file)) continue;
      const m = cache[file];
      if (!m) continue;
      if (!m.loaded) {
        s.loading.add(file);
        continue;
      }
      s.seenFiles.add(file);
      const ref = locateModule(file, false, s.root);
      indexExports(s, m.exports, ref, ref.kind === 'package', file);
    }
  }
}

function current(root: string): IndexState {
  if (!state || state.root !== root) {
    state = { root, values: new Map(), modules: new Map(), seenFiles: new Set(), loading: new Set(), seenBuiltins: new Set(), accessors: new Map(), loadListLength: -1, cacheSize: -1 };
    refresh(state);
  }
  return state;
}

/**
 * Indexes the getter exports of the module loaded from `file` whose value `read` can tell without calling the
 * getter (see `getter-value.ts`), until `target` is indexed: the export named like it first (reading a getter
 * costs an inspector round trip per scope), then the others. Each export is read once.
 */
export function resolveAccessorExports(file: string, root: string, read: (get: Function) => { value: unknown } | undefined, target: object, name: string): void {
  const s = current(root);
  const list = s.accessors.get(file);
  if (!list || s.values.has(target)) return;
  const named = list.findIndex((a) => a.name === name);
  if (named > 0) list.unshift(...list.splice(named, 1));
  while (list.length && !s.values.has(target)) {
    const a = list.shift() as AccessorExport;
    const got = read(a.get);
    if (got) indexValue(s, got.value, a.module, a.name, a.module.kind === 'package');
  }
  if (!list.length) s.accessors.delete(file);
}

/** Indexes modules loaded since the last refresh (cheap when nothing changed). */
export function refreshModuleIndex(root: string): void {
  refresh(current(root));
}

/** Every indexed value with its reference (module objects and exported values), refreshed first. */
export function indexedValues(root: string): ReadonlyMap<object, ExportRef> {
  return current(root).values;
}

/** Whether a value is an ES module namespace object. */
export function isModuleNamespace(value: object): boolean {
  return Object.prototype.toString.call(value) === '[object Module]' && Object.getPrototypeOf(value) === null;
}

/**
 * The module reference of a value exported by a loaded builtin or CommonJS module (or the module object itself,
 * including ESM namespaces of CommonJS modules and esbuild interop objects), if any.
 */
export function findModuleValue(value: object, root: string): ExportRef | undefined {
  const s = current(root);
  const hit = s.values.get(value);
  if (hit) return hit;
  if (isModuleNamespace(value)) {
    const d = Object.getOwnPropertyDescriptor(value, 'default');
    const inner = d && 'value' in d ? d.value : undefined;
    const mod = (typeof inner === 'object' || typeof inner === 'function') && inner !== null ? s.modules.get(inner) : undefined;
    if (mod) return { module: mod, view: 'namespace', path: [] };
    return undefined;
  }
  // esbuild's __toESM(require(x)): own `default` is the exports object, other keys mirror it through getters.
  const d = Object.getOwnPropertyDescriptor(value, 'default');
  if (d && 'value' in d && (typeof d.value === 'object' || typeof d.value === 'function') && d.value !== null) {
    const mod = s.modules.get(d.value as object);
    if (mod && Object.keys(value).every((k) => k === 'default' || k === '__esModule' || Object.getOwnPropertyDescriptor(value, k)?.get)) {
      return { module: mod, view: 'interop', path: [] };
    }
  }
  return undefined;
}

/** Reference of an ES module file given its script URL. */
export function esmModuleRef(url: string, root: string): ModuleRef | undefined {
  const file = urlToPath(url);
  return file ? locateModule(file, true, root) : undefined;
}

const extensions = ['.ts', '.mts', '.tsx', '.js', '.mjs', '.cts', '.cjs', '.jsx', '.json', '/index.ts', '/index.mts', '/index.tsx', '/index.js', '/index.mjs'];

/** The loaded module graph: ES modules from their sources, CommonJS modules from the require cache. */
function loadedGraph(candidates: Iterable<{ url: string; source: () => string }>): ModuleGraph & { urls: string[] } {
  const sources = new Map<string, () => string>();
  for (const c of candidates) sources.set(c.url, c.source);
  const parsed = new Map<string, EsmExports | undefined>();
  const cjsFile = (url: string): string | undefined => {
    const file = url.startsWith('file:') ? urlToPath(url) : undefined;
    return file !== undefined && require.cache[file] ? file : undefined;
  };
  const known = (url: string): boolean => sources.has(url) || cjsFile(url) !== undefined;
  return {
    urls: [...sources.keys()],
    esm(url) {
      if (!parsed.has(url)) parsed.set(url, sources.has(url) ? esmExports((sources.get(url) as () => string)()) : undefined);
      return parsed.get(url);
    },
    cjs(url) {
      const file = cjsFile(url);
      const exp = file === undefined ? undefined : (require.cache[file]?.exports as unknown);
      return isObjectLike(exp) ? Object.keys(exp) : undefined;
    },
    resolve(spec, from) {
      let base: string | undefined;
      if (spec.startsWith('./') || spec.startsWith('../') || spec.startsWith('/') || spec.startsWith('file:')) {
        try {
          base = new URL(spec, from).href;
        } catch {
          return undefined;
        }
      } else {
        // A package or a subpath import: CommonJS resolution finds the file (ESM-only exports maps are not tried).
        try {
          const fromFile = urlToPath(from);
          base = fromFile ? pathToFileURL(createRequire(fromFile).resolve(spec)).href : undefined;
        } catch {
          return undefined;
        }
      }
      if (base === undefined) return undefined;
      if (known(base)) return base;
      // Loaders resolve what plain Node does not: no extension, a folder's index, `.js` naming a `.ts` file.
      for (const ext of extensions) if (known(base + ext)) return base + ext;
      const swapped = base.replace(/\.(m|c)?jsx?$/, (m) => m.replace('js', 'ts'));
      return swapped !== base && known(swapped) ? swapped : undefined;
    },
  };
}

function sameBindings(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** The URL of the module a binding (`url#local`) lives in, or `undefined` for namespace and unknown bindings. */
function bindingUrl(binding: string): string | undefined {
  const at = binding.lastIndexOf('#');
  return at > 0 && binding.startsWith('file:') ? binding.slice(0, at) : undefined;
}

/** How many of the namespace's functions were defined in the module their binding names (evidence for a tie). */
function evidence(ns: object, bindings: ReadonlyMap<string, string>, definedIn: (fn: Function) => string | undefined): number {
  let score = 0;
  for (const [name, binding] of bindings) {
    let v: unknown;
    try {
      v = (ns as Record<string, unknown>)[name];
    } catch {
      continue; // A binding not initialized yet.
    }
    if (typeof v === 'function' && definedIn(v) === bindingUrl(binding)) score++;
  }
  return score;
}

/**
 * Matches an ES module namespace against loaded ES module scripts: the module whose namespace, built from source
 * as the spec does (re-exports and `export *` chains included), has exactly the namespace's export names. Modules
 * whose namespaces are the same bindings under the same names are interchangeable (one of them wins); other ties
 * (`export default` alone) are settled by where the namespace's functions were defined (`definedIn`), else no match.
 */
export function matchNamespace(ns: object, candidates: Iterable<{ url: string; source: () => string }>, root: string, definedIn?: (fn: Function) => string | undefined): ModuleRef | undefined {
  const keys = new Set(Object.keys(ns));
  const graph = loadedGraph(candidates);
  const found: { ref: ModuleRef; bindings: ReadonlyMap<string, string> }[] = [];
  for (const url of graph.urls) {
    const exp = graph.esm(url);
    if (!exp) continue;
    // Cheap rejections first: a module's own export names are all in its namespace.
    let own = 0;
    let fits = true;
    for (const n of exp.names) {
      if (n === '*') continue;
      own++;
      if (!keys.has(n)) fits = false;
    }
    if (!fits || (exp.stars.length === 0 && own !== keys.size)) continue;
    const shape = namespaceBindings(graph, url);
    if (!shape) continue;
    let same = true;
    for (const k of keys) if (!shape.bindings.has(k)) same = false;
    for (const k of shape.bindings.keys()) if (!keys.has(k) && !shape.optional.has(k)) same = false;
    if (!same) continue;
    const bindings = shape.optional.size ? new Map([...shape.bindings].filter(([k]) => keys.has(k))) : shape.bindings;
    const ref = esmModuleRef(url, root);
    if (ref) found.push({ ref, bindings });
  }
  const first = found[0];
  if (!first || found.every((f) => sameBindings(first.bindings, f.bindings))) return first?.ref;
  if (!definedIn) return undefined;
  const scores = found.map((f) => evidence(ns, f.bindings, definedIn));
  const best = Math.max(...scores);
  const winners = found.filter((_, i) => scores[i] === best);
  const winner = winners[0];
  return best > 0 && winner && winners.every((w) => sameBindings(winner.bindings, w.bindings)) ? winner.ref : undefined;
}

let mainFile: string | null | undefined;
/** Realpath of the program's entry script (its functions always go by value, as Python's `__main__`). */
export function mainModuleFile(): string | undefined {
  if (mainFile === undefined) {
    const f = require.main?.filename ?? process.argv[1];
    try {
      mainFile = f ? realpathSync(f) : null;
    } catch {
      mainFile = null;
    }
  }
  return mainFile ?? undefined;
}
