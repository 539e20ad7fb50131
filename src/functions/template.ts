/**
 * Call templates, the sender's half: a closure made per call (`pool.run(() => f(x))`) is split into a template,
 * what every closure of its source location shares as long as the values it takes by reference are the same
 * (source, scope records, the free-variable analysis, module references), and the values it captures by value.
 *
 * The template is the function's ordinary payload with the by-value captures left out (dumps option `templateOf`);
 * the receiver rebuilds the template once and makes each call's closure from it with that call's captures
 * (`instantiate` in decode-function.ts), which is what decoding a fresh payload with those captures gives.
 */
import { intrinsicTable } from '../modules/intrinsics.ts';
import { projectRoot } from '../modules/project-root.ts';
import type { ReduceContext } from '../codec/registry.ts';
import { currentInspection, defaultNameAndLength, defaultOwnProps, functionInfo, liveScopes, settledInspection, type FunctionInfo } from './function-info.ts';
import type { FunctionInspection } from './inspector.ts';
import { allowReference, ModuleValue, travelsByReference, wrapModuleValue } from './encode-function.ts';
import { findModuleValue } from '../modules/module-index.ts';
import { esmExportRef } from './module-values.ts';
import type { ExportRef } from '../modules/module-ref.ts';

/**
 * dumps option `templateOf`: the function whose captures `leaveOut` names are left out of its payload, encoded from
 * `inspection` (the read its captures were taken from).
 */
export interface TemplateOf {
  readonly fn: Function;
  readonly leaveOut: ReadonlySet<string>;
  readonly inspection: FunctionInspection;
}

/** The captures of one closure, read now. */
export interface Captured {
  /** The closure's location and which scope binds each captured name: closures with one key share a template. */
  readonly key: string;
  readonly names: readonly string[];
  readonly values: readonly unknown[];
  /** The read they come from. */
  readonly inspection: FunctionInspection;
}

const hasOwn = Object.prototype.hasOwnProperty;

/** A function's facts, or undefined when they cannot be had (then the full pickle reports what is wrong). */
function infoOf(fn: Function): FunctionInfo | undefined {
  try {
    return functionInfo(fn);
  } catch {
    return undefined;
  }
}

/** The context the function layer's lookups take, outside a payload. */
function lookupContext(options: Readonly<Record<string, unknown>>): ReduceContext {
  return { path: () => [], scratch: new Map(), options };
}

/**
 * The captured values of an arrow function made at a known source location, read from its scopes now; undefined
 * when it cannot use a template (not an arrow, a lexical `this` or `arguments`, a direct `eval`, changed own
 * properties, a `with` scope).
 */
export function readCaptured(fn: Function): Captured | undefined {
  const info = infoOf(fn);
  if (!info) return undefined;
  const { site, source } = info;
  if (!site || !source || source.kind !== 'arrow' || source.lexicalThis || source.free.includes('eval') || source.free.includes('arguments')) return undefined;
  if (source.imports.length > 0 || source.importMetas.length > 0 || !defaultOwnProps(fn)) return undefined;
  const insp = currentInspection(fn, info);
  if (insp.bound) return undefined;
  const scopes = liveScopes(insp);
  let key = `${site.key}#${scopes.length}`;
  const names: string[] = [];
  const values: unknown[] = [];
  for (const s of scopes) if (s.type === 'with' || s.type === 'eval') return undefined;
  for (const name of source.free) {
    for (let i = 0; i < scopes.length; i++) {
      const vars = (scopes[i] as (typeof scopes)[number]).vars;
      if (!hasOwn.call(vars, name)) continue;
      names.push(name);
      values.push(vars[name]);
      key += `|${name}@${i}`;
      break;
    }
  }
  return { key, names, values, inspection: insp };
}

/**
 * Whether a captured object or function travels by reference under these dumps options (a built-in, an export
 * of a builtin, package or local module): then its payload names it, and the same value always encodes the same.
 */
export function capturedByReference(value: object | Function, options: Readonly<Record<string, unknown>>): boolean {
  const ctx = lookupContext(options);
  if (typeof value === 'function') return travelsByReference(value, ctx);
  if (intrinsicTable().has(value)) return true;
  try {
    return wrapModuleValue(value, ctx, projectRoot(options)) instanceof ModuleValue;
  } catch {
    return false;
  }
}

const { getOwnPropertyDescriptor, getPrototypeOf } = Object;

/**
 * Own properties as the function was created: `name` and `length` as made, and a `prototype` nothing was added to
 * (a plain function's holds only its `constructor`; a generator's holds nothing).
 */
function asCreated(fn: Function): boolean {
  const keys = Reflect.ownKeys(fn);
  if (keys.length === 2) return defaultOwnProps(fn);
  if (keys.length !== 3 || !keys.includes('prototype') || !defaultNameAndLength(fn)) return false;
  const d = getOwnPropertyDescriptor(fn, 'prototype');
  const proto = d?.value as object | undefined;
  if (!d || d.enumerable || d.configurable || typeof proto !== 'object' || proto === null) return false;
  const own = Reflect.ownKeys(proto);
  // A generator's prototype holds nothing; a plain function's that lost its `constructor` is not as created.
  if (own.length === 0) return getPrototypeOf(proto) !== Object.prototype;
  return own.length === 1 && own[0] === 'constructor' && getOwnPropertyDescriptor(proto, 'constructor')?.value === fn && getPrototypeOf(proto) === Object.prototype;
}

/**
 * Whether a function that travels by value always pickles to the same bytes while it is the same object: no own
 * property changed since it was created, and every value it captures is settled (capture-plan.ts: a binding that
 * never changes) and is a primitive, something that travels by reference, or such a function itself. Plain
 * functions and arrows only (a class keeps static state; `super` and a lexical `this` depend on the caller).
 */
export function settledByValue(fn: Function, options: Readonly<Record<string, unknown>>, seen: Set<Function> = new Set()): boolean {
  if (seen.has(fn)) return true;
  seen.add(fn);
  const info = infoOf(fn);
  const source = info?.source;
  if (!info || !source || info.native || source.kind === 'class' || source.usesSuper || source.lexicalThis) return false;
  if (source.free.includes('eval') || source.free.includes('arguments') || !asCreated(fn)) return false;
  const insp = settledInspection(fn, info);
  if (!insp || insp.bound) return false;
  if (!info.hasCaptures) return true;
  const scopes = liveScopes(insp);
  for (const name of source.free) {
    const s = scopes.find((sc) => hasOwn.call(sc.vars, name));
    if (!s) continue;
    const v = s.vars[name];
    if ((typeof v !== 'object' && typeof v !== 'function') || v === null) continue;
    if (capturedByReference(v, options)) continue;
    if (typeof v !== 'function' || !settledByValue(v, options, seen)) return false;
  }
  return true;
}

/** ES module exports by function, settled once (the binding that holds it is never assigned). */
const settledExports = new WeakMap<Function, { readonly root: string; readonly ref: ExportRef }>();

/**
 * The export a function travels as, when that cannot change while the function lives: an export of a builtin,
 * package or CommonJS module found in the module index (the same object for as long as the index holds that
 * export), or an ES module export held by a binding no code assigns (module-bindings.ts). A payload kept for the
 * function then stays what a fresh `dumps` writes. Undefined otherwise, an `export let` included (the function is
 * pickled in full).
 */
export function exportOf(fn: Function, options: Readonly<Record<string, unknown>>): ExportRef | undefined {
  const ctx = lookupContext(options);
  const root = projectRoot(options);
  const indexed = findModuleValue(fn, root);
  if (indexed) return allowReference(indexed, ctx) ? indexed : undefined;
  const settled = settledExports.get(fn);
  if (settled?.root === root) return allowReference(settled.ref, ctx) ? settled.ref : undefined;
  const info = infoOf(fn);
  const loc = info?.location;
  if (!info || !loc?.isModule || info.native) return undefined;
  // esmExportRef takes only exports held by a binding no code assigns: once it holds this function, it always will.
  let ref: ExportRef | undefined;
  try {
    ref = esmExportRef(fn, info, liveScopes(currentInspection(fn, info)), root);
  } catch {
    return undefined; // the full pickle reports it
  }
  if (!ref || !allowReference(ref, ctx)) return undefined;
  settledExports.set(fn, { root, ref });
  return ref;
}
