/**
 * V8 natives as an accelerator for the inspector: a function's script id and source position (its location
 * identity) and its script's source text, in about 0.1 µs and without the debugger. `%FunctionGetScriptId` and
 * friends are V8 test intrinsics, so they are compiled once behind `--allow-natives-syntax`, checked against the
 * inspector on a probe, and every caller falls back to the inspector when they are missing or disagree
 * (see ../natives.ts).
 */
import { NativeSet } from '../natives.ts';

/** Where a function's code starts: its script and the character offset in that script's source. */
export interface NativeLocation {
  readonly scriptId: number;
  readonly position: number;
}

interface Intrinsics {
  scriptId(fn: Function): number;
  position(fn: Function): number;
  source(fn: Function): unknown;
}

let verify: ((probe: Function, scriptId: number) => boolean) | undefined;

/** Registers how to check the natives against the inspector (set by the inspector module, which owns a session). */
export function setNativesVerifier(check: (probe: Function, scriptId: number) => boolean): void {
  verify = check;
}

function probe(): number {
  return 1;
}

function agrees(n: Intrinsics): boolean {
  const id = n.scriptId(probe);
  const pos = n.position(probe);
  const src = n.source(probe);
  const text = Function.prototype.toString.call(probe);
  // The position is where the parameters start: inside the text `toString` gives, which the script holds.
  const start = typeof src === 'string' ? src.lastIndexOf(text, pos) : -1;
  const ok = Number.isInteger(id) && id > 0 && Number.isInteger(pos) && start >= 0 && pos < start + text.length;
  // The script id must be the inspector's too (it names scripts in [[FunctionLocation]]).
  return ok && (!verify || verify(probe, id));
}

// Each native takes a JSReceiver; `position` is only called once `scriptId` proved a JSFunction with a script.
const natives = new NativeSet<Intrinsics>({
  scriptId: ['f', 'return %FunctionGetScriptId(f)'],
  position: ['f', 'return %FunctionGetScriptSourcePosition(f)'],
  source: ['f', 'return %FunctionGetScriptSource(f)'],
}, agrees);

/** Runs `use` with the natives (again on a fresh compile if it throws; see ../natives.ts). */
function withNatives<T>(use: (n: Intrinsics) => T): T | undefined {
  const n = natives.get();
  if (!n) return undefined;
  try {
    return use(n);
  } catch {
    return natives.retry(use, undefined);
  }
}

/** Whether the natives are in use (compiled and checked). */
export function nativesAvailable(): boolean {
  return natives.get() !== null;
}

/**
 * Location identity of a function defined in a script: `undefined` for built-ins, bound functions, proxies, or when
 * the natives are unavailable. One script never holds two functions at one position, and script ids are never reused.
 */
export function nativeLocation(fn: Function): NativeLocation | undefined {
  return withNatives((n) => {
    const scriptId = n.scriptId(fn);
    return scriptId > 0 ? { scriptId, position: n.position(fn) } : undefined;
  });
}

/** The source text of the script that defines `fn`, as V8 runs it (after any loader transform). */
export function nativeScriptSource(fn: Function): string | undefined {
  return withNatives((n) => {
    if (!(n.scriptId(fn) > 0)) return undefined;
    const src = n.source(fn);
    return typeof src === 'string' ? src : undefined;
  });
}

/** The script id of `fn` from the natives (`undefined` when unavailable or not a script function). */
export function nativeScriptId(fn: Function): number | undefined {
  return withNatives((n) => {
    const id = n.scriptId(fn);
    return id > 0 ? id : undefined;
  });
}
