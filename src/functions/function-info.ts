/**
 * Per-function facts that do not change while the function lives (source analysis, location, strictness,
 * which free names are closure captures), cached per function object, and per source location for every closure
 * made there: the V8 natives name a function's location (script id + position) without the inspector, so a new
 * closure per call (`pool.run(() => f(x))`) reuses its location's facts and, when capture-plan.ts allows, its
 * last scope read.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { urlToPath } from '../modules/locate.ts';
import { capturePlan, planCandidate, planFits, type CapturePlan } from './capture-plan.ts';
import { analyzeSource, isNativeSource, type SourceInfo } from './free-variables.ts';
import { inspectFunction, scriptSource, type FunctionInspection, type FunctionLocation, type ScopeSnapshot } from './inspector.ts';
import { nativeLocation } from './natives.ts';

/** Cached facts about one function. */
export interface FunctionInfo {
  readonly source: SourceInfo | undefined;
  /** `fn.toString()` is native code. */
  readonly native: boolean;
  readonly location: FunctionLocation | undefined;
  readonly strict: boolean;
  /** Some free name resolves to a non-global scope (so each dump must read current values). */
  readonly hasCaptures: boolean;
  /** First inspection (reused while the function has no captures); absent when the facts came from its site. */
  firstInspection: FunctionInspection | undefined;
  /** The first inspection's values are still current (not used by a dump yet). */
  fresh: boolean;
  /** Facts shared by every closure of this source location (absent without the natives). */
  readonly site: FunctionSite | undefined;
}

/** What every closure of one source location shares. */
export interface FunctionSite {
  /** `<script id>:<position>`. */
  readonly key: string;
  /** `toString()` of the closures (a guard: one location always has one text). */
  readonly text: string;
  readonly source: SourceInfo | undefined;
  readonly native: boolean;
  readonly location: FunctionLocation | undefined;
  readonly strict: boolean;
  readonly hasCaptures: boolean;
  /**
   * The last scope read, when closures of this location may reuse it; `undefined` until a second closure (or a
   * second dump) asks, so a function dumped once never pays for the analysis of its module.
   */
  plan: CapturePlan | null | undefined;
  /** The read the plan is made from, while it is not made yet. */
  lastRead: FunctionInspection | undefined;
  /** The chain's shape lets closures of this location reuse a read at all (else nothing is kept). */
  readonly candidate: boolean;
}

/** Where an imported function lives (its facts are computed if needed). */
function locate(fn: Function): FunctionLocation | undefined {
  try {
    return functionInfo(fn).location;
  } catch {
    return undefined;
  }
}

/** The site's plan, made from its last read on first use. */
function sitePlan(site: FunctionSite): CapturePlan | null {
  if (!site.candidate) return null;
  if (site.plan === undefined) {
    site.plan = site.lastRead ? capturePlan(site.lastRead, site.source, site.location, locate) : null;
    site.lastRead = undefined;
  }
  return site.plan;
}

const infos = new WeakMap<Function, FunctionInfo>();
const sites = new Map<string, FunctionSite>();
const siteLimit = 20_000;
/** Counters for tests and benchmarks: scope reads done and skipped. */
export const inspectionStats = { reads: 0, reused: 0 };
const strictScripts = new Map<string, boolean>();

const directiveRe = /^(?:\s|\/\/[^\n]*\n|\/\*[\s\S]*?\*\/)*(?:#![^\n]*\n(?:\s|\/\/[^\n]*\n|\/\*[\s\S]*?\*\/)*)?(['"])use strict\1/;

function scriptIsStrict(location: FunctionLocation): boolean {
  let v = strictScripts.get(location.scriptId);
  if (v === undefined) {
    const file = urlToPath(location.url);
    if (file && /\.[cm]?tsx?$/.test(file)) {
      // TypeScript files are compiled (tsc, esbuild, tsx) from module syntax, which emits "use strict".
      v = true;
    } else {
      try {
        const head = file ? readHead(file) : scriptSource(location.scriptId).slice(0, 4096);
        v = directiveRe.test(head);
      } catch {
        v = false;
      }
    }
    strictScripts.set(location.scriptId, v);
  }
  return v;
}

function readHead(file: string): string {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(4096);
    return buf.toString('utf8', 0, readSync(fd, buf, 0, 4096, 0));
  } finally {
    closeSync(fd);
  }
}

function isStrict(fn: Function, source: SourceInfo, location: FunctionLocation | undefined): boolean {
  if (source.kind === 'class' || source.strictDirective) return true;
  if (location?.isModule) return true;
  if (source.kind === 'function' && !source.async && !source.generator) {
    // Sloppy plain functions expose `caller`; strict ones throw.
    try {
      void (fn as unknown as { caller: unknown }).caller;
      return false;
    } catch {
      return true;
    }
  }
  return location ? scriptIsStrict(location) : false;
}

/** Non-global scopes that hold variables, innermost first. */
export function liveScopes(insp: FunctionInspection): ScopeSnapshot[] {
  return insp.scopes.filter((s) => {
    for (const _ in s.vars) return true;
    return false;
  });
}

/** Whether any free name of the source is bound in one of the scopes. */
function capturesAny(free: readonly string[], scopes: readonly ScopeSnapshot[]): boolean {
  for (const name of free) for (const s of scopes) if (Object.prototype.hasOwnProperty.call(s.vars, name)) return true;
  return false;
}

/** Facts about a function, computed on first use (or taken from its location's site). */
export function functionInfo(fn: Function): FunctionInfo {
  let info = infos.get(fn);
  if (info) return info;
  let text: string;
  try {
    text = Function.prototype.toString.call(fn);
  } catch {
    text = 'function () { [native code] }';
  }
  const at = nativeLocation(fn);
  const key = at ? `${at.scriptId}:${at.position}` : undefined;
  const site = key !== undefined ? sites.get(key) : undefined;
  if (site && site.text === text) {
    info = { source: site.source, native: site.native, location: site.location, strict: site.strict, hasCaptures: site.hasCaptures, firstInspection: undefined, fresh: false, site };
    infos.set(fn, info);
    return info;
  }
  const native = isNativeSource(text);
  const source = native ? undefined : analyzeSource(text);
  const insp = read(fn);
  const location = insp.location;
  const strict = source ? isStrict(fn, source, location) : true;
  const hasCaptures = source ? capturesAny(source.free, liveScopes(insp)) || source.lexicalThis : false;
  let newSite: FunctionSite | undefined;
  // The natives and the inspector must agree on the script, or the location is not a key.
  if (key !== undefined && location && location.scriptId === String(at?.scriptId)) {
    const candidate = planCandidate(insp, source, location);
    newSite = { key, text, source, native, location, strict, hasCaptures, plan: candidate ? undefined : null, lastRead: candidate ? insp : undefined, candidate };
    if (sites.size >= siteLimit) sites.clear();
    sites.set(key, newSite);
  }
  info = { source, native, location, strict, hasCaptures, firstInspection: insp, fresh: true, site: newSite };
  infos.set(fn, info);
  return info;
}

function read(fn: Function): FunctionInspection {
  inspectionStats.reads++;
  return inspectFunction(fn);
}

/**
 * The scope read a new dump of `fn` would reuse without reading again (capture-plan.ts: every value it uses is held
 * by a binding that never changes), or undefined when a dump would read its scopes.
 */
export function settledInspection(fn: Function, info: FunctionInfo): FunctionInspection | undefined {
  if (!info.hasCaptures) return info.firstInspection;
  const plan = info.site ? sitePlan(info.site) : null;
  return plan && planFits(plan, fn) ? plan.inspection : undefined;
}

/** An inspection for decisions that only need the scope shape and stable values (does not use up `fresh`). */
export function anyInspection(fn: Function, info: FunctionInfo): FunctionInspection {
  if (info.firstInspection) return info.firstInspection;
  const insp = currentInspection(fn, info);
  info.firstInspection = insp;
  info.fresh = true;
  return insp;
}

/** Current scopes of a function: fresh values, or a reused read when that gives the same result. */
export function currentInspection(fn: Function, info: FunctionInfo): FunctionInspection {
  if (info.fresh && info.firstInspection) {
    info.fresh = false;
    return info.firstInspection;
  }
  const site = info.site;
  if (site) {
    const plan = sitePlan(site);
    if (plan && planFits(plan, fn)) {
      inspectionStats.reused++;
      return plan.inspection;
    }
    const insp = read(fn);
    if (site.candidate) {
      // This read may allow what the last did not (a binding initialized since): the plan is made again from it.
      site.plan = undefined;
      site.lastRead = insp;
    }
    return insp;
  }
  if (!info.hasCaptures && info.firstInspection) return info.firstInspection;
  return read(fn);
}

const { getOwnPropertyDescriptor, isExtensible } = Object;

function isPrimitive(v: unknown): boolean {
  return (typeof v !== 'object' && typeof v !== 'function') || v === null;
}

/** Whether a function is extensible and its `name` and `length` are as every function is created with. */
export function defaultNameAndLength(fn: Function): boolean {
  if (!isExtensible(fn)) return false;
  const name = getOwnPropertyDescriptor(fn, 'name');
  const length = getOwnPropertyDescriptor(fn, 'length');
  for (const d of [name, length]) if (!d || !('value' in d) || d.writable || d.enumerable || !d.configurable) return false;
  return typeof name?.value === 'string' && typeof length?.value === 'number';
}

/** Whether a function is extensible and its own properties are `name` and `length` as an arrow is created with. */
export function defaultOwnProps(fn: Function): boolean {
  return Reflect.ownKeys(fn).length === 2 && defaultNameAndLength(fn);
}

/**
 * A key that settles the whole encoding of `fn`, when there is one: an arrow function whose location's last scope
 * read is reusable for it (capture-plan.ts), whose captured values are primitives held by bindings that never
 * change, and whose own properties are the default `name` and `length`. Functions with one key pickle to the same
 * bytes as long as their payload references no module or file (the caller keeps only such payloads).
 */
export function encodingKey(fn: Function): string | undefined {
  const info = functionInfo(fn);
  const site = info.site;
  const source = info.source;
  if (!site || !source || source.kind !== 'arrow' || source.lexicalThis || source.imports.length || source.importMetas.length) return undefined;
  const plan = sitePlan(site);
  if (!plan || !planFits(plan, fn) || !defaultOwnProps(fn)) return undefined;
  for (const s of plan.inspection.scopes) {
    for (const name of source.free) if (Object.prototype.hasOwnProperty.call(s.vars, name) && !isPrimitive(s.vars[name])) return undefined;
  }
  return `${site.key}|${fn.length}|${fn.name}`;
}
