/**
 * Bytes -> value graph. Every length is checked against the bytes left; every failure is a typed DecodeError.
 * The walk is iterative (an explicit stack of frames), so a deep payload meets `maxDepth`, never the JS stack.
 */
import { DecodeError, ModulePickleError } from '../errors.ts';
import { readTable, type LoadedTable } from './buffers.ts';
import { DEFAULT_MAX_DEPTH } from './encode.ts';
import { ByteReader } from './reader.ts';
import type { Reducer, Registry, RestoreContext } from './registry.ts';
import { wellKnownSymbols } from './symbols.ts';
import * as T from './tags.ts';

/** Options of `loads`. Layers read their own options from the same record. */
export interface LoadOptions {
  registry?: Registry;
  /** `false`: data only. Refuses, before running anything, payloads with functions, classes, modules or code. */
  code?: boolean;
  /** Maximum nesting depth in containers (default 500,000; each level costs a few hundred bytes while loading). */
  maxDepth?: number;
  [option: string]: unknown;
}

type AnyReducer = Reducer<object, unknown, unknown>;

/** Placeholder for an object whose creation is under way (its reducer's arguments are being decoded). */
const PENDING: unique symbol = Symbol('pending');
/** `#read` pushed a frame: the value arrives when that frame is done. */
const OPEN: unique symbol = Symbol('open');
/** No value is being delivered to the frame. */
const NONE: unique symbol = Symbol('none');
const MAX_ARRAY_LENGTH = 2 ** 32 - 1;
const { defineProperty, setPrototypeOf, preventExtensions } = Object;
const u8slice = Uint8Array.prototype.slice;
/** An owning copy (Buffer#slice would return a view into the payload). */
const copyBytes = (view: Uint8Array): Uint8Array => u8slice.call(view);

// Frame kinds.
const D_DENSE = 0;
const D_SIMPLE = 1;
const D_PROPS = 2;
const D_INDICES = 3;
const D_REDUCE = 4;
const D_SHAPE = 5;

// What the value a frame waits for is: D_PROPS / D_INDICES / D_REDUCE.
const W_PROTO = 1;
const W_VALUE = 2;
const W_GET = 3;
const W_SET = 4;
const W_ARGS = 5;
const W_RESTORE = 6;
const W_STATE = 7;

class Frame {
  kind = 0;
  obj: object = Object.prototype;
  /** Byte offset of the container's tag (for errors). */
  at = 0;
  n = 0;
  i = 0;
  phase = 0;
  want = 0;
  flags = 0;
  attrs = false;
  key: string | symbol = '';
  keys: (string | symbol)[] = [];
  attr = 0;
  getter: unknown = undefined;
  last = -1;
  len = 0;
  id = 0;
  reducer: AnyReducer | undefined = undefined;
  restore: unknown = undefined;
  value: unknown = undefined;
}

export class Decoder implements RestoreContext {
  readonly r: ByteReader;
  readonly options: LoadOptions;
  #scratch: Map<unknown, unknown> | undefined;
  readonly #registry: Registry;
  readonly #allowCode: boolean;
  readonly #maxDepth: number;
  readonly #objs: unknown[] = [];
  readonly #strings: string[] = [];
  readonly #shapes: (string | symbol)[][] = [];
  readonly #frames: Frame[] = [];
  #top = 0;
  #table: LoadedTable | undefined;

  constructor(r: ByteReader, registry: Registry, options: LoadOptions) {
    this.r = r;
    this.#registry = registry;
    this.options = options;
    this.#allowCode = options.code !== false;
    this.#maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  }

  get scratch(): Map<unknown, unknown> {
    return (this.#scratch ??= new Map());
  }

  /** Decodes one complete value (a value stream may start with the buffer table). */
  value(): unknown {
    const r: ByteReader = this.r;
    if (this.#top === 0 && this.#table === undefined && r.pos < r.end && r.buf[r.pos] === T.T_TABLE) {
      r.pos++;
      this.#table = readTable(r);
    }
    const base = this.#top;
    const v = this.#read();
    return v === OPEN ? this.#run(base) : v;
  }

  #run(base: number): unknown {
    const frames = this.#frames;
    let incoming: unknown = NONE;
    for (;;) {
      const f = frames[this.#top - 1]!;
      const out = this.#step(f, incoming);
      if (out === OPEN) {
        incoming = NONE;
        continue;
      }
      this.#top--;
      if (this.#top === base) return out;
      incoming = out;
    }
  }

  #push(kind: number, obj: object, at: number): Frame {
    if (this.#top >= this.#maxDepth) this.r.fail('ERR_MP_TOO_DEEP', `payload nests deeper than maxDepth (${this.#maxDepth})`, at);
    let f = this.#frames[this.#top];
    if (f === undefined) this.#frames.push((f = new Frame()));
    this.#top++;
    f.kind = kind;
    f.obj = obj;
    f.at = at;
    f.i = 0;
    f.phase = 0;
    f.want = 0;
    return f;
  }

  /** Reads a primitive or a reference, or begins a container: then returns OPEN with its frame pushed. */
  #read(): unknown {
    const r: ByteReader = this.r;
    const at = r.pos;
    const tag = r.u8();
    if (tag >= T.T_FIXINT) return tag - T.T_FIXINT;
    if (tag >= T.T_FIXSTR) return r.utf8(tag - T.T_FIXSTR);
    switch (tag) {
      case T.T_UNDEFINED:
        return undefined;
      case T.T_NULL:
        return null;
      case T.T_FALSE:
        return false;
      case T.T_TRUE:
        return true;
      case T.T_INT: {
        const z = r.varint();
        return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
      }
      case T.T_FLOAT64:
        return r.f64();
      case T.T_BIGINT_POS:
      case T.T_BIGINT_NEG: {
        const n = r.count();
        const bytes = r.span(n);
        const mag = n === 0 ? 0n : BigInt('0x' + Buffer.from(bytes.buffer, bytes.byteOffset, n).toString('hex'));
        return tag === T.T_BIGINT_NEG ? -mag : mag;
      }
      case T.T_STR8:
        return r.utf8(r.varint());
      case T.T_STR16:
        return r.utf16(r.varint());
      case T.T_STRREF:
      case T.T_SYMBOL_REG:
      case T.T_SYMBOL_WK:
      case T.T_SYMBOL_UNIQUE:
        r.pos = at;
        return this.key();
      case T.T_REF:
        return this.#ref(at);
      case T.T_BYTES: {
        const n = r.varint();
        return copyBytes(r.span(n));
      }
      case T.T_OBJECT_SIMPLE: {
        const obj = {};
        this.#objs.push(obj);
        const n = r.count(2);
        if (n === 0) return obj;
        this.#push(D_SIMPLE, obj, at).n = n;
        return OPEN;
      }
      case T.T_SHAPE_DEF: {
        const obj = {};
        this.#objs.push(obj);
        const n = r.count(2);
        const keys: (string | symbol)[] = new Array(n);
        for (let i = 0; i < n; i++) keys[i] = this.key();
        this.#shapes.push(keys);
        const f = this.#push(D_SHAPE, obj, at);
        f.keys = keys;
        f.n = n;
        return OPEN;
      }
      case T.T_SHAPE: {
        const id = r.varint();
        const keys = this.#shapes[id];
        if (keys === undefined) r.fail('ERR_MP_BAD_REF', `object of shape #${id}, which is not defined`, at);
        const obj = {};
        this.#objs.push(obj);
        const f = this.#push(D_SHAPE, obj, at);
        f.keys = keys;
        f.n = keys.length;
        return OPEN;
      }
      case T.T_OBJECT: {
        const obj = {};
        this.#objs.push(obj);
        this.#push(D_PROPS, obj, at);
        return OPEN;
      }
      case T.T_ARRAY_DENSE: {
        const n = r.count(1);
        const arr: unknown[] = [];
        this.#objs.push(arr);
        if (n === 0) return arr;
        this.#push(D_DENSE, arr, at).n = n;
        return OPEN;
      }
      case T.T_ARRAY:
        return this.#beginArray(at);
      case T.T_VIEW:
      case T.T_BUFFER: {
        const i = r.varint();
        const t = this.#table;
        const count = t === undefined ? 0 : tag === T.T_VIEW ? t.viewCount : t.buffers.length;
        if (i >= count) r.fail('ERR_MP_BAD_REF', `${tag === T.T_VIEW ? 'view' : 'buffer'} #${i} is not in the payload's buffer table`, at);
        const v = tag === T.T_VIEW ? this.#restoring(at, 'creating a view', () => t!.view(i)) : t!.buffers[i]!;
        this.#objs.push(v);
        this.#push(D_PROPS, v, at);
        return OPEN;
      }
      case T.T_REDUCE: {
        const flags = r.u8();
        const f = this.#push(D_REDUCE, Object.prototype, at);
        f.flags = flags;
        f.id = this.#objs.length;
        this.#objs.push(PENDING);
        f.reducer = undefined;
        return OPEN;
      }
      default:
        return r.fail('ERR_MP_BAD_TAG', `unknown tag 0x${tag.toString(16)}: the payload is corrupt or from a newer format`, at);
    }
  }

  #ref(at: number): unknown {
    const id = this.r.varint();
    if (id >= this.#objs.length) this.r.fail('ERR_MP_BAD_REF', `reference to object #${id}, which does not exist`, at);
    const v = this.#objs[id];
    if (v === PENDING) this.r.fail('ERR_MP_BAD_REF', `reference to object #${id} before it was created`, at);
    return v;
  }

  #beginArray(at: number): unknown {
    const r: ByteReader = this.r;
    const lenAt = r.pos;
    const len = r.varint();
    if (len > MAX_ARRAY_LENGTH) r.fail('ERR_MP_BAD_LENGTH', `array length ${len} exceeds 2^32-1`, lenAt);
    const arr: unknown[] = [];
    arr.length = len; // holey, no allocation for huge sparse arrays
    this.#objs.push(arr);
    const n = r.count(2);
    const f = this.#push(D_INDICES, arr, at);
    f.attrs = r.u8() === 1;
    f.n = n;
    f.len = len;
    f.last = -1;
    return OPEN;
  }

  /** Advances frame `f`, first storing `incoming` (the value it waited for) unless NONE. Returns OPEN or the finished value. */
  #step(f: Frame, incoming: unknown): unknown {
    switch (f.kind) {
      case D_DENSE: {
        const arr = f.obj as unknown[];
        if (incoming !== NONE) arr.push(incoming);
        const n = f.n;
        while (f.i < n) {
          f.i++;
          const v = this.#read();
          if (v === OPEN) return OPEN;
          arr.push(v);
        }
        return arr;
      }
      case D_SIMPLE: {
        const obj = f.obj as Record<string | symbol, unknown>;
        if (incoming !== NONE) assign(obj, f.key, incoming);
        const n = f.n;
        while (f.i < n) {
          f.i++;
          const k = this.key();
          const v = this.#read();
          if (v === OPEN) {
            f.key = k;
            return OPEN;
          }
          assign(obj, k, v);
        }
        return obj;
      }
      case D_SHAPE: {
        const obj = f.obj as Record<string | symbol, unknown>;
        const keys = f.keys;
        if (incoming !== NONE) assign(obj, keys[f.i - 1]!, incoming);
        const n = f.n;
        while (f.i < n) {
          const k = keys[f.i++]!;
          const v = this.#read();
          if (v === OPEN) return OPEN;
          assign(obj, k, v);
        }
        return obj;
      }
      case D_PROPS:
        return this.#stepProps(f, incoming);
      case D_INDICES:
        return this.#stepIndices(f, incoming);
      default:
        return this.#stepReduce(f, incoming);
    }
  }

  /** The shared tail: object flags, [prototype], own properties, extensibility. */
  #stepProps(f: Frame, incoming: unknown): unknown {
    const r: ByteReader = this.r;
    const obj = f.obj;
    let v = incoming;
    for (;;) {
      if (v !== NONE) {
        if (f.want === W_PROTO) this.#setProto(f, v);
        else this.#deliverProperty(f, v);
        v = NONE;
        if (f.want === W_GET) {
          // The getter arrived: read the setter.
          f.want = W_SET;
          v = this.#read();
          if (v === OPEN) return OPEN;
          continue;
        }
      }
      if (f.phase === 0) {
        f.phase = 1;
        f.at = r.pos;
        f.flags = r.u8();
        if (f.flags & T.O_PROTO) {
          f.want = W_PROTO;
          v = this.#read();
          if (v === OPEN) return OPEN;
          continue;
        }
        if (f.flags & T.O_NULL_PROTO) setPrototypeOf(obj, null);
      }
      if (f.phase === 1) {
        f.phase = 2;
        f.n = r.count(2);
        f.i = 0;
        f.attrs = (f.flags & T.O_ATTRS) !== 0;
      }
      if (f.i < f.n) {
        f.i++;
        f.key = this.key();
        v = this.#beginProperty(f, f.attrs ? r.u8() : T.A_DEFAULT);
        if (v === OPEN) return OPEN;
        continue;
      }
      if (f.flags & T.O_LENGTH_READONLY) {
        if (!Array.isArray(obj)) r.fail('ERR_MP_BAD_VALUE', 'read-only length on a non-array', f.at);
        defineProperty(obj, 'length', { writable: false });
      }
      if (f.flags & T.O_NON_EXTENSIBLE) preventExtensions(obj);
      return obj;
    }
  }

  #setProto(f: Frame, value: unknown): void {
    const r: ByteReader = this.r;
    let proto = value;
    if (f.flags & T.O_PROTO_IS_CTOR) {
      if (typeof proto !== 'function') r.fail('ERR_MP_BAD_VALUE', 'prototype constructor is not a function', f.at);
      proto = (proto as { prototype: unknown }).prototype;
    }
    if (typeof proto !== 'object' && typeof proto !== 'function') r.fail('ERR_MP_BAD_VALUE', 'prototype is not an object', f.at);
    this.#restoring(f.at, 'setting the prototype', () => setPrototypeOf(f.obj, proto as object | null));
  }

  /** Starts property `f.key` with attribute byte `attr`: reads its value (or getter). */
  #beginProperty(f: Frame, attr: number): unknown {
    f.attr = attr;
    f.want = attr & T.A_ACCESSOR ? W_GET : W_VALUE;
    f.value = this.r.pos;
    return this.#read();
  }

  /** Stores the value (or getter, or setter) that property `f.key` waited for; defines it when complete. */
  #deliverProperty(f: Frame, v: unknown): void {
    if (f.want === W_GET) {
      f.getter = v;
      return;
    }
    const attr = f.attr;
    const k = f.key;
    const at = f.value as number;
    const desc: PropertyDescriptor = { enumerable: (attr & T.A_ENUMERABLE) !== 0, configurable: (attr & T.A_CONFIGURABLE) !== 0 };
    if (f.want === W_SET) {
      const get = f.getter;
      f.getter = undefined;
      if ((get !== undefined && typeof get !== 'function') || (v !== undefined && typeof v !== 'function')) {
        this.r.fail('ERR_MP_BAD_VALUE', `accessor ${String(k)} is not a function`, at);
      }
      desc.get = get as () => unknown;
      desc.set = v as (x: unknown) => void;
    } else {
      desc.value = v;
      desc.writable = (attr & T.A_WRITABLE) !== 0;
    }
    f.want = 0;
    this.#restoring(at, `defining property ${String(k)}`, () => defineProperty(f.obj, k, desc));
  }

  /** A sparse or attributed array: (index, [attribute], value) triples, then the tail. */
  #stepIndices(f: Frame, incoming: unknown): unknown {
    const r: ByteReader = this.r;
    let v = incoming;
    for (;;) {
      if (v !== NONE) {
        this.#deliverProperty(f, v);
        v = NONE;
        if (f.want === W_GET) {
          f.want = W_SET;
          v = this.#read();
          if (v === OPEN) return OPEN;
          continue;
        }
      }
      if (f.i >= f.n) break;
      f.i++;
      const idxAt = r.pos;
      const idx = r.varint();
      if (idx >= f.len || idx <= f.last) r.fail('ERR_MP_BAD_VALUE', `array index ${idx} out of order or past length ${f.len}`, idxAt);
      f.last = idx;
      f.key = String(idx);
      v = this.#beginProperty(f, f.attrs ? r.u8() : T.A_DEFAULT);
      if (v === OPEN) return OPEN;
    }
    f.kind = D_PROPS;
    f.phase = 0;
    f.want = 0;
    return this.#stepProps(f, NONE);
  }

  #stepReduce(f: Frame, incoming: unknown): unknown {
    const r: ByteReader = this.r;
    const at = f.at;
    let v = incoming;
    for (;;) {
      if (v !== NONE) {
        const got = v;
        v = NONE;
        switch (f.want) {
          case W_RESTORE:
            if (typeof got !== 'function') r.fail('ERR_MP_BAD_VALUE', 'restore must be a function', at);
            f.restore = got;
            f.want = W_ARGS;
            v = this.#read();
            if (v === OPEN) return OPEN;
            continue;
          case W_ARGS:
            this.#restoreValue(f, got);
            break;
          case W_STATE:
            this.#applyState(f, got);
            break;
        }
      }
      if (f.phase === 0) {
        f.phase = 1;
        if (f.flags & T.R_BY_NAME) {
          const name = this.#stringKey();
          const reducer = this.#registry.byName(name);
          if (!reducer) {
            r.fail('ERR_MP_UNKNOWN_REDUCER', `no reducer named '${name}' is registered here; register the same reducer on the receiver before loading`, at);
          }
          if (reducer.code && !this.#allowCode) this.#refuseCode(at, `'${name}' creates code`);
          f.reducer = reducer;
          f.want = W_ARGS;
        } else {
          if (!this.#allowCode) this.#refuseCode(at, 'a restore function is code');
          f.reducer = undefined;
          f.want = W_RESTORE;
        }
        v = this.#read();
        if (v === OPEN) return OPEN;
        continue;
      }
      if (f.phase === 1) {
        // The value exists (delivered args were restored above).
        f.phase = 2;
        if (f.flags & T.R_STATE) {
          f.want = W_STATE;
          v = this.#read();
          if (v === OPEN) return OPEN;
          continue;
        }
      }
      const value = f.value;
      if (f.flags & T.R_PROPS) {
        if ((typeof value !== 'object' && typeof value !== 'function') || value === null) {
          r.fail('ERR_MP_BAD_VALUE', 'properties given for a value that is not an object', at);
        }
        f.kind = D_PROPS;
        f.obj = value as object;
        f.phase = 0;
        f.want = 0;
        return this.#stepProps(f, NONE);
      }
      return value;
    }
  }

  #restoreValue(f: Frame, args: unknown): void {
    const at = f.at;
    let value: unknown;
    const reducer = f.reducer;
    if (reducer) {
      value = this.#restoring(at, `reducer '${reducer.name}'`, () => reducer.restore(args, this));
    } else {
      if (!Array.isArray(args)) this.r.fail('ERR_MP_BAD_VALUE', 'restore arguments must be an array', at);
      const fn = f.restore as (...a: unknown[]) => unknown;
      const list: unknown[] = args;
      value = this.#restoring(at, `restore function ${fn.name}`, () => fn(...list));
    }
    f.value = value;
    this.#objs[f.id] = value;
  }

  #applyState(f: Frame, state: unknown): void {
    const reducer = f.reducer;
    const value = f.value;
    if (reducer) {
      if (reducer.setState) this.#restoring(f.at, `reducer '${reducer.name}' setState`, () => reducer.setState!(value as object, state, this));
    } else if (state !== null && typeof state === 'object' && typeof value === 'object' && value !== null) {
      for (const k of Reflect.ownKeys(state)) {
        defineProperty(value, k, { value: (state as Record<string | symbol, unknown>)[k], writable: true, enumerable: true, configurable: true });
      }
    }
  }

  /** A property key: a string (interned in the payload's string table) or a symbol. */
  key(): string | symbol {
    const r: ByteReader = this.r;
    const at = r.pos;
    const tag = r.u8();
    if (tag >= T.T_FIXSTR && tag < T.T_FIXINT) return this.#intern(r.utf8(tag - T.T_FIXSTR));
    switch (tag) {
      case T.T_STR8:
        return this.#intern(r.utf8(r.varint()));
      case T.T_STR16:
        return this.#intern(r.utf16(r.varint()));
      case T.T_STRREF: {
        const idx = r.varint();
        const s = this.#strings[idx];
        if (s === undefined) r.fail('ERR_MP_BAD_REF', `string table index ${idx} does not exist`, at);
        return s;
      }
      case T.T_SYMBOL_REG:
        return Symbol.for(this.#stringKey());
      case T.T_SYMBOL_WK: {
        const name = this.#stringKey();
        const s = wellKnownSymbols.get(name);
        if (s === undefined) r.fail('ERR_MP_BAD_VALUE', `unknown well-known symbol Symbol.${name}`, at);
        return s;
      }
      case T.T_SYMBOL_UNIQUE: {
        const id = this.#objs.length;
        this.#objs.push(PENDING);
        const s = Symbol(this.#description(at));
        this.#objs[id] = s;
        return s;
      }
      case T.T_REF: {
        const v = this.#ref(at);
        if (typeof v !== 'symbol') r.fail('ERR_MP_BAD_VALUE', 'a property key must be a string or a symbol', at);
        return v;
      }
      default:
        return r.fail('ERR_MP_BAD_VALUE', `a property key must be a string or a symbol, found tag 0x${tag.toString(16)}`, at);
    }
  }

  /** A unique symbol's description: a string or undefined (never a container, so it needs no frame). */
  #description(at: number): string | undefined {
    const r: ByteReader = this.r;
    const tag = r.u8();
    if (tag === T.T_UNDEFINED) return undefined;
    if (tag >= T.T_FIXSTR && tag < T.T_FIXINT) return r.utf8(tag - T.T_FIXSTR);
    if (tag === T.T_STR8) return r.utf8(r.varint());
    if (tag === T.T_STR16) return r.utf16(r.varint());
    return r.fail('ERR_MP_BAD_VALUE', 'symbol description must be a string', at);
  }

  #intern(s: string): string {
    this.#strings.push(s);
    return s;
  }

  #stringKey(): string {
    const at = this.r.pos;
    const k = this.key();
    if (typeof k !== 'string') this.r.fail('ERR_MP_BAD_VALUE', 'expected a string', at);
    return k;
  }

  #refuseCode(at: number, why: string): never {
    this.r.fail('ERR_MP_CODE_REFUSED', `payload carries code (${why}) and loads was called with { code: false }`, at);
  }

  #restoring<R>(at: number, what: string, f: () => R): R {
    try {
      return f();
    } catch (e) {
      if (e instanceof ModulePickleError) throw e;
      throw new DecodeError('ERR_MP_BAD_VALUE', `${what} failed: ${(e as Error)?.message ?? String(e)}`, at, { cause: e });
    }
  }
}

function assign(obj: Record<string | symbol, unknown>, k: string | symbol, v: unknown): void {
  if (k === '__proto__') defineProperty(obj, k, { value: v, writable: true, enumerable: true, configurable: true });
  else obj[k] = v;
}
