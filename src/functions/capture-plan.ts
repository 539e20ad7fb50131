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
 *   (module-bindings.ts) whose value was already initialized at the last read.
 * Otherwise the scopes are read again, so the result is always what a fresh `dumps` gives.
 */
import { esmExports } from '../modules/esm-exports.ts';
import type { SourceInfo } from './free-variables.ts';
import { scriptSource, type FunctionInspection, type FunctionLocation } from './inspector.ts';
import { moduleBindings } from './module-bindings.ts';

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

/** The plan a fresh read allows for its location, or `null` when each closure's scopes must be read. */
export function capturePlan(insp: FunctionInspection, source: SourceInfo | undefined, location: FunctionLocation | undefined): CapturePlan | null {
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
  if (!top) return { inspection: insp, ...noExports };
  if (top.type !== 'module' || !location.isModule) {
    // The CommonJS wrapper (or an outer function of a plain script): reusable only when nothing in it is used.
    return used.length === 0 && top.type !== 'with' && top.type !== 'eval' ? { inspection: insp, ...noExports } : null;
  }
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
    if (!bindings.stable.has(name) || vars[name] === undefined) return null;
  }
  const exports = exported ? [...exported.keys()].filter((n) => Object.prototype.hasOwnProperty.call(vars, n)) : [];
  const unstableExport = exports.findIndex((n) => !bindings.stable.has(n) || vars[n] === undefined);
  return { inspection: insp, exports, unstableExport };
}
