/**
 * Sender side: decides how a function travels (by reference or by value) and produces the reducer's arguments.
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { EncodeError } from '../errors.ts';
import type { ReduceContext } from '../codec/registry.ts';
import { findIntrinsic, intrinsicPath } from '../modules/intrinsics.ts';
import { findModuleValue } from '../modules/module-index.ts';
import { locateModule, urlToPath } from '../modules/locate.ts';
import { projectRoot } from '../modules/project-root.ts';
import type { ExportRef, ModuleRef } from '../modules/module-ref.ts';
import { anyInspection, currentInspection, functionInfo, liveScopes } from './function-info.ts';
import type { FunctionInspection, FunctionLocation, ScopeSnapshot } from './inspector.ts';
import { esmExportRef, getterExportRef, isMainFile, ModuleValue, requireFunctionRef, wrapModuleValue } from './module-values.ts';
import { ownKeysToKeep, shapeState, type ShapeState } from './class-parts.ts';
import { arrowAtModuleLevel } from './this-context.ts';

export { ModuleValue, wrapModuleValue, isMainFile };
import { recordModule, recordShippedFile } from './module-records.ts';
import { applyEdits, type SourceEdit } from './source-edits.ts';
import type { BuildSpec, ScopeRecord } from './rebuild.ts';

export type FunctionArgs =
  | { readonly t: 'ref'; readonly ref: ExportRef }
  | { readonly t: 'intrinsic'; readonly path: readonly string[] }
  /** A module's `require` function (CommonJS wrapper or `createRequire`): rebuilt with `createRequire`. */
  | { readonly t: 'require'; readonly module: ModuleRef }
  | { readonly t: 'bound'; readonly target: Function; readonly thisArg: unknown; readonly args: readonly unknown[] }
  | (Omit<BuildSpec, 'home' | 'superClass' | 'thisArg'> & {
      readonly t: 'value';
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
      /** The defining module, when `expression` names its URL (at `urlSpans`) for `import()` and `import.meta`. */
      readonly origin?: ModuleRef;
      readonly urlSpans?: readonly number[];
    });

/** State of a by-value function: captures set after it exists (so they may point back at it). */
export interface FunctionState extends ShapeState {
  readonly captures: Readonly<Record<string, unknown>>;
}

const cjsRequire = createRequire(import.meta.url);
const scopeRecordsKey = Symbol('modulepickle.scopeRecords');
const trackers = new WeakMap<Function, string>();
const objectIds = new WeakMap<object, number>();
let nextObjectId = 1;

function isObjectLike(v: unknown): boolean {
  return (typeof v === 'object' && v !== null) || typeof v === 'function';
}

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
 * that share a scope at home share it after load. V8 gives no identity for a closure context, so closure scopes are
 * merged only on evidence: the same objects in every variable (two closures of one call capturing an object).
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
    else if (names.some((n) => isObjectLike(s.vars[n]))) key = `${parentKey}/${s.description}(${names.map((n) => `${n}=${identity(s.vars[n])}`).join(',')})`;
    // Only primitives: nothing tells two calls' scopes apart, so each function keeps its own (loop closures with
    // equal state must not be merged); the scope is shared only within this function's own chain.
    else key = `${parentKey}/${s.description}#${nextObjectId++}`;
    let rec = records.get(key);
    if (!rec) records.set(key, (rec = { names, parent }));
    parent = rec;
    parentKey = key;
  }
  return parent;
}

/** Whether a found reference may be used: never into the entry script; local ones not with `byValue: true`. */
export function allowReference(ref: ExportRef, ctx: ReduceContext): boolean {
  if (isMainFile(ref)) return false;
  return !(ctx.options['byValue'] === true && (ref.module.kind === 'local' || ref.module.kind === 'file'));
}

/** Whether a function or class will travel by reference (the receiver uses its own copy). */
export function travelsByReference(fn: Function, ctx: ReduceContext): boolean {
  if (intrinsicPath(fn)) return true;
  const root = projectRoot(ctx.options);
  const ref = findModuleValue(fn, root);
  if (ref && allowReference(ref, ctx)) return true;
  const info = functionInfo(fn);
  const esmRef = esmExportRef(fn, info, liveScopes(anyInspection(fn, info)), root) ?? getterExportRef(fn, info, root);
  return esmRef !== undefined && allowReference(esmRef, ctx);
}

/** The module of a function's file URL, recorded so that its tree ships (not loaded on the receiver). */
function urlModule(url: string, esm: boolean, root: string, ctx: ReduceContext): ModuleRef | undefined {
  const file = urlToPath(url);
  if (!file) return undefined;
  const ref = locateModule(file, esm, root);
  if (ref.kind === 'file') return undefined;
  recordShippedFile(ctx, ref);
  return ref;
}

function encodeRef(ref: ExportRef, ctx: ReduceContext): FunctionArgs {
  recordModule(ctx, ref.module, ref.view === 'namespace');
  return { t: 'ref', ref };
}

const states = new WeakMap<Function, FunctionState>();
/** Functions whose last encoding was by value (only those keep their own properties). */
const byValue = new WeakSet<Function>();
/** Bound functions just encoded (all their own properties are kept). */
const boundFns = new WeakSet<Function>();

/** Own property keys of a function that the codec keeps (only for functions that went by value or are bound). */
export function functionOwnKeys(fn: Function): (string | symbol)[] {
  if (boundFns.delete(fn)) return Reflect.ownKeys(fn);
  return ownKeysToKeep(fn, byValue);
}

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
  const byRef = findModuleValue(fn, root);
  if (byRef && allowReference(byRef, ctx)) return encodeRef(byRef, ctx);
  const info = functionInfo(fn);
  // A call template (template.ts) is made from the read its captures came from, so both are of one moment.
  const template = ctx.options['templateOf'] as { fn?: unknown; leaveOut?: ReadonlySet<string>; inspection?: FunctionInspection } | undefined;
  const insp = (template?.fn === fn ? template.inspection : undefined) ?? currentInspection(fn, info);
  if (insp.bound) {
    // `bind` on the receiver recreates `name` and `length`: every own property travels with its attributes, and
    // the key list when one of those two was deleted here.
    const own = Object.prototype.hasOwnProperty;
    if (!own.call(fn, 'name') || !own.call(fn, 'length')) states.set(fn, { captures: {}, keys: Reflect.ownKeys(fn) });
    boundFns.add(fn);
    return { t: 'bound', target: insp.bound.target, thisArg: insp.bound.thisArg, args: insp.bound.args };
  }
  const scopes = liveScopes(insp);
  const required = requireFunctionRef(fn, info, scopes, root);
  // Only the file's place matters (createRequire on the receiver), the module itself is not loaded.
  if (required) {
    recordShippedFile(ctx, required);
    return { t: 'require', module: required };
  }
  const esmRef = esmExportRef(fn, info, scopes, root) ?? getterExportRef(fn, info, root);
  if (esmRef && allowReference(esmRef, ctx)) return encodeRef(esmRef, ctx);
  if (info.native) {
    const costly = findIntrinsic(fn);
    if (costly) return { t: 'intrinsic', path: costly };
    throw new EncodeError('ERR_MP_NATIVE_FUNCTION', `native function '${fnName(fn)}' is neither a built-in nor an export of a loaded module, so it cannot travel; call it inside a function you pickle, or pickle the module that exports it`, ctx.path() as never);
  }
  const source = info.source;
  if (!source || info.location?.url.startsWith('node:')) {
    // Node's own JavaScript built-ins reached through an object no global names (undici's Headers iterator).
    const costly = findIntrinsic(fn);
    if (costly) return { t: 'intrinsic', path: costly };
  }
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
  if (source.kind === 'arrow' && source.free.includes('arguments')) {
    throw new EncodeError('ERR_MP_LEXICAL_ARGUMENTS', `arrow function '${fnName(fn)}' uses the 'arguments' of the function that created it; copy them into a variable (const args = [...arguments]) or use rest parameters`, ctx.path() as never);
  }
  // A direct eval may read any variable in reach: then every variable of every scope is captured.
  const names = source.free.includes('eval') ? [...new Set([...source.free, ...scopes.flatMap((sc) => Object.keys(sc.vars).filter((n) => n !== 'arguments'))])] : source.free;
  // A call template leaves out the captures each call sends on its own.
  const leaveOut = template?.fn === fn ? template.leaveOut : undefined;
  for (const name of names) {
    let found = false;
    for (const s of scopes) {
      if (!Object.prototype.hasOwnProperty.call(s.vars, name)) continue;
      found = true;
      if (leaveOut?.has(name) && !eagerNames.has(name)) break;
      const value = wrapModuleValue(s.vars[name], ctx, root);
      (eagerNames.has(name) ? eager : captures)[name] = value;
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
    // Scopes holding only `this` are invisible (class field arrows look module-level): ask the parser too.
    const top = all.every((s, i) => isTopScope(s, i, all.length, loc)) && (!loc || arrowAtModuleLevel(loc) !== false);
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
  const edits: SourceEdit[] = [];
  const urlText = JSON.stringify(url);
  const expr = source.expression;
  if (source.heritage) {
    edits.push({ start: source.heritage[0], end: source.heritage[1], text: '(arguments[1])' });
    superClass = wrapModuleValue(Object.getPrototypeOf(fn), ctx, root);
  }
  for (const [start, srcStart, srcEnd, end] of source.imports) {
    const head = `globalThis[Symbol.for('modulepickle.import')](${expr.slice(srcStart, srcEnd)}, `;
    edits.push({ start, end, text: `${head}${urlText})`, urlAt: head.length });
  }
  for (const [start, end] of source.importMetas) {
    const head = `globalThis[Symbol.for('modulepickle.importMeta')](`;
    edits.push({ start, end, text: `${head}${urlText})`, urlAt: head.length });
  }
  const ps = source.privateState;
  if (ps) {
    // Hooks for instances with private fields: `new C(token)` skips the constructor body (fields still get
    // initialized), and a static setter can assign the private fields (see instance-private.ts).
    const token = `globalThis[Symbol.for('modulepickle.construct')]`;
    if (ps.ctorBodyStart !== undefined) {
      edits.push({ start: ps.ctorBodyStart, end: ps.ctorBodyStart, text: `if (arguments[0] === ${token}) { ${ps.derived ? 'super(arguments[0]); ' : ''}return; } ` });
    }
    if (ps.fields.length) {
      const cases = ps.fields.map((f) => `case ${JSON.stringify(f)}: o.${f} = v; return;`).join(' ');
      edits.push({ start: ps.bodyEnd, end: ps.bodyEnd, text: ` static [Symbol.for('modulepickle.setPrivate')](o, n, v) { switch (n) { ${cases} } }` });
    }
    if (ps.staticFields.length) {
      const cases = ps.staticFields.map((f) => `case ${JSON.stringify(f)}: this.${f} = v; return;`).join(' ');
      edits.push({ start: ps.bodyEnd, end: ps.bodyEnd, text: ` static [Symbol.for('modulepickle.setStaticPrivate')](n, v) { switch (n) { ${cases} } }` });
    }
  }
  const { text: expression, urlSpans } = edits.length ? applyEdits(expr, edits) : { text: expr, urlSpans: [] };
  // Relative `import()` and `import.meta` resolve on the receiver against its copy of this module (see rebuild.ts).
  const origin = urlSpans.length ? urlModule(url, loc?.isModule === true, root, ctx) : undefined;
  if (source.kind === 'class') {
    tracker = trackers.get(fn);
    if (!tracker) trackers.set(fn, (tracker = randomUUID()));
  }
  const state: FunctionState = { captures, ...shapeState(fn, source, () => ctx.path()) };
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
    ...(origin ? { origin, urlSpans } : {}),
    ...(hasThis ? { thisArg } : {}),
    ...(tracker ? { tracker } : {}),
    ...(source.heritage ? { superClass } : {}),
  };
}
