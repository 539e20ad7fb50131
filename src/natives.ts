/**
 * V8 test intrinsics (`%Name(...)`), compiled for a moment behind `--allow-natives-syntax`. They are accelerators
 * only: every caller checks what it compiled against a probe and falls back to the public API when they are
 * missing, disagree, or stop compiling. `MODULEPICKLE_NATIVES=0` turns them all off (the tests run both ways).
 *
 * V8 may flush an idle function's bytecode and recompile it later, when the flag is off again: that recompile
 * throws a SyntaxError, so every call site must catch and compile anew (see `compileNatives`' callers).
 */
import { setFlagsFromString } from 'node:v8';

function flagGiven(): boolean {
  const opts = `${process.execArgv.join(' ')} ${process.env['NODE_OPTIONS'] ?? ''}`;
  return /--allow[-_]natives[-_]syntax/.test(opts);
}

/** Whether the user turned the natives off. */
export const nativesDisabled = (): boolean => process.env['MODULEPICKLE_NATIVES'] === '0';

/**
 * Compiles one function per entry, `[parameters, body]`, with natives syntax allowed; `null` when they are turned
 * off or V8 refuses one (an intrinsic renamed or removed).
 */
export function compileNatives<K extends string>(defs: Record<K, readonly [params: string, body: string]>): Record<K, Function> | null {
  if (nativesDisabled()) return null;
  const given = flagGiven();
  try {
    setFlagsFromString('--allow-natives-syntax');
    const out = {} as Record<K, Function>;
    for (const k of Object.keys(defs) as K[]) out[k] = new Function(defs[k][0], defs[k][1]);
    return out;
  } catch {
    return null;
  } finally {
    if (!given) setFlagsFromString('--no-allow-natives-syntax');
  }
}

/**
 * One set of natives: compiled and checked on first use, `null` for the process when either fails. A call that
 * throws (the bytecode was flushed and cannot be recompiled) goes through `retry`, which compiles the set anew and
 * runs the call once more; a second failure turns the set off.
 */
export class NativeSet<T> {
  readonly #defs: Record<string, readonly [params: string, body: string]>;
  readonly #agrees: (n: T) => boolean;
  #current: T | null | undefined;

  /** `agrees` checks the compiled set on probes whose answers are known (a throw counts as disagreeing). */
  constructor(defs: { readonly [K in keyof T]: readonly [params: string, body: string] }, agrees: (n: T) => boolean) {
    this.#defs = defs as Record<string, readonly [string, string]>;
    this.#agrees = agrees;
  }

  /** The checked natives, or null when they are unavailable. */
  get(): T | null {
    if (this.#current !== undefined) return this.#current;
    let got = compileNatives(this.#defs) as T | null;
    try {
      if (got !== null && !this.#agrees(got)) got = null;
    } catch {
      got = null;
    }
    return (this.#current = got);
  }

  /** Runs `use` again on a fresh compile after a call on `get()`'s set threw; `fallback` when that fails too. */
  retry<R>(use: (n: T) => R, fallback: R): R {
    const again = compileNatives(this.#defs) as T | null;
    this.#current = again;
    if (again === null) return fallback;
    try {
      return use(again);
    } catch {
      this.#current = null;
      return fallback;
    }
  }
}
