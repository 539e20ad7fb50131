/**
 * Built-in functions and objects by reference (`Math.max`, `Array.prototype.map`, `%TypedArray%.prototype.fill`,
 * `%ArrayIteratorPrototype%.next`, the `Map.prototype.size` getter, `Buffer.from`): a table from value to a path from
 * `globalThis`, built once, lazily, by walking every standard global breadth first (so the shortest path wins):
 * own properties (well-known symbol keys as `@@iterator`, registered ones as `@@for:key`), prototypes of
 * prototypes (`#proto`) and the getters and setters of accessors (`#get:name`, `#set:name`). Only descriptors are
 * read; no getter runs while indexing.
 * Intrinsics that no property path reaches (iterator prototypes, `%GeneratorFunction%`) start at named roots that
 * both sides make the same way.
 */

/** Globals every Node >= 20 process has (ECMAScript + Node + web). User-added globals are not intrinsics. */
const standardGlobals = (
  'Object Function Array Number parseFloat parseInt Infinity NaN undefined Boolean String Symbol Date Promise RegExp ' +
  'Error AggregateError EvalError RangeError ReferenceError SyntaxError TypeError URIError globalThis JSON Math Intl ' +
  'ArrayBuffer Uint8Array Int8Array Uint16Array Int16Array Uint32Array Int32Array Float32Array Float64Array ' +
  'Uint8ClampedArray BigUint64Array BigInt64Array DataView Map BigInt Set WeakMap WeakSet Proxy Reflect ' +
  'FinalizationRegistry WeakRef decodeURI decodeURIComponent encodeURI encodeURIComponent escape unescape eval isFinite ' +
  'isNaN console process global Buffer clearImmediate setImmediate URL URLSearchParams DOMException AbortController ' +
  'AbortSignal Event EventTarget TextEncoder TextDecoder TransformStream TransformStreamDefaultController WritableStream ' +
  'WritableStreamDefaultController WritableStreamDefaultWriter ReadableStream ReadableStreamDefaultReader ' +
  'ReadableStreamBYOBReader ReadableStreamBYOBRequest ReadableByteStreamController ReadableStreamDefaultController ' +
  'ByteLengthQueuingStrategy CountQueuingStrategy TextEncoderStream TextDecoderStream CompressionStream ' +
  'DecompressionStream clearInterval clearTimeout setInterval setTimeout queueMicrotask structuredClone atob btoa ' +
  'BroadcastChannel MessageChannel MessagePort MessageEvent Blob File Performance PerformanceEntry PerformanceMark ' +
  'PerformanceMeasure PerformanceObserver PerformanceObserverEntryList PerformanceResourceTiming performance fetch ' +
  'FormData Headers Request Response SharedArrayBuffer Atomics WebAssembly crypto Crypto CryptoKey SubtleCrypto CustomEvent ' +
  'Iterator navigator Navigator WebSocket'
).split(' ');

/**
 * Globals that stay accessors after first use, with the same value in a builtin module (so no getter runs here),
 * read once that module is loaded (loading `node:crypto` costs ~10 ms: a program that never did has no crypto value
 * to pickle). Other accessor globals are Node's lazy loaders, which turn into data properties on first read: they
 * are indexed then.
 */
const accessorGlobals = new Map<string, [module: string, pick: (m: Record<string, unknown>) => unknown]>([
  ['process', ['process', (m) => m]],
  ['Buffer', ['buffer', (m) => m['Buffer']]],
  ['performance', ['perf_hooks', (m) => m['performance']]],
  ['crypto', ['crypto', (m) => m['webcrypto']]],
]);

/** The value of an accessor global from its builtin module, once that module is loaded. */
function accessorGlobal(name: string): { value: unknown } | undefined {
  const source = accessorGlobals.get(name);
  if (!source) return undefined;
  const [module, pick] = source;
  // `process` is the object the builtin exports, always present; the others only once loaded.
  const loaded = module === 'process' || (process as unknown as { moduleLoadList: string[] }).moduleLoadList.includes(`NativeModule ${module}`);
  return loaded ? { value: pick(process.getBuiltinModule(module) as Record<string, unknown>) } : undefined;
}

/** Slots that user code assigns (source-map-support, tsx): what they hold is not a built-in. */
const userSlots = new Map<string, unknown>([['prepareStackTrace', Error]]);

const hiddenRoots: Readonly<Record<string, () => unknown>> = {
  '%ArrayIteratorPrototype%': () => Object.getPrototypeOf([][Symbol.iterator]()),
  '%MapIteratorPrototype%': () => Object.getPrototypeOf(new Map()[Symbol.iterator]()),
  '%SetIteratorPrototype%': () => Object.getPrototypeOf(new Set()[Symbol.iterator]()),
  '%StringIteratorPrototype%': () => Object.getPrototypeOf(''[Symbol.iterator]()),
  '%RegExpStringIteratorPrototype%': () => Object.getPrototypeOf(/(?:)/g[Symbol.matchAll]('')),
  '%GeneratorFunction%': () => Object.getPrototypeOf(function* () {}).constructor,
  '%AsyncGeneratorFunction%': () => Object.getPrototypeOf(async function* () {}).constructor,
  '%AsyncFunction%': () => Object.getPrototypeOf(async function () {}).constructor,
  // Iterator helpers (Node >= 22): absent here, the maker throws and the root is left out.
  '%IteratorHelperPrototype%': () => Object.getPrototypeOf((Reflect.get([].values(), 'map') as (f: unknown) => object).call([].values(), String)),
  '%WrapForValidIteratorPrototype%': () => Object.getPrototypeOf((Reflect.get(globalThis, 'Iterator') as { from(o: object): object }).from({ next: () => ({ done: true }) })),
  '%URLSearchParamsIteratorPrototype%': () => Object.getPrototypeOf(new URLSearchParams().keys()),
  '%SegmentsPrototype%': () => Object.getPrototypeOf(new Intl.Segmenter().segment('')),
  '%SegmentIteratorPrototype%': () => Object.getPrototypeOf(new Intl.Segmenter().segment('')[Symbol.iterator]()),
  '%HeadersIteratorPrototype%': () => Object.getPrototypeOf(new Headers().entries()),
  '%FormDataIteratorPrototype%': () => Object.getPrototypeOf(new FormData().entries()),
  '%ReadableStreamAsyncIteratorPrototype%': () => Object.getPrototypeOf(new ReadableStream().values()),
};

/**
 * Roots that cost milliseconds to make: ICU and URL internals are indexed only when a function is not found
 * otherwise; those of a lazily loaded internal module (undici, web streams) once that module is loaded (a program
 * that never loaded undici holds none of its values, and must not pay for loading it). Each is made once.
 */
const costlyRoots = new Map<string, string | undefined>([
  ['%URLSearchParamsIteratorPrototype%', undefined],
  ['%SegmentsPrototype%', undefined],
  ['%SegmentIteratorPrototype%', undefined],
  ['%HeadersIteratorPrototype%', 'internal/deps/undici/undici'],
  ['%FormDataIteratorPrototype%', 'internal/deps/undici/undici'],
  ['%ReadableStreamAsyncIteratorPrototype%', 'internal/webstreams/readablestream'],
]);

function internalLoaded(name: string): boolean {
  return (process as unknown as { moduleLoadList: string[] }).moduleLoadList.includes(`NativeModule ${name}`);
}

const wellKnownSymbols = new Map<symbol, string>();
for (const k of Object.getOwnPropertyNames(Symbol)) {
  const v = (Symbol as unknown as Record<string, unknown>)[k];
  if (typeof v === 'symbol') wellKnownSymbols.set(v, `@@${k}`);
}

interface Table {
  readonly paths: Map<object, readonly string[]>;
  /** Lazy globals not read yet (accessors that become data properties when the program first uses them). */
  readonly pending: Set<string>;
  /** Pending lazy globals the program has read since the last refresh (see watchLazyGlobals). */
  readonly touched: Set<string>;
  /** Builtin modules loaded at the last refresh: accessor globals and deferred roots need a look only when it grew. */
  loadCount: number;
  /** Costly roots indexed already. */
  readonly costlyDone: Set<string>;
}

let table: Table | undefined;

function keyName(key: string | symbol): string | undefined {
  if (typeof key !== 'string') {
    // Registered symbols (`Symbol.for('nodejs.util.inspect.custom')`) are the same symbol in every process.
    const registered = Symbol.keyFor(key);
    return wellKnownSymbols.get(key) ?? (registered === undefined ? undefined : `@@for:${registered}`);
  }
  // `#` and `@@` are path syntax; `_x` names are internal state (console._times), not API.
  if (key.startsWith('#') || key.startsWith('@@') || (key.startsWith('_') && !key.startsWith('__'))) return undefined;
  return key;
}

function isObject(v: unknown): v is object {
  return (typeof v === 'object' && v !== null) || typeof v === 'function';
}

/** Adds values reachable from the roots, breadth first; returns the values added. */
function walk(t: Table, roots: readonly (readonly [unknown, readonly string[]])[]): object[] {
  const added: object[] = [];
  const queue: { value: object; path: readonly string[] }[] = [];
  const add = (value: unknown, path: readonly string[], follow: boolean): void => {
    if (!isObject(value) || t.paths.has(value)) return;
    t.paths.set(value, path);
    added.push(value);
    if (follow) queue.push({ value, path });
  };
  for (const [value, path] of roots) add(value, path, true);
  for (let head = 0; head < queue.length; head++) {
    const { value, path } = queue[head] as { value: object; path: readonly string[] };
    // `process` holds this program's state (env, argv, mainModule): only its own members are built-ins.
    const inProcess = path[0] === 'process';
    if (inProcess && path.length > 1 && typeof value !== 'function') continue;
    add(Object.getPrototypeOf(value), [...path, '#proto'], !inProcess);
    for (const key of Reflect.ownKeys(value)) {
      const name = keyName(key);
      if (name === undefined) continue;
      const d = Object.getOwnPropertyDescriptor(value, key);
      if (!d) continue;
      if ('value' in d) {
        const v: unknown = d.value;
        if (!isObject(v) || t.paths.has(v) || (userSlots.has(name) && value === userSlots.get(name))) continue;
        if (inProcess && typeof v !== 'function' && (path.length > 1 || name === 'mainModule')) continue;
        add(v, [...path, name], true);
      } else {
        add(d.get, [...path, `#get:${name}`], false);
        add(d.set, [...path, `#set:${name}`], false);
      }
    }
  }
  return added;
}

function globalRoots(names: Iterable<string>, pending: Set<string>): [unknown, string[]][] {
  const roots: [unknown, string[]][] = [];
  for (const name of names) {
    const d = Object.getOwnPropertyDescriptor(globalThis, name);
    if (!d) continue;
    if ('value' in d) {
      pending.delete(name);
      roots.push([d.value, [name]]);
    } else {
      const got = accessorGlobal(name);
      if (got) {
        pending.delete(name);
        roots.push([got.value, [name]]);
      } else {
        pending.add(name);
      }
    }
  }
  return roots;
}

function current(): Table {
  if (table) return table;
  const t: Table = { paths: new Map([[globalThis, []]]), pending: new Set(), touched: new Set(), loadCount: -1, costlyDone: new Set() };
  walk(t, [...globalRoots(standardGlobals, t.pending), ...makeRoots(undefined)]);
  watchLazyGlobals(t);
  table = t;
  return t;
}

/**
 * Reading a global's descriptor costs about 0.3 µs, and there are some 45 lazy globals: checking them all before
 * every payload cost more than the rest of a small call. Instead each lazy loader is wrapped once so that its first
 * read also notes the name; a refresh then checks only the names read since the last one (and the few accessor
 * globals that stay accessors). The wrapped getter runs Node's own, which replaces the accessor with the value as
 * before; a loader that cannot be wrapped is checked every time.
 */
function watchLazyGlobals(t: Table): void {
  for (const name of t.pending) {
    if (accessorGlobals.has(name)) continue;
    const d = Object.getOwnPropertyDescriptor(globalThis, name);
    if (!d || 'value' in d || !d.configurable || typeof d.get !== 'function') {
      t.touched.add(name);
      continue;
    }
    const { get, set } = d;
    Object.defineProperty(globalThis, name, {
      configurable: true,
      enumerable: d.enumerable ?? false,
      get: Object.defineProperty(
        function (this: unknown) {
          t.touched.add(name);
          return get.call(this);
        },
        'name',
        { value: get.name },
      ),
      set: set
        ? Object.defineProperty(
            function (this: unknown, v: unknown) {
              t.touched.add(name);
              set.call(this, v);
            },
            'name',
            { value: set.name },
          )
        : undefined,
    });
  }
}

/**
 * The cheap hidden roots (`done` undefined), or the costly ones not made yet (only those of a loaded internal
 * module when `deferredOnly`).
 */
function makeRoots(done: Set<string> | undefined, deferredOnly = false): [unknown, readonly string[]][] {
  const roots: [unknown, readonly string[]][] = [];
  for (const [name, make] of Object.entries(hiddenRoots)) {
    if (costlyRoots.has(name) !== (done !== undefined)) continue;
    if (done) {
      const needs = costlyRoots.get(name);
      if (done.has(name) || (needs === undefined ? deferredOnly : !internalLoaded(needs))) continue;
      done.add(name);
    }
    try {
      roots.push([make(), [name]]);
    } catch {
      // Not in this Node.js version.
    }
  }
  return roots;
}

/**
 * `intrinsicPath`, and for a value not found, also the intrinsics that are costly to reach, each made once (for a
 * function about to be refused: a native one, or one of Node's own internals).
 */
export function findIntrinsic(value: object): readonly string[] | undefined {
  const t = current();
  const hit = t.paths.get(value);
  if (hit) return hit;
  refreshIntrinsics();
  const roots = makeRoots(t.costlyDone);
  if (roots.length) walk(t, roots);
  return t.paths.get(value);
}

/**
 * Indexes lazy globals the program has read since the last call (Node defines `TextEncoder`, `ReadableStream`, ...
 * as loaders that become plain properties on first use), and the hidden roots of internal modules loaded since.
 * Returns the values added.
 */
export function refreshIntrinsics(): object[] {
  const t = current();
  const loadCount = (process as unknown as { moduleLoadList: string[] }).moduleLoadList.length;
  const modulesLoaded = loadCount !== t.loadCount;
  t.loadCount = loadCount;
  const names: string[] = [];
  for (const name of t.pending) if (t.touched.has(name) || (modulesLoaded && accessorGlobals.has(name))) names.push(name);
  const roots: [unknown, readonly string[]][] = names.length ? globalRoots(names, t.pending) : [];
  // A name that is still an accessor (a loader that keeps one) stays touched, so it is checked again.
  for (const name of names) if (!t.pending.has(name)) t.touched.delete(name);
  // Deferred roots wait for an internal module: only a grown module list can bring one.
  if (modulesLoaded && t.costlyDone.size < costlyRoots.size) roots.push(...makeRoots(t.costlyDone, true));
  return roots.length ? walk(t, roots) : [];
}

/** The property path of a built-in value from `globalThis` (e.g. `['Array', 'prototype', 'map']`), if it is one. */
export function intrinsicPath(value: object): readonly string[] | undefined {
  return current().paths.get(value);
}

/** All intrinsic values with their paths (for registering identity reducers). */
export function intrinsicTable(): ReadonlyMap<object, readonly string[]> {
  return current().paths;
}

/** The built-in value at a path made by `intrinsicPath` (from `globalThis` or a named root), if it exists here. */
export function intrinsicValue(path: readonly string[]): unknown {
  const first = path[0];
  if (first !== undefined && first.startsWith('%')) {
    const make = Object.hasOwn(hiddenRoots, first) ? hiddenRoots[first] : undefined;
    let root: unknown;
    try {
      root = make?.();
    } catch {
      return undefined;
    }
    return root === undefined ? undefined : walkPath(root, path.slice(1));
  }
  return walkPath(globalThis, path);
}

/** Walks a property path (as made by `intrinsicPath` or a module export path) from a start object. */
export function walkPath(start: unknown, path: readonly string[]): unknown {
  let v: unknown = start;
  for (const seg of path) {
    if (v === null || v === undefined) return undefined;
    if (seg === '#proto') {
      v = Object.getPrototypeOf(v);
      continue;
    }
    const m = /^#(get|set):(.*)$/.exec(seg);
    const prop = (name: string): string | symbol => {
      if (!name.startsWith('@@')) return name;
      if (name.startsWith('@@for:')) return Symbol.for(name.slice(6));
      return (Symbol as unknown as Record<string, symbol>)[name.slice(2)] ?? name;
    };
    if (m) {
      const d = Object.getOwnPropertyDescriptor(v, prop(m[2] as string));
      v = m[1] === 'get' ? d?.get : d?.set;
    } else {
      v = (v as Record<string | symbol, unknown>)[prop(seg)];
    }
  }
  return v;
}
