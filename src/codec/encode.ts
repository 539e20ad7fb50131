/**
 * Value graph -> bytes. One pass, a memo for shared references and cycles, the registry for everything typed.
 * The walk is iterative (an explicit stack of frames, not the JS call stack), so depth is bounded by `maxDepth`
 * and memory only; reducers return parts that this driver encodes, so they never recurse either.
 */
import { types } from 'node:util';
import { EncodeError, ModulePickleError, type PathSegment } from '../errors.ts';
import { BufferTable, viewParts, viewProtos } from './buffers.ts';
import { NAMED_KEYS_THRESHOLD, namedKeys } from './named-keys.ts';
import { reduceSymbol, type Reducer, type ReduceContext, type ReducerOverride, type Reduction, type Registry } from './registry.ts';
import { hiddenStateClass, refusal } from './refuse.ts';
import { wellKnownSymbolNames } from './symbols.ts';
import * as T from './tags.ts';
import { ByteWriter } from './writer.ts';

/** Options of `dumps`. Layers read their own options from the same record. */
export interface DumpOptions {
  registry?: Registry;
  /** Per-call hook consulted before the registry for every object and function. */
  reducerOverride?: ReducerOverride;
  /** Maximum nesting depth in containers (default 500,000; a Map or Set level takes two: itself and its entry list). */
  maxDepth?: number;
  [option: string]: unknown;
}

/** Wraps bytes that a reducer wants written raw (no per-byte work); they decode as an owning Uint8Array. */
export class RawBytes {
  constructor(readonly bytes: Uint8Array) {}
}

/**
 * A list a built-in reducer builds itself (Map and Set state): plain and dense by construction, so it is
 * written as a dense array without the per-element attribute checks a user's array needs. Loads as an array.
 */
export class DenseList {
  readonly #brand = true;
  constructor(readonly items: unknown[]) {}
  /** A brand check that runs no user code (`instanceof` would call a Proxy's getPrototypeOf trap). */
  static is(v: object): v is DenseList {
    return #brand in v;
  }
}

type AnyReducer = Reducer<object, unknown, unknown>;
const ObjectProto = Object.prototype;
const ArrayProto = Array.prototype;
const { getOwnPropertyDescriptor, getPrototypeOf, isExtensible } = Object;
const { getOwnPropertyNames, getOwnPropertySymbols } = Object;
/**
 * Same keys in the same order as `Reflect.ownKeys` (strings, then symbols), about 3x faster on plain
 * objects in V8 (Node 20): `Reflect.ownKeys` skips the enum cache that `getOwnPropertyNames` uses.
 */
function ownKeys(v: object): (string | symbol)[] {
  const names: (string | symbol)[] = getOwnPropertyNames(v);
  const symbols = getOwnPropertySymbols(v);
  if (symbols.length === 0) return names;
  for (const s of symbols) names.push(s);
  return names;
}
/** Default nesting limit of both sides: far deeper than any real data, small enough to bound memory. */
export const DEFAULT_MAX_DEPTH = 500_000;

const isDefault = (d: PropertyDescriptor): boolean => d.writable === true && d.enumerable === true && d.configurable === true;
const isAccessor = (d: PropertyDescriptor): boolean => d.get !== undefined || d.set !== undefined || !('value' in d);
const attrByte = (d: PropertyDescriptor, accessor: boolean): number =>
  (d.writable ? T.A_WRITABLE : 0) | (d.enumerable ? T.A_ENUMERABLE : 0) | (d.configurable ? T.A_CONFIGURABLE : 0) | (accessor ? T.A_ACCESSOR : 0);

// Frame kinds. A frame is one container whose children are being written.
const F_VALUES = 0; // vals[i] with path segment i (dense arrays, DenseList)
const F_ENTRIES = 1; // key(keys[i]) then vals[i] (simple objects)
const F_PROPS = 2; // object flags, [prototype], then keys[i] with descriptors vals[i] (the shared tail)
const F_INDICES = 3; // a sparse or attributed array's present indices, then its tail
const F_REDUCE = 4; // a registered reducer's args, state, then (maybe) the tail
const F_RESTORE = 5; // a restore function, its args, then state
const F_SHAPE = 6; // vals[i] with path segment keys[i] (an object whose keys its shape gives)

/** Shapes kept per first key: beyond this, objects of new key lists under that first key write their keys inline. */
const SHAPES_PER_KEY = 8;

const CTOR_SEG: PathSegment = { label: '.constructor' };
/** Path labels of a reducer's parts, made once per reducer. */
const reducerLabels = new WeakMap<object, { args: PathSegment; state: PathSegment }>();
function labelsOf(r: AnyReducer): { args: PathSegment; state: PathSegment } {
  let l = reducerLabels.get(r);
  if (l === undefined) reducerLabels.set(r, (l = { args: { label: `<${r.name} args>` }, state: { label: `<${r.name} state>` } }));
  return l;
}
const EMPTY: never[] = [];

/** One container on the explicit stack. Frames are pooled per encoder (one per depth level). */
class Frame {
  kind = 0;
  obj: object = ObjectProto;
  keys: (string | symbol)[] = EMPTY;
  vals: unknown[] = EMPTY;
  i = 0;
  n = 0;
  phase = 0;
  /** Tail: object flags; F_PROPS with attributes: whether an accessor's setter is still to write. */
  flags = 0;
  attrs = false;
  pendingSet = false;
  proto: unknown = undefined;
  reducer: AnyReducer | undefined = undefined;
  aux: unknown = undefined;
  /** F_INDICES: the tail's keys and descriptors, used once the indices are written. */
  tailKeys: (string | symbol)[] = EMPTY;
  tailDescs: PropertyDescriptor[] = EMPTY;
}

export class Encoder implements ReduceContext {
  readonly w = new ByteWriter();
  readonly options: DumpOptions;
  readonly registry: Registry;
  #scratch: Map<unknown, unknown> | undefined;
  #buffers: BufferTable | undefined;
  hasCode = false;
  readonly #memo = new Map<unknown, number>();
  #nextId = 0;
  readonly #strings = new Map<string, number>();
  /** Key lists of simple objects seen so far, by first key; a shape's id is its index in definition order. */
  readonly #shapes = new Map<string | symbol, { keys: (string | symbol)[]; id: number }[]>();
  #shapeCount = 0;
  /** Whether something put a `[reduceSymbol]` on Object.prototype (then every plain object must be asked). */
  readonly #inheritedReduce = typeof (ObjectProto as Record<symbol, unknown>)[reduceSymbol] === 'function';
  readonly #pendingArgs = new Set<object>();
  readonly #override: ReducerOverride | undefined;
  readonly #hasIdentities: boolean;
  readonly #maxDepth: number;
  readonly #frames: Frame[] = [];
  #top = 0;
  /** One segment per object being written (frames, plus the object being dispatched); [0] is the root's. */
  readonly #path: PathSegment[] = [];

  constructor(registry: Registry, options: DumpOptions) {
    this.registry = registry;
    this.options = options;
    this.#override = options.reducerOverride;
    this.#hasIdentities = registry.hasIdentities;
    this.#maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  }

  path(): PathSegment[] {
    return this.#path.slice(1);
  }

  get scratch(): Map<unknown, unknown> {
    return (this.#scratch ??= new Map());
  }

  /** Every buffer and view the value reaches; written before the value (see buffers.ts). */
  get buffers(): BufferTable {
    return (this.#buffers ??= new BufferTable());
  }

  /** Whether the value reached any binary data (then the stream starts with the buffer table). */
  get hasBuffers(): boolean {
    return this.#buffers !== undefined && !this.#buffers.empty;
  }

  /** Encodes one complete value. */
  value(v: unknown): void {
    if (this.#child(v, '')) this.#run();
  }

  /** The value stream of a sub-encoder (section data): the buffer table, if any, then the value. */
  stream(): Uint8Array {
    const value = this.w.result();
    if (!this.hasBuffers) return value;
    const out = Buffer.allocUnsafe(this.buffers.byteSize() + value.length);
    out.set(value, this.buffers.write(out, 0));
    return out;
  }

  /** Writes a primitive, or begins an object: returns true when a frame was pushed for its children. */
  #child(v: unknown, seg: PathSegment): boolean {
    switch (typeof v) {
      case 'string':
        this.w.string(v, T.T_FIXSTR, T.FIXSTR_MAX, T.T_STR8, T.T_STR16);
        return false;
      case 'number':
        this.#number(v);
        return false;
      case 'boolean':
        this.w.u8(v ? T.T_TRUE : T.T_FALSE);
        return false;
      case 'undefined':
        this.w.u8(T.T_UNDEFINED);
        return false;
      case 'bigint':
        this.#bigint(v);
        return false;
      case 'symbol':
        this.#symbol(v);
        return false;
      case 'object':
        if (v === null) {
          this.w.u8(T.T_NULL);
          return false;
        }
        return this.#object(v, seg);
      default:
        return this.#object(v as object, seg);
    }
  }

  /** Runs the frames until the stack is empty. */
  #run(): void {
    const frames = this.#frames;
    while (this.#top > 0) {
      const f = frames[this.#top - 1]!;
      if (this.#step(f)) {
        this.#top--;
        this.#path.pop();
      }
    }
  }

  /** Pushes a frame for `obj` (whose path segment is already on the path). @throws ERR_MP_TOO_DEEP */
  #push(kind: number, obj: object): Frame {
    if (this.#top >= this.#maxDepth) {
      throw new EncodeError('ERR_MP_TOO_DEEP', `value nests deeper than maxDepth (${this.#maxDepth}); raise the maxDepth option or flatten the data`);
    }
    let f = this.#frames[this.#top];
    if (f === undefined) this.#frames.push((f = new Frame()));
    this.#top++;
    f.kind = kind;
    f.obj = obj;
    f.i = 0;
    f.phase = 0;
    return f;
  }

  /** Writes the frame's next children; true when the frame is done, false when it pushed a child frame. */
  #step(f: Frame): boolean {
    switch (f.kind) {
      case F_VALUES: {
        const vals = f.vals;
        const n = f.n;
        let i = f.i;
        while (i < n) {
          const v = vals[i];
          f.i = ++i;
          if (this.#child(v, i - 1)) return false;
        }
        return true;
      }
      case F_ENTRIES: {
        const keys = f.keys;
        const vals = f.vals;
        const n = f.n;
        let i = f.i;
        while (i < n) {
          const k = keys[i]!;
          this.key(k);
          const v = vals[i];
          f.i = ++i;
          if (this.#child(v, k)) return false;
        }
        return true;
      }
      case F_SHAPE: {
        const keys = f.keys;
        const vals = f.vals;
        const n = f.n;
        let i = f.i;
        while (i < n) {
          const v = vals[i];
          f.i = ++i;
          if (this.#child(v, keys[i - 1]!)) return false;
        }
        return true;
      }
      case F_PROPS:
        return this.#stepProps(f);
      case F_INDICES:
        return this.#stepIndices(f);
      case F_REDUCE:
        return this.#stepReduce(f);
      default:
        return this.#stepRestore(f);
    }
  }

  #stepProps(f: Frame): boolean {
    const w = this.w;
    if (f.phase === 0) {
      f.phase = 1;
      w.u8(f.flags);
      if (f.flags & T.O_PROTO && this.#child(f.proto, CTOR_SEG)) return false;
    }
    if (f.phase === 1) {
      f.phase = 2;
      w.varint(f.n);
    }
    const keys = f.keys;
    const descs = f.vals as PropertyDescriptor[];
    while (f.pendingSet || f.i < f.n) {
      if (f.pendingSet) {
        f.pendingSet = false;
        const k = keys[f.i - 1]!;
        if (this.#child(descs[f.i - 1]!.set, { label: `[set ${String(k)}]` })) return false;
        continue;
      }
      const k = keys[f.i]!;
      const d = descs[f.i]!;
      f.i++;
      this.key(k);
      if (f.attrs) {
        const accessor = isAccessor(d);
        w.u8(attrByte(d, accessor));
        if (accessor) {
          f.pendingSet = true;
          if (this.#child(d.get, { label: `[get ${String(k)}]` })) return false;
          continue;
        }
      }
      if (this.#child(d.value, k)) return false;
    }
    return true;
  }

  #stepIndices(f: Frame): boolean {
    const w = this.w;
    const keys = f.keys;
    const descs = f.vals as PropertyDescriptor[];
    while (f.pendingSet || f.i < f.n) {
      if (f.pendingSet) {
        f.pendingSet = false;
        if (this.#child(descs[f.i - 1]!.set, { label: `[set ${Number(keys[f.i - 1])}]` })) return false;
        continue;
      }
      const idx = Number(keys[f.i]);
      const d = descs[f.i]!;
      f.i++;
      w.varint(idx);
      if (f.attrs) {
        const accessor = !('value' in d);
        w.u8(attrByte(d, accessor));
        if (accessor) {
          f.pendingSet = true;
          if (this.#child(d.get, { label: `[get ${idx}]` })) return false;
          continue;
        }
      }
      if (this.#child(d.value, idx)) return false;
    }
    // The indices are written: the same frame goes on with the array's tail.
    this.#tailFrame(f, f.obj, f.proto as object | null, f.tailKeys, f.tailDescs, f.flags);
    return false;
  }

  #stepReduce(f: Frame): boolean {
    const r = f.reducer!;
    const v = f.obj;
    if (f.phase === 0) {
      f.phase = 1;
      const args = f.aux;
      // Only an object can refer back to the value being reduced.
      if ((typeof args === 'object' && args !== null) || typeof args === 'function') {
        this.#pendingArgs.add(v);
        if (this.#child(args, labelsOf(r).args)) return false;
      } else this.#child(args, '');
    }
    if (f.phase === 1) {
      f.phase = 2;
      this.#pendingArgs.delete(v);
      if (typeof r.getState === 'function') {
        let state: unknown;
        try {
          state = r.getState(v, this);
        } catch (e) {
          this.#reducerFailed(e, `reducer '${r.name}' getState`);
        }
        if (this.#child(state, labelsOf(r).state)) return false;
      }
    }
    const proto = f.proto as object | null;
    if ((r.ownProps !== undefined && r.ownProps !== false) || proto !== null) {
      const keys = typeof r.ownProps === 'function' ? r.ownProps(v) : ownKeys(v);
      if (keys.length === 0 && proto === null && isExtensible(v) && getPrototypeOf(v) !== null) {
        // The common case: no own properties, nothing to frame.
        this.w.u8(0);
        this.w.u8(0);
        return true;
      }
      this.#tailFrame(f, v, proto, keys, keys.map((k) => getOwnPropertyDescriptor(v, k)!), 0);
      return false;
    }
    return true;
  }

  #stepRestore(f: Frame): boolean {
    const v = f.obj;
    if (f.phase === 0) {
      f.phase = 1;
      if (this.#child(f.proto, { label: '<restore>' })) return false;
    }
    if (f.phase === 1) {
      f.phase = 2;
      this.#pendingArgs.add(v);
      if (this.#child(f.aux, { label: '<args>' })) return false;
    }
    if (f.phase === 2) {
      f.phase = 3;
      this.#pendingArgs.delete(v);
      const state = f.vals[0];
      if (state !== undefined && this.#child(state, { label: '<state>' })) return false;
    }
    return true;
  }

  /** Writes a property key (interned string or symbol). */
  key(k: string | symbol): void {
    if (typeof k === 'symbol') return this.#symbol(k);
    const idx = this.#strings.get(k);
    if (idx !== undefined) {
      this.w.u8(T.T_STRREF);
      this.w.varint(idx);
      return;
    }
    this.#strings.set(k, this.#strings.size);
    this.w.string(k, T.T_FIXSTR, T.FIXSTR_MAX, T.T_STR8, T.T_STR16);
  }

  #number(n: number): void {
    if (Number.isInteger(n) && !(n === 0 && 1 / n < 0)) {
      if (n >= 0 && n <= T.FIXINT_MAX) return this.w.u8(T.T_FIXINT + n);
      if (n >= -0x10000000000000 && n <= 0x10000000000000) {
        this.w.u8(T.T_INT);
        return this.w.varint(n >= 0 ? n * 2 : -n * 2 - 1);
      }
    }
    this.w.u8(T.T_FLOAT64);
    this.w.f64(n);
  }

  #bigint(v: bigint): void {
    const neg = v < 0n;
    let hex = (neg ? -v : v).toString(16);
    if (hex === '0') hex = '';
    if (hex.length & 1) hex = '0' + hex;
    const bytes = Buffer.from(hex, 'hex');
    this.w.u8(neg ? T.T_BIGINT_NEG : T.T_BIGINT_POS);
    this.w.varint(bytes.length);
    this.w.bytes(bytes);
  }

  #symbol(s: symbol): void {
    const wk = wellKnownSymbolNames.get(s);
    if (wk !== undefined) {
      this.w.u8(T.T_SYMBOL_WK);
      return this.key(wk);
    }
    const reg = Symbol.keyFor(s);
    if (reg !== undefined) {
      this.w.u8(T.T_SYMBOL_REG);
      return this.key(reg);
    }
    const id = this.#memo.get(s);
    if (id !== undefined) {
      this.w.u8(T.T_REF);
      return this.w.varint(id);
    }
    this.#memo.set(s, this.#nextId++);
    this.w.u8(T.T_SYMBOL_UNIQUE);
    const d = s.description;
    if (d === undefined) this.w.u8(T.T_UNDEFINED);
    else this.w.string(d, T.T_FIXSTR, T.FIXSTR_MAX, T.T_STR8, T.T_STR16);
  }

  #object(v: object, seg: PathSegment): boolean {
    if (DenseList.is(v)) {
      // Built-in state lists: never shared, never seen by hooks. The loader memoizes every array.
      this.#nextId++;
      const top = this.#top;
      this.#path.push(seg);
      this.#values(v, v.items);
      if (this.#top !== top) return true;
      this.#path.pop();
      return false;
    }
    // `has` first: on V8 a miss costs about half of a `get` miss, and most objects are met once.
    if (this.#memo.has(v)) {
      const id = this.#memo.get(v)!;
      if (this.#pendingArgs.has(v)) {
        this.#path.push(seg);
        throw new EncodeError('ERR_MP_CYCLE_IN_ARGS', 'a reducer\'s arguments refer back to the object being reduced; move that part into getState/setState');
      }
      this.w.u8(T.T_REF);
      this.w.varint(id);
      return false;
    }
    const top = this.#top;
    this.#path.push(seg);
    this.#dispatch(v);
    if (this.#top !== top) return true;
    this.#path.pop();
    return false;
  }

  #dispatch(v: object): void {
    if (types.isProxy(v)) throw new EncodeError('ERR_MP_PROXY', 'a Proxy cannot be pickled: its behaviour lives in its handler; pickle the target instead');
    if (this.#hasIdentities) {
      const r = this.registry.byIdentity(v);
      if (r) return this.#reduceWith(v, r, null);
    }
    if (this.#override) {
      const red = this.#callReducer(() => this.#override!(v, this), 'reducerOverride');
      if (red !== undefined) return this.#reduction(v, red);
    }
    const isFn = typeof v === 'function';
    const proto = isFn ? null : getPrototypeOf(v);
    if (proto === ObjectProto) {
      if (this.#plain(v)) return;
    } else if (proto === ArrayProto && Array.isArray(v)) {
      return this.#array(v as unknown[], null);
    }
    if (v instanceof RawBytes) {
      this.w.u8(T.T_BYTES);
      this.w.varint(v.bytes.byteLength);
      return this.w.bytes(v.bytes);
    }
    const method = (v as Record<symbol, unknown>)[reduceSymbol];
    if (typeof method === 'function') {
      const red = this.#callReducer(() => method.call(v) as Reduction, '[reduceSymbol]()');
      return this.#reduction(v, red);
    }
    if (isFn) {
      const r = this.registry.byMatcher(v);
      if (r) return this.#reduceWith(v, r, null);
      throw new EncodeError('ERR_MP_NO_FUNCTION_LAYER', `function ${(v as { name?: string }).name || '(anonymous)'} cannot be pickled: no function layer is registered`);
    }
    if (proto === null) {
      if (types.isArrayBufferView(v)) return this.#view(v as ArrayBufferView, proto);
      if (types.isAnyArrayBuffer(v)) return this.#buffer(v as ArrayBufferLike, proto);
      if (!types.isModuleNamespaceObject(v)) return this.#plainObject(v, null);
    } else {
      const exact = this.registry.byPrototype(proto);
      if (exact) return this.#reduceWith(v, exact, null);
    }
    if (types.isArrayBufferView(v)) return this.#view(v as ArrayBufferView, proto);
    if (types.isAnyArrayBuffer(v)) return this.#buffer(v as ArrayBufferLike, proto);
    // Refusals come before matchers: a broad matcher (the class layer's "any instance") must not
    // pickle a socket or a WeakMap field by field. register() and reducerOverride still take precedence.
    const refused = refusal(v);
    if (refused) throw new EncodeError(refused.code, refused.message);
    const matched = this.registry.byMatcher(v);
    if (matched) return this.#reduceWith(v, matched, null);
    // Instances of subclasses: the nearest registered ancestor (or Object/Array) plus the real prototype.
    for (let p = proto; p !== null; p = getPrototypeOf(p)) {
      if (p === ObjectProto) return this.#plainObject(v, proto);
      if (p === ArrayProto && Array.isArray(v)) return this.#array(v as unknown[], proto);
      const r = this.registry.byPrototype(p);
      if (r?.subclassable) return this.#reduceWith(v, r, proto);
      if (r) break;
      const hidden = hiddenStateClass(p);
      if (hidden) {
        throw new EncodeError('ERR_MP_UNSUPPORTED_TYPE', `a ${hidden} keeps its state in internal slots that cannot be read, so it would load as an empty shell; create it on the receiver, or register a reducer for ${hidden}`);
      }
    }
    if (types.isModuleNamespaceObject(v)) {
      throw new EncodeError('ERR_MP_NO_FUNCTION_LAYER', 'a module namespace is pickled by reference by the function layer, which is not registered');
    }
    return this.#plainObject(v, proto);
  }

  #callReducer<R>(call: () => R, what: string): R {
    try {
      return call();
    } catch (e) {
      this.#reducerFailed(e, what);
    }
  }

  #reducerFailed(e: unknown, what: string): never {
    if (e instanceof ModulePickleError) throw e;
    throw new EncodeError('ERR_MP_REDUCER_FAILED', `${what} threw: ${(e as Error)?.message ?? String(e)}`, [], { cause: e });
  }

  /** A TypedArray, DataView or Buffer: its record in the buffer table, then its own non-index properties. */
  #view(v: ArrayBufferView, proto: object | null): void {
    const p = viewParts(v, proto);
    const index = this.buffers.addView(v, p);
    this.#memo.set(v, this.#nextId++);
    this.w.u8(T.T_VIEW);
    this.w.varint(index);
    const keys: (string | symbol)[] = p.kind === T.V_DATAVIEW ? getOwnPropertyNames(v) : namedKeys(v, p.length, false);
    this.#binaryTail(v, proto === viewProtos[p.kind] ? null : proto, keys);
  }

  /** An ArrayBuffer or SharedArrayBuffer reached directly: it travels whole. */
  #buffer(v: ArrayBufferLike, proto: object | null): void {
    const slot = this.buffers.addBuffer(v);
    this.#memo.set(v, this.#nextId++);
    this.w.u8(T.T_BUFFER);
    this.w.varint(slot);
    const standard = types.isSharedArrayBuffer(v) ? SharedArrayBuffer.prototype : ArrayBuffer.prototype;
    this.#binaryTail(v, proto === standard ? null : proto, getOwnPropertyNames(v));
  }

  /** The tail of binary data: two zero bytes in the common case of no own properties. */
  #binaryTail(v: object, proto: object | null, keys: (string | symbol)[]): void {
    for (const s of getOwnPropertySymbols(v)) keys.push(s);
    if (keys.length === 0 && proto === null && isExtensible(v) && getPrototypeOf(v) !== null) {
      this.w.u8(0);
      this.w.u8(0);
      return;
    }
    this.#tailFrame(this.#push(F_PROPS, v), v, proto, keys, keys.map((k) => getOwnPropertyDescriptor(v, k)!), 0);
  }

  /** A dense array of known-plain values. */
  #values(obj: object, items: unknown[]): void {
    this.w.u8(T.T_ARRAY_DENSE);
    this.w.varint(items.length);
    this.#children(F_VALUES, obj, EMPTY, items);
  }

  /**
   * Writes `vals` (children of `obj`): the leading primitives at once, and a frame for the rest only when an
   * object comes (most small objects and arrays are all primitives, so they never need a frame).
   */
  #children(kind: number, obj: object, keys: (string | symbol)[], vals: unknown[]): void {
    const n = vals.length;
    let i = 0;
    for (; i < n; i++) {
      const v = vals[i];
      if ((typeof v === 'object' && v !== null) || typeof v === 'function') break;
      this.#child(v, '');
    }
    if (i === n) return;
    const f = this.#push(kind, obj);
    f.keys = keys;
    f.vals = vals;
    f.n = n;
    f.i = i;
  }

  /**
   * An object whose prototype is Object.prototype: proven plain with one descriptor read per property, then
   * written by shape. Returns false (nothing written) when it has a `[reduceSymbol]` method.
   */
  #plain(v: object): boolean {
    const names = getOwnPropertyNames(v);
    const symbols = getOwnPropertySymbols(v);
    if ((symbols.length !== 0 || this.#inheritedReduce) && typeof (v as Record<symbol, unknown>)[reduceSymbol] === 'function') return false;
    this.#memo.set(v, this.#nextId++);
    const keys: (string | symbol)[] = symbols.length === 0 ? names : [...names, ...symbols];
    const n = keys.length;
    if (!isExtensible(v)) return this.#general(v, null, keys), true;
    const w = this.w;
    if (n === 0) {
      w.u8(T.T_OBJECT_SIMPLE);
      w.u8(0);
      return true;
    }
    const first = keys[0]!;
    let list = this.#shapes.get(first);
    if (list !== undefined) {
      for (let s = 0; s < list.length; s++) {
        const shape = list[s]!;
        const sk = shape.keys;
        if (sk.length !== n) continue;
        let i = 1;
        while (i < n && sk[i] === keys[i]) i++;
        if (i === n) return this.#shaped(v, sk, shape.id);
      }
    }
    const vals: unknown[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const d = getOwnPropertyDescriptor(v, keys[i]!)!;
      if (d.writable !== true || d.enumerable !== true || d.configurable !== true) return this.#general(v, null, keys), true;
      vals[i] = d.value;
    }
    if (list === undefined) this.#shapes.set(first, (list = []));
    if (list.length >= SHAPES_PER_KEY) {
      w.u8(T.T_OBJECT_SIMPLE);
      w.varint(n);
      const f = this.#push(F_ENTRIES, v);
      f.keys = keys;
      f.vals = vals;
      f.n = n;
      return true;
    }
    list.push({ keys, id: this.#shapeCount++ });
    // A shape definition lists its keys first, then its values.
    w.u8(T.T_SHAPE_DEF);
    w.varint(n);
    for (let i = 0; i < n; i++) this.key(keys[i]!);
    this.#children(F_SHAPE, v, keys, vals);
    return true;
  }

  /**
   * An object of a known shape: each property proven a default data property while its value is written
   * (primitives at once, the rest from the first object on by a frame). A property that is not plain rewinds
   * the writer and takes the general form.
   */
  #shaped(v: object, keys: (string | symbol)[], id: number): true {
    const w = this.w;
    const start = w.pos;
    w.u8(T.T_SHAPE);
    w.varint(id);
    const n = keys.length;
    let vals: unknown[] | undefined;
    let from = n;
    for (let i = 0; i < n; i++) {
      const d = getOwnPropertyDescriptor(v, keys[i]!)!;
      if (d.writable !== true || d.enumerable !== true || d.configurable !== true) {
        w.pos = start;
        this.#general(v, null, keys);
        return true;
      }
      const x = d.value;
      if (vals === undefined) {
        // Primitives other than symbols have no side effect on the encoder, so the rewind above stays exact.
        const t = typeof x;
        if (x === null || (t !== 'object' && t !== 'function' && t !== 'symbol')) {
          this.#child(x, '');
          continue;
        }
        vals = new Array(n);
        from = i;
      }
      vals[i] = x;
    }
    if (vals !== undefined) {
      const f = this.#push(F_SHAPE, v);
      f.keys = keys;
      f.vals = vals;
      f.n = n;
      f.i = from;
    }
    return true;
  }

  /** Null-prototype objects and instances (proto given): simple when they can be, else the general form. */
  #plainObject(v: object, proto: object | null): void {
    this.#memo.set(v, this.#nextId++);
    const keys = ownKeys(v);
    const n = keys.length;
    if (proto === null && getPrototypeOf(v) !== null && isExtensible(v)) {
      const vals: unknown[] = new Array(n);
      let i = 0;
      for (; i < n; i++) {
        const d = getOwnPropertyDescriptor(v, keys[i]!)!;
        if (!isDefault(d)) break;
        vals[i] = d.value;
      }
      if (i === n) {
        this.w.u8(T.T_OBJECT_SIMPLE);
        this.w.varint(n);
        if (n === 0) return;
        const f = this.#push(F_ENTRIES, v);
        f.keys = keys;
        f.vals = vals;
        f.n = n;
        return;
      }
    }
    this.#general(v, proto, keys);
  }

  /** T_OBJECT: flags, [prototype], properties with attributes. */
  #general(v: object, proto: object | null, keys: (string | symbol)[]): void {
    this.w.u8(T.T_OBJECT);
    this.#tailFrame(this.#push(F_PROPS, v), v, proto, keys, keys.map((k) => getOwnPropertyDescriptor(v, k)!), 0);
  }

  /**
   * Sets `f` up to write the part every non-simple object shares: object flags, the prototype when it is not
   * the default one, the own properties (with attributes when any is not the default) and extensibility.
   */
  #tailFrame(f: Frame, v: object, proto: object | null, keys: (string | symbol)[], descs: PropertyDescriptor[], extraFlags: number): void {
    let flags = extraFlags;
    if (!isExtensible(v)) flags |= T.O_NON_EXTENSIBLE;
    for (const d of descs) {
      if (!isDefault(d)) {
        flags |= T.O_ATTRS;
        break;
      }
    }
    f.proto = undefined;
    if (proto !== null) {
      flags |= T.O_PROTO;
      const ctor = getOwnPropertyDescriptor(proto, 'constructor')?.value as { prototype?: unknown } | undefined;
      if (typeof ctor === 'function' && ctor.prototype === proto) {
        flags |= T.O_PROTO_IS_CTOR;
        f.proto = ctor;
      } else f.proto = proto;
    } else if (getPrototypeOf(v) === null) flags |= T.O_NULL_PROTO;
    f.kind = F_PROPS;
    f.flags = flags;
    f.attrs = (flags & T.O_ATTRS) !== 0;
    f.pendingSet = false;
    f.keys = keys;
    f.vals = descs;
    f.n = keys.length;
    f.i = 0;
    f.phase = 0;
  }

  #array(v: unknown[], proto: object | null): void {
    this.#memo.set(v, this.#nextId++);
    const len = v.length;
    const w = this.w;
    const lengthDesc = getOwnPropertyDescriptor(v, 'length')!;
    if (proto === null && lengthDesc.writable && isExtensible(v)) {
      // Dense form only when there is no other own property and every element is a plain data property:
      // reading v[i] would run a getter and drop attributes (an extensible array may still have a
      // non-enumerable or accessor element). A hole shows as a missing descriptor.
      const plainKeys = len <= NAMED_KEYS_THRESHOLD
        ? Reflect.ownKeys(v).length === len + 1
        : namedKeys(v, len, true).length === 1 && getOwnPropertySymbols(v).length === 0;
      if (plainKeys) {
        // Written while proven, as for shaped objects: a property that is not plain rewinds the writer.
        const start = w.pos;
        w.u8(T.T_ARRAY_DENSE);
        w.varint(len);
        let vals: unknown[] | undefined;
        let from = len;
        let i = 0;
        for (; i < len; i++) {
          const d = getOwnPropertyDescriptor(v, i);
          if (d === undefined || d.writable !== true || d.enumerable !== true || d.configurable !== true) break;
          const x = d.value;
          if (vals === undefined) {
            const t = typeof x;
            if (x === null || (t !== 'object' && t !== 'function' && t !== 'symbol')) {
              this.#child(x, '');
              continue;
            }
            vals = new Array(len);
            from = i;
          }
          vals[i] = x;
        }
        if (i === len) {
          if (vals !== undefined) {
            const f = this.#push(F_VALUES, v);
            f.keys = EMPTY;
            f.vals = vals;
            f.n = len;
            f.i = from;
          }
          return;
        }
        w.pos = start;
      }
    }
    const keys = ownKeys(v);
    // General form: the present indices, then the other own properties.
    const lengthAt = keys.indexOf('length');
    const indexDescs = keys.slice(0, lengthAt).map((k) => getOwnPropertyDescriptor(v, k)!);
    const rest = keys.slice(lengthAt + 1);
    w.u8(T.T_ARRAY);
    w.varint(len);
    w.varint(lengthAt);
    const attrs = !indexDescs.every(isDefault);
    w.u8(attrs ? 1 : 0);
    const f = this.#push(F_INDICES, v);
    f.keys = keys;
    f.vals = indexDescs;
    f.n = lengthAt;
    f.attrs = attrs;
    f.pendingSet = false;
    f.proto = proto;
    f.flags = lengthDesc.writable ? 0 : T.O_LENGTH_READONLY;
    f.tailKeys = rest;
    f.tailDescs = rest.map((k) => getOwnPropertyDescriptor(v, k)!);
  }

  #reduction(v: object, red: Reduction): void {
    if (red === null || typeof red !== 'object') {
      throw new EncodeError('ERR_MP_REDUCER_FAILED', 'a reduction must be { reducer } or { restore, args }');
    }
    if ('reducer' in red && red.reducer !== undefined) {
      const r = typeof red.reducer === 'string' ? this.registry.byName(red.reducer) : (red.reducer as unknown as AnyReducer);
      if (!r) throw new EncodeError('ERR_MP_REDUCER_FAILED', `no reducer named '${String(red.reducer)}' is registered`);
      return this.#reduceWith(v, r, null);
    }
    const { restore, args, state } = red as { restore: unknown; args: unknown; state?: unknown };
    if (typeof restore !== 'function' || !Array.isArray(args)) {
      throw new EncodeError('ERR_MP_REDUCER_FAILED', 'a reduction must be { reducer } or { restore: function, args: array }');
    }
    this.#memo.set(v, this.#nextId++);
    this.hasCode = true;
    this.w.u8(T.T_REDUCE);
    this.w.u8(state !== undefined ? T.R_STATE : 0);
    const f = this.#push(F_RESTORE, v);
    f.proto = restore;
    f.aux = args;
    f.vals = [state];
  }

  #reduceWith(v: object, r: AnyReducer, proto: object | null): void {
    this.#memo.set(v, this.#nextId++);
    const props = r.ownProps !== undefined && r.ownProps !== false;
    const hasState = typeof r.getState === 'function';
    if (r.code) this.hasCode = true;
    let args: unknown;
    try {
      args = r.reduce(v, this);
    } catch (e) {
      this.#reducerFailed(e, `reducer '${r.name}'`);
    }
    const w = this.w;
    w.u8(T.T_REDUCE);
    w.u8(T.R_BY_NAME | (hasState ? T.R_STATE : 0) | (props || proto !== null ? T.R_PROPS : 0));
    this.key(r.name);
    const f = this.#push(F_REDUCE, v);
    f.reducer = r;
    f.aux = args;
    f.proto = proto;
  }
}
