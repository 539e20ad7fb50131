/**
 * Binary data: ArrayBuffers, SharedArrayBuffers and their views (every TypedArray kind, DataView, Buffer).
 *
 * Every buffer a payload reaches gets a slot in one table written at the start of the value stream, after the
 * whole graph is known; views name their slot, offset and length. So every set of views over one buffer comes
 * back over one buffer, at the same offsets relative to each other, whatever order they are reached in:
 * - a buffer the graph reaches directly travels whole, and its views keep their exact offsets;
 * - a buffer reached only through views (a Node Buffer's 8 KiB pool, a slice of a larger buffer) travels as the
 *   span its views cover, from the lowest view offset rounded down to a multiple of 8 (so every view stays aligned),
 *   with offsets rebased to the span's start; bytes of the span that no view covers travel as zeros (they belong to
 *   other allocations of the pool, not to the value);
 * - resizable buffers travel whole (they keep `maxByteLength`), and a length-tracking view stays length-tracking;
 * - a SharedArrayBuffer's memory cannot be shared with another process: it is copied into a new SharedArrayBuffer.
 * - a buffer the encoder's `outOfBand` hook claims travels beside the payload, not in it (to another thread, whole,
 *   transferred or shared): the table records its length and its index in the list the loader is given.
 * The bytes are copied once into the payload and once out of it; no per-element work.
 */
import { Buffer } from 'node:buffer';
import { types } from 'node:util';
import { EncodeError } from '../errors.ts';
import type { ByteReader } from './reader.ts';
import * as T from './tags.ts';
import { ByteWriter } from './writer.ts';

const getter = (proto: object, key: PropertyKey): ((this: unknown) => unknown) =>
  Object.getOwnPropertyDescriptor(proto, key)!.get as (this: unknown) => unknown;
const TypedArrayProto = Object.getPrototypeOf(Uint8Array.prototype) as object;
// Intrinsic accessors: an own `buffer` or `length` property on a view must not fool the encoder.
const taTag = getter(TypedArrayProto, Symbol.toStringTag);
const taBuffer = getter(TypedArrayProto, 'buffer');
const taByteOffset = getter(TypedArrayProto, 'byteOffset');
const taByteLength = getter(TypedArrayProto, 'byteLength');
const taLength = getter(TypedArrayProto, 'length');
const dvBuffer = getter(DataView.prototype, 'buffer');
const dvByteOffset = getter(DataView.prototype, 'byteOffset');
const dvByteLength = getter(DataView.prototype, 'byteLength');
const abByteLength = getter(ArrayBuffer.prototype, 'byteLength');
const abResizable = getter(ArrayBuffer.prototype, 'resizable');
const abMaxByteLength = getter(ArrayBuffer.prototype, 'maxByteLength');
const sabByteLength = getter(SharedArrayBuffer.prototype, 'byteLength');
const sabGrowable = getter(SharedArrayBuffer.prototype, 'growable');
const sabMaxByteLength = getter(SharedArrayBuffer.prototype, 'maxByteLength');

const u8slice = Uint8Array.prototype.slice;
type Ctor = new (buffer: ArrayBufferLike, byteOffset?: number, length?: number) => ArrayBufferView;
const globals = globalThis as unknown as Record<string, Ctor>;
/** Constructor per view kind (Buffer views are made by `Buffer.from`). */
const ctors: Ctor[] = T.VIEW_KINDS.map((name) => (name === 'Buffer' ? Uint8Array : globals[name]!));
const kindOf = new Map<string, number>(T.VIEW_KINDS.map((name, i) => [name, i]));
/** The prototype a view of each kind has unless someone changed it. */
export const viewProtos: object[] = T.VIEW_KINDS.map((name) => (name === 'Buffer' ? Buffer.prototype : globals[name]!.prototype) as object);
const bytesPerElement = ctors.map((C, i) => (i === T.V_DATAVIEW || i === T.V_BUFFER ? 1 : (C as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT));

/** A view as the encoder sees it, read through intrinsic accessors. */
export interface ViewParts {
  readonly kind: number;
  readonly buffer: ArrayBufferLike;
  readonly byteOffset: number;
  readonly byteLength: number;
  /** Element count (bytes for DataView and Buffer). */
  readonly length: number;
}

/** Reads a view's kind, buffer, offset and length. */
export function viewParts(v: ArrayBufferView, proto: object | null): ViewParts {
  if (types.isDataView(v)) {
    return { kind: T.V_DATAVIEW, buffer: dvBuffer.call(v) as ArrayBufferLike, byteOffset: dvByteOffset.call(v) as number, byteLength: dvByteLength.call(v) as number, length: dvByteLength.call(v) as number };
  }
  let kind = kindOf.get(taTag.call(v) as string)!;
  if (kind === 1 && proto === Buffer.prototype) kind = T.V_BUFFER;
  const byteLength = taByteLength.call(v) as number;
  return { kind, buffer: taBuffer.call(v) as ArrayBufferLike, byteOffset: taByteOffset.call(v) as number, byteLength, length: taLength.call(v) as number };
}

interface BufferInfo {
  readonly shared: boolean;
  readonly resizable: boolean;
  readonly byteLength: number;
  readonly maxByteLength: number;
}

function bufferInfo(b: ArrayBufferLike): BufferInfo {
  const shared = types.isSharedArrayBuffer(b);
  const byteLength = (shared ? sabByteLength : abByteLength).call(b) as number;
  if (byteLength === 0 && !shared) {
    try {
      new Uint8Array(b, 0, 0);
    } catch {
      throw new EncodeError('ERR_MP_UNSUPPORTED_TYPE', 'a detached ArrayBuffer has no contents (it was transferred); pickle the buffer it was transferred to');
    }
  }
  const resizable = (shared ? sabGrowable : abResizable).call(b) as boolean;
  return { shared, resizable, byteLength, maxByteLength: (shared ? sabMaxByteLength : abMaxByteLength).call(b) as number };
}

/**
 * Whether a view over a resizable buffer tracks the buffer's length. Nothing reads that without a resize:
 * the buffer is resized by one element and back (an ArrayBuffer lives on one thread, so nobody sees it).
 */
function tracksLength(v: ArrayBufferView, p: ViewParts, info: BufferInfo): boolean {
  if (!info.resizable || p.byteOffset + p.byteLength !== info.byteLength) return false;
  const bpe = bytesPerElement[p.kind]!;
  const len = p.byteOffset + p.byteLength;
  if (info.shared) {
    throw new EncodeError('ERR_MP_UNSUPPORTED_TYPE', 'a view that ends at the end of a growable SharedArrayBuffer may track its length, which cannot be read without growing the buffer for good; pickle the SharedArrayBuffer and make the view on the receiver');
  }
  const ab = p.buffer as ArrayBuffer & { resize(n: number): void };
  const lengthNow = (): number => (p.kind === T.V_DATAVIEW ? dvByteLength : taByteLength).call(v) as number;
  if (info.maxByteLength - len >= bpe) {
    ab.resize(len + bpe);
    const grown = lengthNow();
    ab.resize(len);
    return grown !== p.byteLength;
  }
  if (p.byteLength < bpe) return false; // an empty view at the end: fixed and tracking behave alike
  const tail = new Uint8Array(ab, len - bpe, bpe).slice();
  ab.resize(len - bpe);
  const shrunk = lengthNow();
  ab.resize(len);
  new Uint8Array(ab, len - bpe, bpe).set(tail);
  return shrunk === p.byteLength - bpe;
}

/**
 * Claims a buffer for travel beside the payload (a `postMessage` transfer list, a shared buffer): returns its index
 * in the list the loader will get as `outOfBand`, or undefined to keep it in the payload.
 */
export type OutOfBand = (buffer: ArrayBufferLike) => number | undefined;

/** The encoder's side: slots for buffers, records for views, and the table bytes at the end. */
export class BufferTable {
  readonly #slots = new Map<ArrayBufferLike, number>();
  readonly #buffers: ArrayBufferLike[] = [];
  readonly #info: BufferInfo[] = [];
  readonly #whole: boolean[] = [];
  /** Per slot, the byte ranges its views cover, as [start, end, start, end, ...]. */
  readonly #ranges: number[][] = [];
  readonly #views: number[] = []; // kind, flags, slot, byteOffset, length per view
  /** Per slot, its index in the out-of-band list, or -1 when its bytes are in the payload. */
  readonly #oob: number[] = [];
  readonly #outOfBand: OutOfBand | undefined;
  #layout: { base: number[]; size: number[] } | undefined;
  #metaCache: { heads: Uint8Array[]; views: Uint8Array; size: number } | undefined;

  constructor(outOfBand?: OutOfBand) {
    this.#outOfBand = outOfBand;
  }

  get empty(): boolean {
    return this.#buffers.length === 0;
  }

  #slot(b: ArrayBufferLike): number {
    let slot = this.#slots.get(b);
    if (slot === undefined) {
      const info = bufferInfo(b);
      slot = this.#buffers.length;
      this.#slots.set(b, slot);
      this.#buffers.push(b);
      this.#info.push(info);
      const oob = this.#outOfBand?.(b);
      const index = typeof oob === 'number' && Number.isInteger(oob) && oob >= 0 ? oob : -1;
      this.#oob.push(index);
      // An out-of-band buffer travels whole (it is the buffer itself), so its views keep their offsets.
      this.#whole.push(info.resizable || index >= 0);
      this.#ranges.push([]);
    }
    return slot;
  }

  /** A buffer the graph reaches directly: it travels whole. Returns its slot. @throws ERR_MP_UNSUPPORTED_TYPE (detached) */
  addBuffer(b: ArrayBufferLike): number {
    const slot = this.#slot(b);
    this.#whole[slot] = true;
    return slot;
  }

  /** A view: returns its index among the table's views. @throws ERR_MP_UNSUPPORTED_TYPE (detached, growable shared) */
  addView(v: ArrayBufferView, p: ViewParts): number {
    const slot = this.#slot(p.buffer);
    const tracking = tracksLength(v, p, this.#info[slot]!);
    this.#ranges[slot]!.push(p.byteOffset, p.byteOffset + p.byteLength);
    this.#views.push(p.kind, tracking ? T.VF_TRACKING : 0, slot, p.byteOffset, p.length);
    return this.#views.length / 5 - 1;
  }

  #computeLayout(): { base: number[]; size: number[] } {
    const base: number[] = [];
    const size: number[] = [];
    for (let s = 0; s < this.#buffers.length; s++) {
      if (this.#whole[s]) {
        base.push(0);
        size.push(this.#info[s]!.byteLength);
        continue;
      }
      const r = this.#ranges[s]!;
      let lo = Infinity;
      let hi = 0;
      for (let i = 0; i < r.length; i += 2) {
        lo = Math.min(lo, r[i]!);
        hi = Math.max(hi, r[i + 1]!);
      }
      // The span starts at a multiple of 8, so every view (up to 8-byte elements) stays aligned.
      const start = lo - (lo % 8);
      base.push(start);
      size.push(hi - start);
    }
    return { base, size };
  }

  /** The table without the buffers' bytes: a header per buffer, then the views. Written in `write`. */
  #meta(): { heads: Uint8Array[]; views: Uint8Array; size: number } {
    if (this.#metaCache) return this.#metaCache;
    const { base, size } = (this.#layout ??= this.#computeLayout());
    const heads: Uint8Array[] = [];
    let total = 0;
    const head = new ByteWriter(32);
    head.u8(T.T_TABLE);
    head.varint(this.#buffers.length);
    for (let s = 0; s < this.#buffers.length; s++) {
      const info = this.#info[s]!;
      const oob = this.#oob[s]!;
      head.u8((info.shared ? T.B_SHARED : 0) | (info.resizable ? T.B_RESIZABLE : 0) | (oob >= 0 ? T.B_OUT_OF_BAND : 0));
      head.varint(size[s]!);
      if (oob >= 0) head.varint(oob);
      else if (info.resizable) head.varint(info.maxByteLength);
      heads.push(u8slice.call(head.result()));
      total += head.pos + (oob >= 0 ? 0 : size[s]!);
      head.pos = 0;
    }
    const vw = new ByteWriter(16 + this.#views.length * 2);
    const vs = this.#views;
    vw.varint(vs.length / 5);
    for (let i = 0; i < vs.length; i += 5) {
      vw.u8(vs[i]!);
      vw.u8(vs[i + 1]!);
      vw.varint(vs[i + 2]!);
      vw.varint(vs[i + 3]! - base[vs[i + 2]!]!);
      vw.varint(vs[i + 4]!);
    }
    const views = vw.result();
    return (this.#metaCache = { heads, views, size: total + views.length });
  }

  /** Byte size of the table. */
  byteSize(): number {
    return this.#meta().size;
  }

  /** Writes the table at `pos` of `out` (which has room for `byteSize()`), copying each buffer's bytes once. */
  write(out: Uint8Array, pos: number): number {
    const { heads, views } = this.#meta();
    const { base, size } = this.#layout!;
    for (let s = 0; s < this.#buffers.length; s++) {
      out.set(heads[s]!, pos);
      pos += heads[s]!.length;
      if (this.#oob[s]! >= 0) continue;
      const n = size[s]!;
      const src = new Uint8Array(this.#buffers[s]!, base[s]!, n);
      if (this.#whole[s]) {
        out.set(src, pos);
      } else {
        // Only the bytes some view covers: the rest of a pool belongs to other allocations.
        const dst = out.subarray(pos, pos + n);
        dst.fill(0);
        const r = this.#ranges[s]!;
        for (let i = 0; i < r.length; i += 2) {
          const a = r[i]! - base[s]!;
          const b = r[i + 1]! - base[s]!;
          if (b > a) dst.set(src.subarray(a, b), a);
        }
      }
      pos += n;
    }
    out.set(views, pos);
    return pos + views.length;
  }
}

/** The decoder's side: buffers made from the table, and the views' records (views are made when the body names them). */
export class LoadedTable {
  constructor(
    readonly buffers: ArrayBufferLike[],
    readonly views: number[],
  ) {}

  get viewCount(): number {
    return this.views.length / 5;
  }

  /** Makes view `i` (checked when the table was read). */
  view(i: number): ArrayBufferView {
    const vs = this.views;
    const kind = vs[i * 5]!;
    const tracking = (vs[i * 5 + 1]! & T.VF_TRACKING) !== 0;
    const buffer = this.buffers[vs[i * 5 + 2]!]!;
    const off = vs[i * 5 + 3]!;
    const len = tracking ? undefined : vs[i * 5 + 4]!;
    if (kind === T.V_BUFFER) {
      if (!tracking) return Buffer.from(buffer as ArrayBuffer, off, len);
      return Object.setPrototypeOf(new Uint8Array(buffer, off), Buffer.prototype) as Buffer;
    }
    if (kind === T.V_DATAVIEW) return new DataView(buffer, off, len);
    return new ctors[kind]!(buffer, off, len);
  }
}

/**
 * Reads the table at the reader's position (its T_TABLE tag already consumed); `outOfBand` holds the buffers that
 * travelled beside the payload. @throws DecodeError
 */
export function readTable(r: ByteReader, outOfBand?: readonly ArrayBufferLike[]): LoadedTable {
  const buffers: ArrayBufferLike[] = [];
  const n = r.count(2);
  for (let s = 0; s < n; s++) {
    const at = r.pos;
    const flags = r.u8();
    if (flags & ~(T.B_SHARED | T.B_RESIZABLE | T.B_OUT_OF_BAND)) r.fail('ERR_MP_BAD_VALUE', `unknown buffer flags 0x${flags.toString(16)}`, at);
    const len = r.varint();
    if (flags & T.B_OUT_OF_BAND) {
      buffers.push(outOfBandBuffer(r, flags, len, outOfBand, at));
      continue;
    }
    const max = flags & T.B_RESIZABLE ? r.varint() : len;
    if (max < len) r.fail('ERR_MP_BAD_VALUE', `buffer maxByteLength ${max} is below its length ${len}`, at);
    const bytes = r.span(len);
    let b: ArrayBufferLike;
    try {
      const options = flags & T.B_RESIZABLE ? { maxByteLength: max } : undefined;
      if (flags & T.B_SHARED) {
        b = new (SharedArrayBuffer as unknown as new (n: number, o?: object) => SharedArrayBuffer)(len, options);
      } else if (options) {
        b = new (ArrayBuffer as unknown as new (n: number, o?: object) => ArrayBuffer)(len, options);
      } else {
        // One copy. A large one goes into uninitialized memory (no zero-filling first); allocUnsafeSlow is
        // never pooled, so its ArrayBuffer is exactly `len` bytes.
        if (len >= 65536) {
          const out = Buffer.allocUnsafeSlow(len);
          out.set(bytes);
          b = out.buffer;
        } else b = u8slice.call(bytes).buffer;
        buffers.push(b);
        continue;
      }
    } catch (e) {
      return r.fail('ERR_MP_BAD_VALUE', `buffer of ${len} bytes (max ${max}) cannot be created: ${(e as Error).message}`, at);
    }
    new Uint8Array(b).set(bytes);
    buffers.push(b);
  }
  const count = r.count(5);
  const views: number[] = new Array(count * 5);
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    const kind = r.u8();
    const flags = r.u8();
    const slot = r.varint();
    const off = r.varint();
    const len = r.varint();
    if (kind >= T.VIEW_KINDS.length) r.fail('ERR_MP_BAD_VALUE', `unknown view kind ${kind}`, at);
    if (flags & ~T.VF_TRACKING) r.fail('ERR_MP_BAD_VALUE', `unknown view flags 0x${flags.toString(16)}`, at);
    const b = buffers[slot];
    if (b === undefined) r.fail('ERR_MP_BAD_REF', `view of buffer #${slot}, which does not exist`, at);
    const size = b.byteLength;
    const bpe = bytesPerElement[kind]!;
    if (off % bpe !== 0) r.fail('ERR_MP_BAD_VALUE', `${T.VIEW_KINDS[kind]} offset ${off} is not a multiple of ${bpe}`, at);
    if (flags & T.VF_TRACKING) {
      if (!(types.isSharedArrayBuffer(b) ? (b as unknown as { growable: boolean }).growable : (b as ArrayBuffer).resizable) || off > size) {
        r.fail('ERR_MP_BAD_VALUE', 'a length-tracking view needs a resizable buffer it starts inside', at);
      }
    } else if (off > size || len > (size - off) / bpe) {
      r.fail('ERR_MP_BAD_VALUE', `${T.VIEW_KINDS[kind]} of ${len} elements at ${off} runs past its ${size}-byte buffer`, at);
    }
    views[i * 5] = kind;
    views[i * 5 + 1] = flags;
    views[i * 5 + 2] = slot;
    views[i * 5 + 3] = off;
    views[i * 5 + 4] = len;
  }
  return new LoadedTable(buffers, views);
}

/** An out-of-band buffer record: its index in the loader's list, checked against the kind and length recorded. */
function outOfBandBuffer(r: ByteReader, flags: number, len: number, list: readonly ArrayBufferLike[] | undefined, at: number): ArrayBufferLike {
  const index = r.varint();
  const b = list?.[index];
  if (b === undefined) {
    return r.fail('ERR_MP_OUT_OF_BAND_MISSING', `buffer #${index} travels beside the payload, and loads was not given it (pass the transferred buffers as the outOfBand option)`, at);
  }
  const shared = types.isSharedArrayBuffer(b);
  if (!shared && !types.isArrayBuffer(b)) r.fail('ERR_MP_BAD_VALUE', `out-of-band buffer #${index} is not an ArrayBuffer or SharedArrayBuffer`, at);
  if (shared !== ((flags & T.B_SHARED) !== 0)) r.fail('ERR_MP_BAD_VALUE', `out-of-band buffer #${index} should ${shared ? 'not ' : ''}be a SharedArrayBuffer`, at);
  const size = b.byteLength;
  // A growable shared buffer may have grown since it was sent; any other must have the length recorded.
  const fits = (flags & T.B_RESIZABLE) !== 0 && shared ? size >= len : size === len;
  if (!fits) r.fail('ERR_MP_BAD_VALUE', `out-of-band buffer #${index} has ${size} bytes, the payload expects ${len}`, at);
  return b;
}
