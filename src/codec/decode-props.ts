/** The object-tail half of the decoder: prototypes, property lists with attributes, sparse arrays. */
import { D_INDICES, D_PROPS, Frame, MAX_ARRAY_LENGTH, NONE, OPEN, W_GET, W_PROTO, W_SET, W_VALUE } from './decode-frames.ts';
import { KeyDecoder } from './decode-keys.ts';
import type { ByteReader } from './reader.ts';
import * as T from './tags.ts';

const { defineProperty, setPrototypeOf, preventExtensions } = Object;

/** Reads object tails and sparse arrays into their frames. @throws DecodeError ERR_MP_TOO_DEEP, ERR_MP_BAD_VALUE, ERR_MP_BAD_LENGTH */
export abstract class PropsDecoder extends KeyDecoder {
  protected readonly maxDepth: number;

  constructor(r: ByteReader, maxDepth: number) {
    super(r);
    this.maxDepth = maxDepth;
  }

  /** Reads a primitive or a reference, or begins a container: then returns OPEN with its frame pushed. */
  protected abstract read(): unknown;
  protected readonly frames: Frame[] = [];
  protected top = 0;

  protected push(kind: number, obj: object, at: number): Frame {
    if (this.top >= this.maxDepth) this.r.fail('ERR_MP_TOO_DEEP', `payload nests deeper than maxDepth (${this.maxDepth})`, at);
    let f = this.frames[this.top];
    if (f === undefined) this.frames.push((f = new Frame()));
    this.top++;
    f.kind = kind;
    f.obj = obj;
    f.at = at;
    f.i = 0;
    f.phase = 0;
    f.want = 0;
    return f;
  }

  protected beginArray(at: number): unknown {
    const r: ByteReader = this.r;
    const lenAt = r.pos;
    const len = r.varint();
    if (len > MAX_ARRAY_LENGTH) r.fail('ERR_MP_BAD_LENGTH', `array length ${len} exceeds 2^32-1`, lenAt);
    const arr: unknown[] = [];
    arr.length = len; // holey, no allocation for huge sparse arrays
    this.objs.push(arr);
    const n = r.count(2);
    const f = this.push(D_INDICES, arr, at);
    f.attrs = r.u8() === 1;
    f.n = n;
    f.len = len;
    f.last = -1;
    return OPEN;
  }

  /** The shared tail: object flags, [prototype], own properties, extensibility. */
  protected stepProps(f: Frame, incoming: unknown): unknown {
    const r: ByteReader = this.r;
    const obj = f.obj;
    let v = incoming;
    for (;;) {
      if (v !== NONE) {
        if (f.want === W_PROTO) this.setProto(f, v);
        else this.deliverProperty(f, v);
        v = NONE;
        if (f.want === W_GET) {
          // The getter arrived: read the setter.
          f.want = W_SET;
          v = this.read();
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
          v = this.read();
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
        v = this.beginProperty(f, f.attrs ? r.u8() : T.A_DEFAULT);
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

  protected setProto(f: Frame, value: unknown): void {
    const r: ByteReader = this.r;
    let proto = value;
    if (f.flags & T.O_PROTO_IS_CTOR) {
      if (typeof proto !== 'function') r.fail('ERR_MP_BAD_VALUE', 'prototype constructor is not a function', f.at);
      proto = (proto as { prototype: unknown }).prototype;
    }
    if (typeof proto !== 'object' && typeof proto !== 'function') r.fail('ERR_MP_BAD_VALUE', 'prototype is not an object', f.at);
    this.restoring(f.at, 'setting the prototype', () => setPrototypeOf(f.obj, proto as object | null));
  }

  /** Starts property `f.key` with attribute byte `attr`: reads its value (or getter). */
  protected beginProperty(f: Frame, attr: number): unknown {
    f.attr = attr;
    f.want = attr & T.A_ACCESSOR ? W_GET : W_VALUE;
    f.value = this.r.pos;
    return this.read();
  }

  /** Stores the value (or getter, or setter) that property `f.key` waited for; defines it when complete. */
  protected deliverProperty(f: Frame, v: unknown): void {
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
    this.restoring(at, `defining property ${String(k)}`, () => defineProperty(f.obj, k, desc));
  }

  /** A sparse or attributed array: (index, [attribute], value) triples, then the tail. */
  protected stepIndices(f: Frame, incoming: unknown): unknown {
    const r: ByteReader = this.r;
    let v = incoming;
    for (;;) {
      if (v !== NONE) {
        this.deliverProperty(f, v);
        v = NONE;
        if (f.want === W_GET) {
          f.want = W_SET;
          v = this.read();
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
      v = this.beginProperty(f, f.attrs ? r.u8() : T.A_DEFAULT);
      if (v === OPEN) return OPEN;
    }
    f.kind = D_PROPS;
    f.phase = 0;
    f.want = 0;
    return this.stepProps(f, NONE);
  }
}
