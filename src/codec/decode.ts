/** Bytes -> value graph. Every length is checked against the bytes left; every failure is a typed DecodeError. */
import { DecodeError, ModulePickleError } from '../errors.ts';
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
  /** Maximum nesting depth (default 1,000). */
  maxDepth?: number;
  [option: string]: unknown;
}

/** Placeholder for an object whose creation is under way (its reducer's arguments are being decoded). */
const PENDING: unique symbol = Symbol('pending');
const MAX_ARRAY_LENGTH = 2 ** 32 - 1;
const { defineProperty, setPrototypeOf, preventExtensions } = Object;
const u8slice = Uint8Array.prototype.slice;
/** An owning copy (Buffer#slice would return a view into the payload). */
const copyBytes = (view: Uint8Array): Uint8Array => u8slice.call(view);

export class Decoder implements RestoreContext {
  readonly r: ByteReader;
  readonly scratch = new Map<unknown, unknown>();
  readonly options: LoadOptions;
  readonly #registry: Registry;
  readonly #allowCode: boolean;
  readonly #maxDepth: number;
  readonly #objs: unknown[] = [];
  readonly #strings: string[] = [];
  #depth = 0;

  constructor(r: ByteReader, registry: Registry, options: LoadOptions) {
    this.r = r;
    this.#registry = registry;
    this.options = options;
    this.#allowCode = options.code !== false;
    this.#maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  }

  value(): unknown {
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
      case T.T_REF: {
        const id = r.varint();
        if (id >= this.#objs.length) r.fail('ERR_MP_BAD_REF', `reference to object #${id}, which does not exist`, at);
        const v = this.#objs[id];
        if (v === PENDING) r.fail('ERR_MP_BAD_REF', `reference to object #${id} before it was created`, at);
        return v;
      }
      case T.T_BYTES: {
        const n = r.varint();
        return copyBytes(r.span(n));
      }
      case T.T_OBJECT_SIMPLE:
        return this.#enter(at) && this.#leave(this.#simpleObject());
      case T.T_OBJECT:
        return this.#enter(at) && this.#leave(this.#object());
      case T.T_ARRAY_DENSE:
        return this.#enter(at) && this.#leave(this.#denseArray());
      case T.T_ARRAY:
        return this.#enter(at) && this.#leave(this.#array());
      case T.T_REDUCE:
        return this.#enter(at) && this.#leave(this.#reduce(at));
      default:
        return r.fail('ERR_MP_BAD_TAG', `unknown tag 0x${tag.toString(16)}: the payload is corrupt or from a newer format`, at);
    }
  }

  #enter(at: number): true {
    if (++this.#depth > this.#maxDepth) {
      this.r.fail('ERR_MP_TOO_DEEP', `payload nests deeper than maxDepth (${this.#maxDepth})`, at);
    }
    return true;
  }

  #leave<V>(v: V): V {
    this.#depth--;
    return v;
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
        const desc = this.value();
        if (desc !== undefined && typeof desc !== 'string') r.fail('ERR_MP_BAD_VALUE', 'symbol description must be a string', at);
        const s = Symbol(desc as string | undefined);
        this.#objs[id] = s;
        return s;
      }
      case T.T_REF: {
        r.pos = at;
        const v = this.value();
        if (typeof v !== 'symbol') r.fail('ERR_MP_BAD_VALUE', 'a property key must be a string or a symbol', at);
        return v;
      }
      default:
        return r.fail('ERR_MP_BAD_VALUE', `a property key must be a string or a symbol, found tag 0x${tag.toString(16)}`, at);
    }
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

  #simpleObject(): object {
    const r: ByteReader = this.r;
    const obj: Record<string | symbol, unknown> = {};
    this.#objs.push(obj);
    const n = r.count(2);
    for (let i = 0; i < n; i++) {
      const k = this.key();
      const v = this.value();
      if (k === '__proto__') defineProperty(obj, k, { value: v, writable: true, enumerable: true, configurable: true });
      else obj[k] = v;
    }
    return obj;
  }

  #object(): object {
    const obj = {};
    this.#objs.push(obj);
    this.#tail(obj);
    return obj;
  }

  #denseArray(): unknown[] {
    const r: ByteReader = this.r;
    const n = r.count(1);
    const arr: unknown[] = [];
    this.#objs.push(arr);
    for (let i = 0; i < n; i++) arr.push(this.value());
    return arr;
  }

  #array(): unknown[] {
    const r: ByteReader = this.r;
    const at = r.pos;
    const len = r.varint();
    if (len > MAX_ARRAY_LENGTH) r.fail('ERR_MP_BAD_LENGTH', `array length ${len} exceeds 2^32-1`, at);
    const arr: unknown[] = [];
    arr.length = len; // holey, no allocation for huge sparse arrays
    this.#objs.push(arr);
    const n = r.count(2);
    const attrs = r.u8() === 1;
    let last = -1;
    for (let i = 0; i < n; i++) {
      const idxAt = r.pos;
      const idx = r.varint();
      if (idx >= len || idx <= last) r.fail('ERR_MP_BAD_VALUE', `array index ${idx} out of order or past length ${len}`, idxAt);
      last = idx;
      this.#property(arr, String(idx), attrs ? r.u8() : T.A_DEFAULT);
    }
    this.#tail(arr);
    return arr;
  }

  #reduce(at: number): unknown {
    const r: ByteReader = this.r;
    const flags = r.u8();
    const id = this.#objs.length;
    this.#objs.push(PENDING);
    let value: unknown;
    let reducer: Reducer<object, unknown, unknown> | undefined;
    if (flags & T.R_BY_NAME) {
      const name = this.#stringKey();
      reducer = this.#registry.byName(name);
      if (!reducer) {
        r.fail('ERR_MP_UNKNOWN_REDUCER', `no reducer named '${name}' is registered here; register the same reducer on the receiver before loading`, at);
      }
      const found: Reducer<object, unknown, unknown> = reducer;
      if (found.code && !this.#allowCode) this.#refuseCode(at, `'${name}' creates code`);
      const args = this.value();
      value = this.#restoring(at, `reducer '${name}'`, () => found.restore(args, this));
    } else {
      if (!this.#allowCode) this.#refuseCode(at, 'a restore function is code');
      const restore = this.value();
      if (typeof restore !== 'function') r.fail('ERR_MP_BAD_VALUE', 'restore must be a function', at);
      const args = this.value();
      if (!Array.isArray(args)) r.fail('ERR_MP_BAD_VALUE', 'restore arguments must be an array', at);
      const fn = restore as (...a: unknown[]) => unknown;
      const list: unknown[] = args;
      value = this.#restoring(at, `restore function ${fn.name}`, () => fn(...list));
    }
    this.#objs[id] = value;
    if (flags & T.R_STATE) {
      const state = this.value();
      if (reducer) {
        if (reducer.setState) this.#restoring(at, `reducer '${reducer.name}' setState`, () => reducer!.setState!(value as object, state, this));
      } else if (state !== null && typeof state === 'object' && typeof value === 'object' && value !== null) {
        for (const k of Reflect.ownKeys(state)) {
          defineProperty(value, k, { value: (state as Record<string | symbol, unknown>)[k], writable: true, enumerable: true, configurable: true });
        }
      }
    }
    if (flags & T.R_PROPS) {
      if ((typeof value !== 'object' && typeof value !== 'function') || value === null) {
        r.fail('ERR_MP_BAD_VALUE', 'properties given for a value that is not an object', at);
      }
      this.#tail(value as object);
    }
    return value;
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

  /** Object flags, [prototype], own properties, extensibility. */
  #tail(obj: object): void {
    const r: ByteReader = this.r;
    const at = r.pos;
    const flags = r.u8();
    if (flags & T.O_PROTO) {
      let proto = this.value();
      if (flags & T.O_PROTO_IS_CTOR) {
        if (typeof proto !== 'function') r.fail('ERR_MP_BAD_VALUE', 'prototype constructor is not a function', at);
        proto = (proto as { prototype: unknown }).prototype;
      }
      if (typeof proto !== 'object' && typeof proto !== 'function') r.fail('ERR_MP_BAD_VALUE', 'prototype is not an object', at);
      this.#restoring(at, 'setting the prototype', () => setPrototypeOf(obj, proto as object | null));
    } else if (flags & T.O_NULL_PROTO) {
      setPrototypeOf(obj, null);
    }
    const n = r.count(2);
    const attrs = (flags & T.O_ATTRS) !== 0;
    for (let i = 0; i < n; i++) this.#property(obj, this.key(), attrs ? r.u8() : T.A_DEFAULT);
    if (flags & T.O_LENGTH_READONLY) {
      if (!Array.isArray(obj)) r.fail('ERR_MP_BAD_VALUE', 'read-only length on a non-array', at);
      defineProperty(obj, 'length', { writable: false });
    }
    if (flags & T.O_NON_EXTENSIBLE) preventExtensions(obj);
  }

  #property(obj: object, k: string | symbol, attr: number): void {
    const at = this.r.pos;
    const desc: PropertyDescriptor = { enumerable: (attr & T.A_ENUMERABLE) !== 0, configurable: (attr & T.A_CONFIGURABLE) !== 0 };
    if (attr & T.A_ACCESSOR) {
      const get = this.value();
      const set = this.value();
      if ((get !== undefined && typeof get !== 'function') || (set !== undefined && typeof set !== 'function')) {
        this.r.fail('ERR_MP_BAD_VALUE', `accessor ${String(k)} is not a function`, at);
      }
      desc.get = get as () => unknown;
      desc.set = set as (v: unknown) => void;
    } else {
      desc.value = this.value();
      desc.writable = (attr & T.A_WRITABLE) !== 0;
    }
    this.#restoring(at, `defining property ${String(k)}`, () => defineProperty(obj, k, desc));
  }
}
