/**
 * Value graph -> bytes. One pass, a memo for shared references and cycles, the registry for everything typed.
 * The walk is iterative (an explicit stack of frames, not the JS call stack), so depth is bounded by `maxDepth`
 * and memory only; reducers return parts that this driver encodes, so they never recurse either.
 */
import { types } from 'node:util';
import { EncodeError, ModulePickleError, type PathSegment } from '../errors.ts';
import { dateReducer, mapReducer, setReducer } from './plain-builtins.ts';
import { DenseList, F_REDUCE, F_RESTORE, F_SHAPE, F_ENTRIES, F_INDICES, F_MAP, F_PROPS, F_VALUES, MAP_KEY_SEG, MAP_VALUE_SEG, labelsOf, type AnyReducer, type Frame } from './encode-frames.ts';
import { ObjectEncoder } from './encode-objects.ts';
import type { OutOfBand } from './buffers.ts';
import { reduceSymbol, type ReduceContext, type ReducerOverride, type Reduction, type Registry } from './registry.ts';
import { hiddenStateClass, refusal } from './refuse.ts';
import * as T from './tags.ts';

/** Options of `dumps`. Layers read their own options from the same record. */
export interface DumpOptions {
  registry?: Registry;
  /** Per-call hook consulted before the registry for every object and function. */
  reducerOverride?: ReducerOverride;
  /**
   * Maximum nesting depth in containers (default 500,000). A Map or Set level takes one; a Map or Set with own
   * properties, another prototype or no extensibility takes two (itself and its entry list).
   */
  maxDepth?: number;
  /**
   * Claims buffers to travel beside the payload instead of in it (to a worker thread: transferred, or shared):
   * return the buffer's index in the list the loader gets as its `outOfBand` option, or undefined to copy it in.
   */
  outOfBand?: OutOfBand;
  [option: string]: unknown;
}

/** Wraps bytes that a reducer wants written raw (no per-byte work); they decode as an owning Uint8Array. */
export class RawBytes {
  constructor(readonly bytes: Uint8Array) {}
}

const ObjectProto = Object.prototype;
const ArrayProto = Array.prototype;
const MapProto = Map.prototype;
const SetProto = Set.prototype;
const DateProto = Date.prototype;
const { getOwnPropertyDescriptor, getPrototypeOf, isExtensible } = Object;
/**
 * Path segment of the `i`th item (1-based) of a Map's flat entries: MAP_KEY_SEG for a key; for a value its key
 * when the key reads as one (string, number, symbol), else MAP_VALUE_SEG.
 */
function mapSegment(flat: unknown[], i: number): PathSegment {
  if ((i & 1) === 1) return MAP_KEY_SEG;
  const k = flat[i - 2];
  return typeof k === 'string' || typeof k === 'number' || typeof k === 'symbol' ? k : MAP_VALUE_SEG;
}

/** Default nesting limit of both sides: far deeper than any real data, small enough to bound memory. */
export const DEFAULT_MAX_DEPTH = 500_000;

/** Pickles one value graph (the body or a section's data). @throws EncodeError (every code of `dumps`) */
export class Encoder extends ObjectEncoder implements ReduceContext {
  readonly options: DumpOptions;
  readonly registry: Registry;
  #scratch: Map<unknown, unknown> | undefined;
  hasCode = false;
  readonly #pendingArgs = new Set<object>();
  readonly #override: ReducerOverride | undefined;
  readonly #hasIdentities: boolean;

  constructor(registry: Registry, options: DumpOptions) {
    super(options.maxDepth ?? DEFAULT_MAX_DEPTH);
    this.registry = registry;
    this.options = options;
    this.#override = options.reducerOverride;
    this.#hasIdentities = registry.hasIdentities;
    this.outOfBand = options.outOfBand;
  }

  path(): PathSegment[] {
    return this.segs.slice(1);
  }

  get scratch(): Map<unknown, unknown> {
    return (this.#scratch ??= new Map());
  }

  /** Encodes one complete value. */
  value(v: unknown): void {
    if (this.child(v, '')) this.#run();
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
  protected child(v: unknown, seg: PathSegment): boolean {
    switch (typeof v) {
      case 'string':
        this.w.string(v, T.T_FIXSTR, T.FIXSTR_MAX, T.T_STR8, T.T_STR16);
        return false;
      case 'number':
        this.number(v);
        return false;
      case 'boolean':
        this.w.u8(v ? T.T_TRUE : T.T_FALSE);
        return false;
      case 'undefined':
        this.w.u8(T.T_UNDEFINED);
        return false;
      case 'bigint':
        this.bigint(v);
        return false;
      case 'symbol':
        this.symbol(v);
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
    const frames = this.frames;
    while (this.top > 0) {
      const f = frames[this.top - 1]!;
      if (this.#step(f)) {
        this.top--;
        this.segs.pop();
      }
    }
  }

  /** Writes the frame's next children; true when the frame is done, false when it pushed a child frame. */
  #step(f: Frame): boolean {
    switch (f.kind) {
      case F_VALUES:
      case F_SHAPE:
      case F_MAP: {
        // One loop; the children differ only in their path segment: index, shape key, or Map key/value.
        const kind = f.kind;
        const keys = f.keys;
        const vals = f.vals;
        const n = f.n;
        let i = f.i;
        while (i < n) {
          const v = vals[i];
          f.i = ++i;
          const seg = kind === F_VALUES ? i - 1 : kind === F_SHAPE ? keys[i - 1]! : mapSegment(vals, i);
          if (this.child(v, seg)) return false;
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
          if (this.child(v, k)) return false;
        }
        return true;
      }
      case F_PROPS:
        return this.stepProps(f);
      case F_INDICES:
        return this.stepIndices(f);
      case F_REDUCE:
        return this.#stepReduce(f);
      default:
        return this.#stepRestore(f);
    }
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
        if (this.child(args, labelsOf(r).args)) return false;
      } else this.child(args, '');
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
        if (this.child(state, labelsOf(r).state)) return false;
      }
    }
    const proto = f.proto as object | null;
    if ((r.ownProps !== undefined && r.ownProps !== false) || proto !== null) {
      // Reflect.ownKeys, not ownKeys: the usual value here has no own property, where it is twice as fast.
      const keys = typeof r.ownProps === 'function' ? r.ownProps(v) : Reflect.ownKeys(v);
      if (keys.length === 0 && proto === null && isExtensible(v) && getPrototypeOf(v) !== null) {
        // The common case: no own properties, nothing to frame.
        this.w.u8(0);
        this.w.u8(0);
        return true;
      }
      this.tailFrame(f, v, proto, keys, keys.map((k) => getOwnPropertyDescriptor(v, k)!), 0);
      return false;
    }
    return true;
  }

  #stepRestore(f: Frame): boolean {
    const v = f.obj;
    if (f.phase === 0) {
      f.phase = 1;
      if (this.child(f.proto, { label: '<restore>' })) return false;
    }
    if (f.phase === 1) {
      f.phase = 2;
      this.#pendingArgs.add(v);
      if (this.child(f.aux, { label: '<args>' })) return false;
    }
    if (f.phase === 2) {
      f.phase = 3;
      this.#pendingArgs.delete(v);
      const state = f.vals[0];
      if (state !== undefined && this.child(state, { label: '<state>' })) return false;
    }
    return true;
  }

  #object(v: object, seg: PathSegment): boolean {
    if (DenseList.is(v)) {
      // Built-in state lists: never shared, never seen by hooks. The loader memoizes every array.
      this.nextId++;
      const top = this.top;
      this.segs.push(seg);
      this.values(v, v.items);
      if (this.top !== top) return true;
      this.segs.pop();
      return false;
    }
    const id = this.memo.get(v);
    if (id !== undefined) {
      if (this.#pendingArgs.has(v)) {
        this.segs.push(seg);
        throw new EncodeError('ERR_MP_CYCLE_IN_ARGS', 'a reducer\'s arguments refer back to the object being reduced; move that part into getState/setState');
      }
      this.w.u8(T.T_REF);
      this.w.varint(id);
      return false;
    }
    const top = this.top;
    this.segs.push(seg);
    this.#dispatch(v);
    if (this.top !== top) return true;
    this.segs.pop();
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
      if (this.plain(v)) return;
    } else if (proto === ArrayProto && Array.isArray(v)) {
      return this.array(v as unknown[], null);
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
      if (types.isArrayBufferView(v)) return this.view(v as ArrayBufferView, proto);
      if (types.isAnyArrayBuffer(v)) return this.buffer(v as ArrayBufferLike, proto);
      if (!types.isModuleNamespaceObject(v)) return this.plainObject(v, null);
    } else {
      const exact = this.registry.byPrototype(proto);
      if (exact) {
        if (this.#native(v, proto, exact)) return;
        return this.#reduceWith(v, exact, null);
      }
    }
    if (types.isArrayBufferView(v)) return this.view(v as ArrayBufferView, proto);
    if (types.isAnyArrayBuffer(v)) return this.buffer(v as ArrayBufferLike, proto);
    // Refusals come before matchers: a broad matcher (the class layer's "any instance") must not
    // pickle a socket or a WeakMap field by field. register() and reducerOverride still take precedence.
    const refused = refusal(v);
    if (refused) throw new EncodeError(refused.code, refused.message);
    const matched = this.registry.byMatcher(v);
    if (matched) return this.#reduceWith(v, matched, null);
    // Instances of subclasses: the nearest registered ancestor (or Object/Array) plus the real prototype.
    for (let p = proto; p !== null; p = getPrototypeOf(p)) {
      if (p === ObjectProto) return this.plainObject(v, proto);
      if (p === ArrayProto && Array.isArray(v)) return this.array(v as unknown[], proto);
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
    return this.plainObject(v, proto);
  }

  /** A plain Map, Set or Date under the built-in reducer is written natively: true when it was. */
  #native(v: object, proto: object, r: AnyReducer): boolean {
    const is = r as unknown;
    if (is === mapReducer) return proto === MapProto && types.isMap(v) && this.collection(v as Map<unknown, unknown>, true);
    if (is === setReducer) return proto === SetProto && types.isSet(v) && this.collection(v as Set<unknown>, false);
    return is === dateReducer && proto === DateProto && types.isDate(v) && this.date(v as Date);
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
    this.memo.set(v, this.nextId++);
    this.hasCode = true;
    this.w.u8(T.T_REDUCE);
    this.w.u8(state !== undefined ? T.R_STATE : 0);
    const f = this.push(F_RESTORE, v);
    f.proto = restore;
    f.aux = args;
    f.vals = [state];
  }

  #reduceWith(v: object, r: AnyReducer, proto: object | null): void {
    this.memo.set(v, this.nextId++);
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
    const f = this.push(F_REDUCE, v);
    f.reducer = r;
    f.aux = args;
    f.proto = proto;
  }
}
