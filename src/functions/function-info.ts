/**
 * Per-function facts that do not change while the function lives (source analysis, location, strictness,
 * which free names are closure captures), cached in a WeakMap so repeated dumps of a function are cheap.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { urlToPath } from '../modules/locate.ts';
import { analyzeSource, isNativeSource, type SourceInfo } from './free-variables.ts';
import { inspectFunction, scriptSource, type FunctionInspection, type FunctionLocation, type ScopeSnapshot } from './inspector.ts';

/** Cached facts about one function. */
export interface FunctionInfo {
  readonly source: SourceInfo | undefined;
  /** `fn.toString()` is native code. */
  readonly native: boolean;
  readonly location: FunctionLocation | undefined;
  readonly strict: boolean;
  /** Some free name resolves to a non-global scope (so each dump must read current values). */
  readonly hasCaptures: boolean;
  /** First inspection (reused while the function has no captures). */
  readonly firstInspection: FunctionInspection;
  /** The first inspection's values are still current (not used by a dump yet). */
  fresh: boolean;
}

const infos = new WeakMap<Function, FunctionInfo>();
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

/** Facts about a function, computed on first use. */
export function functionInfo(fn: Function): FunctionInfo {
  let info = infos.get(fn);
  if (info) return info;
  let text: string;
  try {
    text = Function.prototype.toString.call(fn);
  } catch {
    text = 'function () { [native code] }';
  }
  const native = isNativeSource(text);
  const source = native ? undefined : analyzeSource(text);
  const insp = inspectFunction(fn);
  const location = insp.location;
  const strict = source ? isStrict(fn, source, location) : true;
  const hasCaptures = source ? capturesAny(source.free, liveScopes(insp)) || source.lexicalThis : false;
  info = { source, native, location, strict, hasCaptures, firstInspection: insp, fresh: true };
  infos.set(fn, info);
  return info;
}

/** Current scopes of a function (fresh values when it has captures, cached otherwise). */
export function currentInspection(fn: Function, info: FunctionInfo): FunctionInspection {
  if (info.fresh || !info.hasCaptures) {
    info.fresh = false;
    return info.firstInspection;
  }
  return inspectFunction(fn);
}
