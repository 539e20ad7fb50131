/**
 * Receiver side of functions by value: rebuilds scopes and functions from source text.
 *
 * A scope record (one per captured scope of the sender, shared by every function of that scope in a payload) becomes
 * a factory closure that declares the scope's variables with `let` and can define functions inside that scope with
 * a direct `eval`, so functions of one scope share one binding per variable, as at home. Nested scopes nest the same
 * way. Captured values are assigned through a setter after the functions exist, so captures may point back to the
 * functions (cycles).
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DecodeError } from '../errors.ts';

// Rebuilt code is eval code: `import()` would resolve against this file and `import.meta` is a syntax error, so
// the sender rewrites them to these helpers, which resolve against the function's original module URL.
const importKey = Symbol.for('modulepickle.import');
const metaKey = Symbol.for('modulepickle.importMeta');
if (!(importKey in globalThis)) {
  Object.defineProperty(globalThis, importKey, {
    value: (spec: unknown, url: string) => {
      const s = String(spec);
      const relative = s.startsWith('./') || s.startsWith('../') || s.startsWith('/');
      return import(relative && url.startsWith('file:') ? new URL(s, url).href : s);
    },
  });
  Object.defineProperty(globalThis, metaKey, {
    value: (url: string) => {
      const meta: Record<string, unknown> = { url, resolve: (s: string) => new URL(s, url).href };
      if (url.startsWith('file:')) {
        meta['filename'] = fileURLToPath(url);
        meta['dirname'] = dirname(meta['filename'] as string);
      }
      return meta;
    },
  });
}

/** One captured scope of the sender: its variable names and its enclosing captured scope. */
export interface ScopeRecord {
  readonly names: readonly string[];
  readonly parent: ScopeRecord | null;
}

/** How a function's source text becomes a value (see `free-variables.ts`). */
export type BuildKind = 'function' | 'arrow' | 'class' | 'method' | 'getter' | 'setter';

/** What the receiver needs to rebuild one function. */
export interface BuildSpec {
  readonly kind: BuildKind;
  /** Evaluable text: `(src)` or `({src})` for methods. */
  readonly expression: string;
  readonly strict: boolean;
  /** Source location at home, for stack traces: URL, 0-based line and column, offset of the source in `expression`. */
  readonly url: string;
  readonly line: number;
  readonly column: number;
  readonly offset: number;
  /** The method uses `super` (object-literal method: needs its home object linked). */
  readonly home?: boolean;
  /** Parent class passed as `arguments[1]` (the heritage expression was replaced). */
  readonly superClass?: unknown;
  /** Lexical `this` for arrows (undefined when none). */
  readonly thisArg?: unknown;
}

interface ScopeHandle {
  /** Defines code in this scope (sloppy). */
  readonly d: (code: string, superClass?: unknown) => unknown;
  /** Defines code in this scope with a strict caller, so `this` of arrows may be undefined. */
  readonly ds: (code: string, superClass?: unknown) => unknown;
  /** Assigns a variable. */
  readonly s: (name: string, value: unknown) => void;
  readonly names: ReadonlySet<string>;
}

// Names a factory cannot declare without breaking its own direct eval, or that are implicit.
const reserved = new Set(['eval', 'arguments', 'this', 'let', 'undefined', 'NaN', 'Infinity']);
const identRe = /^[A-Za-z_$][\w$]*$/u;

const handles = new WeakMap<ScopeRecord, ScopeHandle>();
const indirectEval = eval;

const globalHandle: ScopeHandle = makeHandle([], (code) => indirectEval(code));

function factorySource(names: readonly string[]): string {
  const decl = names.length ? `let ${names.join(', ')};` : '';
  const cases = names.map((n) => `case ${JSON.stringify(n)}: ${n} = arguments[1]; return;`).join(' ');
  // The returned functions must not declare parameters: a parameter would shadow a global the user code reads.
  return `(function () { ${decl} return [` +
    `function () { return eval(arguments[0]); }, ` +
    `function () { 'use strict'; return eval(arguments[0]); }, ` +
    `function () { switch (arguments[0]) { ${cases} } }]; })()`;
}

function makeHandle(names: readonly string[], run: (code: string) => unknown): ScopeHandle {
  const parts = run(factorySource(names)) as [ScopeHandle['d'], ScopeHandle['ds'], ScopeHandle['s']];
  return { d: parts[0], ds: parts[1], s: parts[2], names: new Set(names) };
}

function checkRecord(record: unknown): asserts record is ScopeRecord {
  const r = record as ScopeRecord;
  if (typeof r !== 'object' || r === null || !Array.isArray(r.names) || (r.parent !== null && typeof r.parent !== 'object')) {
    throw new DecodeError('ERR_MP_BAD_FUNCTION', 'malformed scope record in payload');
  }
  for (const n of r.names) {
    if (typeof n !== 'string' || !identRe.test(n)) throw new DecodeError('ERR_MP_BAD_FUNCTION', `malformed variable name in scope record: ${String(n)}`);
  }
}

/** The factory of a scope record (created once per record object, i.e. once per payload and scope). */
export function scopeHandle(record: ScopeRecord | null): ScopeHandle {
  if (record === null) return globalHandle;
  let h = handles.get(record);
  if (h) return h;
  checkRecord(record);
  const parent = scopeHandle(record.parent);
  const names = record.names.filter((n) => !reserved.has(n));
  h = makeHandle(names, parent.d);
  handles.set(record, h);
  return h;
}

/** Assigns captured variables (a record of name to value) in a scope chain. */
export function assignCaptures(record: ScopeRecord | null, captures: Readonly<Record<string, unknown>>): void {
  if (typeof captures !== 'object' || captures === null) throw new DecodeError('ERR_MP_BAD_FUNCTION', 'malformed captures in payload');
  let h: ScopeHandle | undefined;
  for (const name of Object.keys(captures)) {
    // A capture lives in the innermost scope of the chain that declares it.
    let r: ScopeRecord | null = record;
    h = undefined;
    while (r) {
      const rh = scopeHandle(r);
      if (rh.names.has(name)) {
        h = rh;
        break;
      }
      r = r.parent;
    }
    if (!h) throw new DecodeError('ERR_MP_BAD_FUNCTION', `capture '${name}' is not declared by its scope record`);
    h.s(name, captures[name]);
  }
}

/**
 * The function's expression preceded by padding that puts it at its original line and column, so stack traces match
 * the file. Minified bundles (huge columns) and huge files are not padded: the cost would be paid for every rebuilt
 * function.
 */
function padded(spec: BuildSpec): string {
  const col = spec.column - spec.offset;
  const pad = col > 0 && col <= 2_000 ? col : 0;
  const lines = spec.line > 0 && spec.line <= 50_000 ? spec.line : 0;
  return `${'\n'.repeat(lines)}${' '.repeat(pad)}${spec.expression}`;
}

function sourceUrl(spec: BuildSpec): string {
  const url = spec.url.replace(/[\s]/g, encodeURIComponent);
  return url ? `\n//# sourceURL=${url}` : '';
}

function codeFor(spec: BuildSpec): string {
  return `${spec.strict ? '"use strict";' : ''}${padded(spec)}${sourceUrl(spec)}`;
}

/** Makes a new closure of one function in new scopes, with a setter of their variables (false: no scope declares it). */
export type Maker = () => [set: (name: string, value: unknown) => boolean, fn: Function];

/**
 * Compiles once what {@link buildFunction} does with a direct `eval` per scope: a maker whose every call creates the
 * whole scope chain anew (one block per scope record, outermost first, each declaring its variables with `let`) and
 * the arrow function inside it, at its original line and column. For arrows that use no `this`, `super` or parent
 * class (call templates, see decode-function.ts `instantiate`); undefined for anything else.
 * @throws ERR_MP_BAD_FUNCTION for a malformed record or source
 */
export function compileMaker(spec: BuildSpec, record: ScopeRecord | null): Maker | undefined {
  if (spec.kind !== 'arrow' || spec.home || spec.superClass !== undefined || spec.thisArg !== undefined) return undefined;
  const chain: (readonly string[])[] = [];
  for (let r = record; r !== null; r = r.parent) {
    checkRecord(r);
    chain.unshift(r.names.filter((n) => !reserved.has(n)));
  }
  const all = [...new Set(chain.flat())];
  const opens = chain.map((names) => `{ ${names.length ? `let ${names.join(', ')};` : ''} `).join('');
  const cases = all.map((n) => `case ${JSON.stringify(n)}: ${n} = arguments[1]; return true;`).join(' ');
  // No parameters anywhere: a parameter would shadow a variable of the function's own scopes.
  // An array, not an object literal: a property would name the anonymous function after itself.
  const head = `(function () { ${spec.strict ? '"use strict"; ' : ''}${opens}return [function () { switch (arguments[0]) { ${cases} } return false; }, `;
  try {
    return indirectEval(`${head}${padded(spec)}\n]; ${'}'.repeat(chain.length)} })${sourceUrl(spec)}`) as Maker;
  } catch (cause) {
    throw new DecodeError('ERR_MP_BAD_FUNCTION', `cannot rebuild function from ${spec.url || 'source'}:${spec.line + 1}: ${(cause as Error)?.message}`, undefined, { cause });
  }
}

/** Evaluates a function's source inside its scope and returns the function. @throws ERR_MP_BAD_FUNCTION */
export function buildFunction(spec: BuildSpec, record: ScopeRecord | null): Function {
  const h = scopeHandle(record);
  const code = codeFor(spec);
  let value: unknown;
  try {
    const define = spec.strict && spec.thisArg === undefined ? h.ds : h.d;
    value = define.call(spec.thisArg, code, spec.superClass);
  } catch (cause) {
    throw new DecodeError('ERR_MP_BAD_FUNCTION', `cannot rebuild function from ${spec.url || 'source'}:${spec.line + 1}: ${(cause as Error)?.message}`, undefined, { cause });
  }
  if (spec.kind === 'method' || spec.kind === 'getter' || spec.kind === 'setter') {
    const holder = value as object;
    if (spec.home) linkSuper(holder, () => value as Function);
    const key = Reflect.ownKeys(holder)[0];
    const d = key === undefined ? undefined : Object.getOwnPropertyDescriptor(holder, key);
    value = spec.kind === 'getter' ? d?.get : spec.kind === 'setter' ? d?.set : d?.value;
  }
  if (typeof value !== 'function') throw new DecodeError('ERR_MP_BAD_FUNCTION', `source from ${spec.url}:${spec.line + 1} did not evaluate to a function`);
  return value;
}

function ownsFunction(o: object, fn: Function): boolean {
  for (const k of Reflect.ownKeys(o)) {
    const d = Object.getOwnPropertyDescriptor(o, k);
    if (d && (d.value === fn || d.get === fn || d.set === fn)) return true;
  }
  return false;
}

/**
 * Gives a rebuilt object-literal method a working `super`: its home object (a throwaway literal) gets a prototype
 * that forwards to the prototype of the object in the receiver's chain that owns the method (where it was at home).
 */
function linkSuper(holder: object, method: () => Function): void {
  const base = (receiver: unknown): object | null => {
    let o = receiver as object | null;
    const fn = method();
    while (o !== null && (typeof o === 'object' || typeof o === 'function')) {
      if (ownsFunction(o, fn)) return Object.getPrototypeOf(o) as object | null;
      o = Object.getPrototypeOf(o) as object | null;
    }
    return Object.prototype;
  };
  const forward = new Proxy(Object.create(null) as object, {
    get: (_t, key, receiver) => {
      const b = base(receiver);
      return b === null ? undefined : Reflect.get(b, key, receiver);
    },
    set: (_t, key, value, receiver) => {
      const b = base(receiver);
      return b === null ? Reflect.set(receiver as object, key, value) : Reflect.set(b, key, value, receiver);
    },
  });
  Object.setPrototypeOf(holder, forward);
}

const trackerKey = Symbol.for('modulepickle.classTracker.v1');

interface ClassTracker {
  get(id: string): Function | undefined;
  set(id: string, cls: Function): void;
}

/**
 * Process-wide class tracker: a class pickled twice into one process loads as one class (cloudpickle's
 * `_DYNAMIC_CLASS_TRACKER`). Entries are weak, so classes nobody uses any more can be collected.
 */
export function classTracker(): ClassTracker {
  const g = globalThis as unknown as Record<symbol, ClassTracker | undefined>;
  let t = g[trackerKey];
  if (!t) {
    const refs = new Map<string, WeakRef<Function>>();
    const gone = new FinalizationRegistry<string>((id) => {
      if (!refs.get(id)?.deref()) refs.delete(id);
    });
    t = {
      get: (id) => refs.get(id)?.deref(),
      set: (id, cls) => {
        refs.set(id, new WeakRef(cls));
        gone.register(cls, id);
      },
    };
    Object.defineProperty(globalThis, trackerKey, { value: t, enumerable: false });
  }
  return t;
}
