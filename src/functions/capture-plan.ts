/**
 * When a new closure object at a known source location can be encoded without reading its scopes again.
 *
 * Reading scopes costs three inspector round trips (~70 µs); a closure made per call (`pool.run(() => f(x))`)
 * would pay it every call. The scope chain's shape (which scopes, which variables V8 keeps in each) is lexical,
 * so it is the same for every closure of one location; only values can differ. A read can be skipped when every
 * value the encoding uses is known not to have changed since the last read:
 * - no scope other than the outermost one (the ES module, or the CommonJS wrapper) holds variables;
 * - the encoding uses no value of a CommonJS wrapper scope (its bindings are per module instance, and V8 may run
 *   one compiled script more than once);
 * - in an ES module (one instance per script), each value it uses (the free names bound there, and the exported
 *   bindings that decide whether the function itself is an export) is a binding no code ever assigns
 *   (module-bindings.ts) whose value was already initialized at the last read, or an import of a function whose
 *   home module is the one the relative specifier names and exports it from such a binding.
 * Otherwise the scopes are read again, so the result is always what a fresh `dumps` gives.
 */
import { realpathSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { esmExports } from '../modules/esm-exports.ts';
import { urlToPath } from '../modules/locate.ts';
import type { SourceInfo } from './free-variables.ts';
import { scriptSource, type FunctionInspection, type FunctionLocation, type ScopeSnapshot } from './inspector.ts';
import { moduleBindings, type ImportBinding } from './module-bindings.ts';

/** A reusable scope chain: the last read, valid for the closures of its location that {@link planFits}. */
export interface CapturePlan {
  readonly inspection: FunctionInspection;
  /** Exported bindings of the module in source order (esmExportRef takes the first that holds the function). */
  readonly exports: readonly string[];
  /** Index in `exports` of the first binding that may change (or is not initialized yet); -1 when none. */
  readonly unstableExport: number;
}

const noExports = { exports: [], unstableExport: -1 } as const;

/**
 * Whether the plan gives `fn` what a fresh read would: the export decision (is `fn` the value of an exported
 * binding, and of which) must be settled by bindings that cannot change.
 */
export function planFits(plan: CapturePlan, fn: Function): boolean {
  if (plan.exports.length === 0) return true;
  const vars = plan.inspection.scopes.find((s) => s.type === 'module')?.vars;
  if (!vars) return true;
  for (let i = 0; i < plan.exports.length; i++) {
    if (i === plan.unstableExport) return false;
    if (vars[plan.exports[i] as string] === fn) return true;
  }
  return plan.unstableExport === -1;
}

function hasVars(vars: Readonly<Record<string, unknown>>): boolean {
  for (const _ in vars) return true;
  return false;
}

interface Shape {
  /** The one scope with variables besides global lexical ones (the module, or the CommonJS wrapper). */
  readonly top: ScopeSnapshot | undefined;
  /** Free names the function takes from `top`. */
  readonly used: readonly string[];
}

/**
 * What the scope chain's shape allows, from the lexical structure alone (the same for every closure of a
 * location): `null` when no closure of it can ever reuse a read.
 */
function shape(insp: FunctionInspection, source: SourceInfo | undefined, location: FunctionLocation | undefined): Shape | null {
  if (insp.bound || !source || !location || source.free.includes('eval')) return null;
  const live = insp.scopes.filter((s) => hasVars(s.vars));
  // Global lexical bindings (`let` in a classic script) are shared and mutable: reusable only while unused.
  const script = live.filter((s) => s.type === 'script');
  const rest = live.filter((s) => s.type !== 'script');
  const top = rest[0];
  if (rest.length > 1) return null;
  const boundIn = (vars: Readonly<Record<string, unknown>>): string[] => source.free.filter((n) => Object.prototype.hasOwnProperty.call(vars, n));
  const used = top ? boundIn(top.vars) : [];
  if (script.some((s) => boundIn(s.vars).some((n) => !used.includes(n)))) return null;
  if (top && (top.type !== 'module' || !location.isModule)) {
    // The CommonJS wrapper (or an outer function of a plain script): reusable only when nothing in it is used.
    if (used.length > 0 || top.type === 'with' || top.type === 'eval') return null;
  }
  return { top, used };
}

/** Whether closures of this location may ever reuse a read (so the last read is worth keeping). */
export function planCandidate(insp: FunctionInspection, source: SourceInfo | undefined, location: FunctionLocation | undefined): boolean {
  return shape(insp, source, location) !== null;
}

/**
 * The read's scopes with only the values a reuse needs: the names stay (scope records list them), the other values
 * are dropped so that a kept plan does not hold the last closure's unrelated data alive.
 */
function kept(insp: FunctionInspection, keep: ReadonlySet<string>, top: ScopeSnapshot | undefined): FunctionInspection {
  const scopes = insp.scopes.map((s) => {
    const vars = Object.create(null) as Record<string, unknown>;
    for (const name of Object.keys(s.vars)) vars[name] = s === top && keep.has(name) ? s.vars[name] : undefined;
    return { type: s.type, description: s.description, vars };
  });
  return { location: insp.location, scopes };
}

const isFile = (p: string): boolean => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};
const tsFor: Record<string, readonly string[]> = { '.js': ['.ts', '.tsx'], '.mjs': ['.mts'], '.cjs': ['.cts'], '.jsx': ['.tsx'] };
const bareExts = ['.ts', '.tsx', '.mts', '.cts', '.js', '.mjs', '.cjs', '.jsx'];

/**
 * The file a relative import specifier names from `base`, when only one file fits: the file itself, else (as
 * TypeScript loaders resolve) its `.ts` twin or, without an extension, the one existing `<spec>.<ext>` or
 * `<spec>/index.<ext>`. Real path; `undefined` when none or several fit.
 */
function relativeTarget(spec: string, base: string): string | undefined {
  let target: string;
  try {
    target = fileURLToPath(new URL(spec, base));
  } catch {
    return undefined;
  }
  if (isFile(target)) return realpathSync(target);
  const ext = extname(target);
  const mapped = tsFor[ext];
  const candidates = mapped ? mapped.map((e) => target.slice(0, -ext.length) + e) : ext === '' ? [...bareExts.map((e) => target + e), ...bareExts.map((e) => join(target, `index${e}`))] : [];
  const found = candidates.filter(isFile);
  return found.length === 1 ? realpathSync(found[0] as string) : undefined;
}

/**
 * Whether an import binding can never change: it holds a function whose home module is the one its relative
 * specifier names, and that module exports it from a binding no code assigns.
 */
function importSettled(binding: ImportBinding, value: unknown, importer: FunctionLocation, locate: (fn: Function) => FunctionLocation | undefined): boolean {
  const spec = binding.specifier;
  if (typeof value !== 'function' || !(spec.startsWith('./') || spec.startsWith('../')) || /[?#]/.test(spec)) return false;
  const home = locate(value);
  if (!home?.isModule || !home.url.startsWith('file:') || /[?#]/.test(home.url)) return false;
  const file = urlToPath(home.url);
  if (!file || relativeTarget(spec, importer.url) !== file) return false;
  let text: string;
  try {
    text = scriptSource(home.scriptId);
  } catch {
    return false;
  }
  const locals = [...(esmExports(text)?.locals ?? [])].filter(([, names]) => names.includes(binding.imported));
  if (locals.length !== 1) return false;
  return moduleBindings(home.scriptId, text)?.stable.has((locals[0] as [string, readonly string[]])[0]) === true;
}

/**
 * The plan a fresh read allows for its location, or `null` when this read cannot be reused. `locate` gives the
 * location of an imported function (to settle import bindings).
 */
export function capturePlan(
  insp: FunctionInspection,
  source: SourceInfo | undefined,
  location: FunctionLocation | undefined,
  locate: (fn: Function) => FunctionLocation | undefined = () => undefined,
): CapturePlan | null {
  const sh = shape(insp, source, location);
  if (!sh || !location) return null;
  const { top, used } = sh;
  if (!top || top.type !== 'module') return { inspection: kept(insp, new Set(), top), ...noExports };
  const vars = top.vars;
  let text: string;
  try {
    text = scriptSource(location.scriptId);
  } catch {
    return null;
  }
  const bindings = moduleBindings(location.scriptId, text);
  if (!bindings) return null;
  const fileModule = location.url.startsWith('file:');
  const exported = fileModule ? esmExports(text)?.locals : undefined;
  if (fileModule && !exported) return null;
  for (const name of used) {
    // `undefined` may be a binding still in its temporal dead zone: read again until it is initialized.
    if (vars[name] === undefined) return null;
    if (bindings.stable.has(name)) continue;
    const imported = bindings.imports.get(name);
    if (!imported || !importSettled(imported, vars[name], location, locate)) return null;
  }
  const exports = exported ? [...exported.keys()].filter((n) => Object.prototype.hasOwnProperty.call(vars, n)) : [];
  const unstableExport = exports.findIndex((n) => !bindings.stable.has(n) || vars[n] === undefined);
  return { inspection: kept(insp, new Set([...used, ...exports]), top), exports, unstableExport };
}
