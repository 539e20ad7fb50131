/**
 * Sender side: decides how a function travels (by reference or by value) and produces the reducer's arguments.
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { EncodeError } from '../errors.ts';
import type { ReduceContext } from '../codec/registry.ts';
import { intrinsicPath } from '../modules/intrinsics.ts';
import { findModuleValue, isModuleNamespace, mainModuleFile, matchNamespace, esmModuleRef } from '../modules/module-index.ts';
import { esmExports } from '../modules/esm-exports.ts';
import { urlToPath } from '../modules/locate.ts';
import { projectRoot } from '../modules/project-root.ts';
import type { ExportRef, ModuleRef } from '../modules/module-ref.ts';
import { locateModule } from '../modules/locate.ts';
import { currentInspection, functionInfo, liveScopes, type FunctionInfo } from './function-info.ts';
import { loadedScripts, scriptSource, type FunctionLocation, type ScopeSnapshot } from './inspector.ts';
import { recordModule } from './module-records.ts';
import type { BuildKind, ScopeRecord } from './rebuild.ts';

/** A module object or exported value standing in a capture: travels as a reference. */
export class ModuleValue {
  constructor(readonly ref: ExportRef) {}
}

/** Arguments of the function reducer. */
export type FunctionArgs =
  | { readonly t: 'ref'; readonly ref: ExportRef }
  | { readonly t: 'intrinsic'; readonly path: readonly string[] }
  /** A module's `require` function (CommonJS wrapper or `createRequire`): rebuilt with `createRequire`. */
  | { readonly t: 'require'; readonly module: ModuleRef }
  | { readonly t: 'bound'; readonly target: Function; readonly thisArg: unknown; readonly args: readonly unknown[] }
  | {
      readonly t: 'value';
      readonly kind: BuildKind;
      readonly expression: string;
      readonly strict: boolean;
      readonly url: string;
      readonly line: number;
      readonly column: number;
      readonly offset: number;
      readonly home: boolean;
      readonly scope: ScopeRecord | null;
      /** Captures needed while the value is defined (class heritage, computed keys, static members). */
      readonly eager: Readonly<Record<string, unknown>>;
      /** Lexical `this` of an arrow (present only when used). */
      readonly thisArg?: unknown;
      /** Class tracker id. */
      readonly tracker?: string;
      /** The actual parent class (the heritage expression was replaced by `arguments[1]`). */
      readonly superClass?: unknown;
    };

/** State of a by-value function: captures set after it exists (so they may point back at it). */
export interface FunctionState {
  readonly captures: Readonly<Record<string, unknown>>;
  /** Class prototype properties added after the declaration: `[key, descriptor, ...]`. */
  readonly proto?: readonly unknown[];
}

const cjsRequire = createRequire(import.meta.url);
const scopeRecordsKey = Symbol('modulepickle.scopeRecords');
const trackers = new WeakMap<Function, string>();
const objectIds = new WeakMap<object, number>();
let nextObjectId = 1;

function identity(v: unknown): string {
  if ((typeof v === 'object' && v !== null) || typeof v === 'function') {
    let id = objectIds.get(v);
    if (id === undefined) objectIds.set(v, (id = nextObjectId++));
    return `#${id}`;
  }
  if (typeof v === 'string') return `s${v.length}:${v.slice(0, 64)}`;
  return `${typeof v}:${String(v)}`;
}

function isTopScope(scope: ScopeSnapshot, index: number, count: number, loc: FunctionLocation | undefined): boolean {
  if (scope.type === 'module' || scope.type === 'script') return true;
  return index === count - 1 && scope.type === 'closure' && loc !== undefined && !loc.isModule && loc.url !== '';
}

/**
 * Scope records for a chain of live scopes (innermost first), one record per scope per payload, so functions
 * that share a scope at home share it after load. Closure scopes are told apart by their variables' identities
 * (V8 gives no identity for a closure context): two closures of one call share a record.
 */
function scopeChain(scopes: readonly ScopeSnapshot[], loc: FunctionLocation | undefined, ctx: ReduceContext): ScopeRecord | null {
  let records = ctx.scratch.get(scopeRecordsKey) as Map<string, ScopeRecord> | undefined;
  if (!records) ctx.scratch.set(scopeRecordsKey, (records = new Map()));
  let parent: ScopeRecord | null = null;
  let parentKey = '';
  const scriptId = loc?.scriptId ?? 'eval';
  for (let i = scopes.length - 1; i >= 0; i--) {
    const s = scopes[i] as ScopeSnapshot;
    const names = Object.keys(s.vars);
    let key: string;
    if (s.type === 'script') key = 'script';
    else if (isTopScope(s, i, scopes.length, loc)) key = `top:${scriptId}`;
    else key = `${parentKey}/${s.description}(${names.map((n) => `${n}=${identity(s.vars[n])}`).join(',')})`;
    let rec = records.get(key);
    if (!rec) records.set(key, (rec = { names, parent }));
    parent = rec;
    parentKey = key;
  }
  return parent;
}

/** Replaces module objects (namespaces, `module.exports`, interop objects, package exports) with references. */
export function wrapModuleValue(v: unknown, ctx: ReduceContext, root: string): unknown {
  if (typeof v !== 'object' || v === null) return v;
  let ref = findModuleValue(v, root);
  if (!ref && isModuleNamespace(v)) {
    const candidates: { url: string; source: () => string }[] = [];
    for (const [id, s] of loadedScripts()) if (s.isModule && s.url.startsWith('file:')) candidates.push({ url: s.url, source: () => scriptSource(id) });
    const mod = matchNamespace(v, candidates, root);
    if (!mod) {
      throw new EncodeError('ERR_MP_UNKNOWN_MODULE', 'an ES module namespace was captured but its module could not be identified; import the names you need instead of `* as ns`', ctx.path() as never);
    }
    ref = { module: mod, view: 'exports', path: [] };
  }
  if (!ref) return v;
  recordModule(ctx, ref.module, ref.view === 'namespace');
  return new ModuleValue(ref);
}

function isMainFile(ref: ExportRef): boolean {
  if (ref.module.kind !== 'local' && ref.module.kind !== 'file') return false;
  const main = mainModuleFile();
  return main !== undefined && (ref.module.kind === 'file' ? ref.module.path === main : main.endsWith(ref.module.path));
}

/** An exported top-level function or class of an ES module, by reference. */
function esmExportRef(fn: Function, info: FunctionInfo, allScopes: readonly ScopeSnapshot[], root: string): ExportRef | undefined {
  const loc = info.location;
  // A class has its own block scope binding its name; it says nothing about where the class lives.
  const scopes = allScopes.filter((s) => !(s.type === 'block' && Object.keys(s.vars).every((k) => s.vars[k] === fn)));
  // The defining module's scope is the outermost one; the function may be nested (e.g. made by a constructor
  // and exported as `export const pack = packr.pack`): what counts is that an exported binding holds it.
  const top = scopes[scopes.length - 1];
  if (!loc?.isModule || !loc.url.startsWith('file:') || top?.type !== 'module') return undefined;
  const vars = top.vars;
  const exp = esmExports(scriptSource(loc.scriptId));
  if (!exp) return undefined;
  let name: string | undefined;
  for (const [local, names] of exp.locals) {
    if (vars[local] === fn && names[0] !== undefined) {
      name = names[0];
      break;
    }
  }
  if (name === undefined) return undefined;
  const mod = esmModuleRef(loc.url, root);
  return mod ? { module: mod, view: 'exports', path: [name] } : undefined;
}

/** A `require` function made by Node.js for a module (it closes over that module's `Module` object). */
function requireFunctionRef(fn: Function, info: FunctionInfo, scopes: readonly ScopeSnapshot[], root: string): ModuleRef | undefined {
  if (!info.location?.url.startsWith('node:internal/modules/') || fn.name !== 'require') return undefined;
  for (const s of scopes) {
    const mod = s.vars['mod'] as { filename?: unknown } | undefined;
    if (mod && typeof mod.filename === 'string') return locateModule(mod.filename, false, root);
  }
  return undefined;
}

function encodeRef(ref: ExportRef, ctx: ReduceContext): FunctionArgs {
  recordModule(ctx, ref.module, ref.view === 'namespace');
  return { t: 'ref', ref };
}

const states = new WeakMap<Function, FunctionState>();
/** Functions whose last encoding was by value (only those keep their own properties). */
const byValue = new WeakSet<Function>();

/** State computed with the last `encodeFunction` call of this function. */
export function takeState(fn: Function): FunctionState | undefined {
  const s = states.get(fn);
  states.delete(fn);
  return s;
}

function fnName(fn: Function): string {
  try {
    return typeof fn.name === 'string' && fn.name ? fn.name : '(anonymous)';
  } catch {
    return '(anonymous)';
  }
}

/**
 * How a function travels. By reference when it is a built-in, an export of a loaded builtin/package/local module
 * (not the entry script), else by value: source text, scope records and captured values.
 * @throws ERR_MP_NATIVE_FUNCTION, ERR_MP_FUNCTION_SOURCE, ERR_MP_LEXICAL_THIS
 */
export function encodeFunction(fn: Function, ctx: ReduceContext): FunctionArgs {
  const ipath = intrinsicPath(fn);
  if (ipath) return { t: 'intrinsic', path: ipath };
  const root = projectRoot(ctx.options);
  const byRef = ctx.options['byValue'] === true ? undefined : findModuleValue(fn, root);
  if (byRef && !isMainFile(byRef)) return encodeRef(byRef, ctx);
  const info = functionInfo(fn);
  const insp = currentInspection(fn, info);
  if (insp.bound) return { t: 'bound', target: insp.bound.target, thisArg: insp.bound.thisArg, args: insp.bound.args };
  const scopes = liveScopes(insp);
  const required = requireFunctionRef(fn, info, scopes, root);
  // Only the file's place matters (createRequire on the receiver), the module itself is not loaded.
  if (required) return { t: 'require', module: required };
  if (ctx.options['byValue'] !== true) {
    const esmRef = esmExportRef(fn, info, scopes, root);
    if (esmRef && !isMainFile(esmRef)) return encodeRef(esmRef, ctx);
  }
  if (info.native) {
    throw new EncodeError('ERR_MP_NATIVE_FUNCTION', `native function '${fnName(fn)}' is neither a built-in nor an export of a loaded module, so it cannot travel; call it inside a function you pickle, or pickle the module that exports it`, ctx.path() as never);
  }
  const source = info.source;
  if (!source) {
    throw new EncodeError('ERR_MP_FUNCTION_SOURCE', `the source of function '${fnName(fn)}' cannot be parsed back (a private method or an unusual toString()); pickle the object that owns it, or wrap it in a plain function`, ctx.path() as never);
  }
  if (info.location?.url.startsWith('node:')) {
    throw new EncodeError('ERR_MP_INTERNAL_FUNCTION', `function '${fnName(fn)}' is internal to Node.js (${info.location.url}) and not exported by a builtin module, so it cannot travel; pickle the public object or function that uses it`, ctx.path() as never);
  }
  const loc = info.location;
  // Only what the function uses is captured, each from the innermost scope that binds it.
  const eagerNames = new Set(source.eager);
  // Null-prototype records keyed by variable name, so an error path reads `...captures.db.socket`.
  const eager: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  const captures: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const name of source.free) {
    let found = false;
    for (const s of scopes) {
      if (!Object.prototype.hasOwnProperty.call(s.vars, name)) continue;
      const value = wrapModuleValue(s.vars[name], ctx, root);
      (eagerNames.has(name) ? eager : captures)[name] = value;
      found = true;
      break;
    }
    if (!found && eagerNames.has(name) && !(name in globalThis)) {
      throw new EncodeError('ERR_MP_UNCAPTURED_NAME', `'${fnName(fn)}' uses '${name}' while it is defined (a computed key or static initializer), but no closure keeps '${name}' alive so V8 cannot show its value; use '${name}' inside a method too, or export it`, ctx.path() as never);
    }
  }
  let thisArg: unknown;
  let hasThis = false;
  if (source.lexicalThis) {
    // Judge on the full chain: a scope holding only `this` looks empty but still means "not module level".
    const all = insp.scopes;
    const top = all.every((s, i) => isTopScope(s, i, all.length, loc));
    if (!top) {
      throw new EncodeError('ERR_MP_LEXICAL_THIS', `arrow function '${fnName(fn)}' uses the 'this' of the function that created it, which V8 does not expose; use a regular function or copy 'this' into a variable ('const self = this') that the arrow captures`, ctx.path() as never);
    }
    if (loc && !loc.isModule) {
      // A CommonJS module's top-level `this` is its `module.exports`.
      const file = urlToPath(loc.url);
      const exp = file ? cjsRequire.cache[file]?.exports : undefined;
      if (exp !== undefined) {
        thisArg = wrapModuleValue(exp, ctx, root);
        hasThis = true;
      }
    }
  }
  let tracker: string | undefined;
  let superClass: unknown;
  // Source edits: the heritage becomes the actual parent class; `import()` and `import.meta` keep resolving
  // against the original module (eval code has no module of its own).
  const url = loc?.url ?? '';
  const edits: { start: number; end: number; text: string }[] = [];
  const expr = source.expression;
  if (source.heritage) {
    edits.push({ start: source.heritage[0], end: source.heritage[1], text: '(arguments[1])' });
    superClass = wrapModuleValue(Object.getPrototypeOf(fn), ctx, root);
  }
  for (const [start, srcStart, srcEnd, end] of source.imports) {
    edits.push({ start, end, text: `globalThis[Symbol.for('modulepickle.import')](${expr.slice(srcStart, srcEnd)}, ${JSON.stringify(url)})` });
  }
  for (const [start, end] of source.importMetas) {
    edits.push({ start, end, text: `globalThis[Symbol.for('modulepickle.importMeta')](${JSON.stringify(url)})` });
  }
  let expression = expr;
  for (const e of edits.sort((a, b) => b.start - a.start)) expression = expression.slice(0, e.start) + e.text + expression.slice(e.end);
  if (source.kind === 'class') {
    tracker = trackers.get(fn);
    if (!tracker) trackers.set(fn, (tracker = randomUUID()));
  }
  const state: FunctionState = { captures, proto: source.kind === 'class' ? protoExtras(fn, source.expression) : undefined };
  states.set(fn, state);
  byValue.add(fn);
  return {
    t: 'value',
    kind: source.kind,
    expression,
    strict: info.strict,
    url: loc?.url ?? '',
    line: loc?.line ?? 0,
    column: loc?.column ?? 0,
    offset: source.offset,
    home: source.usesSuper && source.kind !== 'class',
    scope: scopeChain(scopes, loc, ctx),
    eager,
    ...(hasThis ? { thisArg } : {}),
    ...(tracker ? { tracker } : {}),
    ...(source.heritage ? { superClass } : {}),
  };
}

/** Whether a property value is defined by the class body itself (its source text is inside the class source). */
function definedInBody(d: PropertyDescriptor, classSource: string): boolean {
  const fns = [d.value, d.get, d.set].filter((f): f is Function => typeof f === 'function');
  if (!fns.length) return false;
  return fns.every((f) => {
    try {
      return classSource.includes(Function.prototype.toString.call(f));
    } catch {
      return false;
    }
  });
}

/** Prototype properties of a class that its body does not define (added after the declaration). */
function protoExtras(cls: Function, classSource: string): unknown[] | undefined {
  const proto = (cls as { prototype?: unknown }).prototype;
  if (typeof proto !== 'object' || proto === null) return undefined;
  const out: unknown[] = [];
  for (const key of Reflect.ownKeys(proto)) {
    if (key === 'constructor') continue;
    const d = Object.getOwnPropertyDescriptor(proto, key) as PropertyDescriptor;
    if (definedInBody(d, classSource)) continue;
    out.push(key, 'value' in d ? { v: d.value, w: d.writable, e: d.enumerable, c: d.configurable } : { g: d.get, s: d.set, e: d.enumerable, c: d.configurable });
  }
  return out.length ? out : undefined;
}

/** Own property keys of a function that the codec keeps (static members and added properties). */
export function functionOwnKeys(fn: Function): (string | symbol)[] {
  if (!byValue.has(fn)) return [];
  byValue.delete(fn);
  const info = functionInfo(fn);
  const kind = info.source?.kind;
  const keys: (string | symbol)[] = [];
  for (const key of Reflect.ownKeys(fn)) {
    if (key === 'length' || key === 'arguments' || key === 'caller') continue;
    if (key === 'prototype') {
      if (kind !== 'function' || info.source?.async || info.source?.generator) continue;
      const proto = (fn as { prototype?: unknown }).prototype as object | undefined;
      const plain = proto && Object.getPrototypeOf(proto) === Object.prototype && Reflect.ownKeys(proto).length === 1 && (proto as { constructor?: unknown }).constructor === fn;
      if (plain) continue;
    }
    if (kind === 'class' && info.source) {
      const d = Object.getOwnPropertyDescriptor(fn, key);
      if (key === 'prototype' || (d && definedInBody(d, info.source.expression))) continue;
    }
    keys.push(key);
  }
  return keys;
}
