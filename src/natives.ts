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
