/**
 * Built-in functions and objects by reference (`Math.max`, `JSON.parse`, `Array.prototype.map`, `structuredClone`,
 * `Buffer.from`): a table built once by walking the standard globals, mapping each value to its property path.
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

const lazyHeavy = new Set(['FormData', 'Headers', 'Request', 'Response', 'WebSocket', 'EventSource', 'navigator', 'Navigator']);

const wellKnownSymbols = new Map<symbol, string>();
for (const k of Object.getOwnPropertyNames(Symbol)) {
  const v = (Symbol as unknown as Record<string, unknown>)[k];
  if (typeof v === 'symbol') wellKnownSymbols.set(v, `@@${k}`);
}

let table: Map<object, readonly string[]> | undefined;

function keyName(key: string | symbol): string | undefined {
  if (typeof key === 'string') return key.startsWith('#') || key.startsWith('@@') ? undefined : key;
  return wellKnownSymbols.get(key);
}

function build(): Map<object, readonly string[]> {
  const out = new Map<object, readonly string[]>();
  out.set(globalThis, []);
  const queue: { value: object; path: string[] }[] = [];
  const add = (value: unknown, path: string[], walk: boolean): void => {
    if ((typeof value !== 'object' && typeof value !== 'function') || value === null || out.has(value)) return;
    out.set(value, path);
    if (walk) queue.push({ value, path });
  };
  for (const name of standardGlobals) {
    const d = Object.getOwnPropertyDescriptor(globalThis, name);
    if (!d) continue;
    // Some lazy globals load a whole module on first read (undici's fetch classes: ~15 ms); leave them alone until
    // the program has used them (a value never read cannot be in the user's data anyway).
    if (!('value' in d) && lazyHeavy.has(name)) continue;
    let v: unknown;
    try {
      v = 'value' in d ? d.value : d.get?.call(globalThis);
    } catch {
      continue;
    }
    add(v, [name], true);
  }
  // Breadth first so the shortest path wins; depth 3 covers `Array.prototype.map`, `fs.promises` style nesting.
  while (queue.length) {
    const { value, path } = queue.shift() as { value: object; path: string[] };
    if (path.length >= 3 || path[0] === 'process' && path.length >= 2) continue;
    if (typeof value === 'function') {
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Function.prototype && proto !== null) add(proto, [...path, '#proto'], true);
    }
    for (const key of Reflect.ownKeys(value)) {
      const name = keyName(key);
      if (name === undefined) continue;
      const d = Object.getOwnPropertyDescriptor(value, key);
      if (!d) continue;
      if ('value' in d) {
        const isFnOrProto = typeof d.value === 'function' || name === 'prototype' || (path.length === 1 && path[0] !== 'process');
        if (isFnOrProto) add(d.value, [...path, name], true);
      } else {
        if (d.get) add(d.get, [...path, `#get:${name}`], false);
        if (d.set) add(d.set, [...path, `#set:${name}`], false);
      }
    }
  }
  return out;
}

/** The property path of a built-in value from `globalThis` (e.g. `['Array', 'prototype', 'map']`), if it is one. */
export function intrinsicPath(value: object): readonly string[] | undefined {
  table ??= build();
  return table.get(value);
}

/** All intrinsic values with their paths (for registering identity reducers). */
export function intrinsicTable(): ReadonlyMap<object, readonly string[]> {
  table ??= build();
  return table;
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
