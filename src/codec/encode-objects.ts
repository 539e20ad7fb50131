/**
 * The container half of the encoder: plain objects (by shape), arrays, binary data and the shared object tail,
 * each proven plain by its descriptors before it takes a short form. The driver and dispatch are in encode.ts.
 */
import { types } from 'node:util';
import { EncodeError, type PathSegment } from '../errors.ts';
import { BufferTable, viewParts, viewProtos, type OutOfBand } from './buffers.ts';
import {
  CTOR_SEG, EMPTY, F_ENTRIES, F_INDICES, F_MAP, F_PROPS, F_SHAPE, F_VALUES, Frame, SHAPES_PER_KEY, attrByte, isAccessor, isDefault, ownKeys,
} from './encode-frames.ts';
import { mapEntries, mapSizeOf, setItems, setSizeOf, timeOf } from './plain-builtins.ts';
import { NAMED_KEYS_THRESHOLD, namedKeys } from './named-keys.ts';
import { PrimitiveEncoder } from './encode-primitives.ts';
import { reduceSymbol } from './registry.ts';
import { canStandForMap, isPackedPlainArray, sameMap } from './shape-proof.ts';
import * as T from './tags.ts';

const ObjectProto = Object.prototype;
const { getOwnPropertyDescriptor, getOwnPropertyNames, getOwnPropertySymbols, getPrototypeOf, isExtensible } = Object;

/**
 * A key list seen before. `ex` is the last object of that key list proven plain by its descriptors that can stand
 * for its hidden class: another object with its map and key list is plain too (see shape-proof.ts).
 */
interface Shape {
  readonly keys: (string | symbol)[];
  readonly id: number;
  ex: object | undefined;
}

/** Extensible and without own properties (Reflect.ownKeys is the fastest test for an object that has none). */
const bare = (v: object): boolean => isExtensible(v) && Reflect.ownKeys(v).length === 0;

/** Writes containers; the driver in encode.ts supplies `child`. @throws EncodeError ERR_MP_TOO_DEEP, ERR_MP_UNSUPPORTED_TYPE */
export abstract class ObjectEncoder extends PrimitiveEncoder {
  protected bufferTable: BufferTable | undefined;
  /** Claims buffers that travel beside the payload (the `outOfBand` dumps option). */
  protected outOfBand: OutOfBand | undefined;
  /** Key lists of simple objects seen so far, by first key; a shape's id is its index in definition order. */
  protected readonly shapes = new Map<string | symbol, Shape[]>();
  protected shapeCount = 0;
  /** Whether something put a `[reduceSymbol]` on Object.prototype (then every plain object must be asked). */
  protected readonly inheritedReduce = typeof (ObjectProto as Record<symbol, unknown>)[reduceSymbol] === 'function';
  protected readonly maxDepth: number;

  constructor(maxDepth: number) {
    super();
    this.maxDepth = maxDepth;
  }

  /** Writes a primitive, or begins an object: returns true when a frame was pushed for its children. */
  protected abstract child(v: unknown, seg: PathSegment): boolean;
  protected readonly frames: Frame[] = [];
  protected top = 0;
  /** One segment per object being written (frames, plus the object being dispatched); [0] is the root's. */
  protected readonly segs: PathSegment[] = [];

  /** Every buffer and view the value reaches; written before the value (see buffers.ts). */
  get buffers(): BufferTable {
    return (this.bufferTable ??= new BufferTable(this.outOfBand));
  }

  /** Whether the value reached any binary data (then the stream starts with the buffer table). */
  get hasBuffers(): boolean {
    return this.bufferTable !== undefined && !this.bufferTable.empty;
  }

  /** Pushes a frame for `obj` (whose path segment is already on the path). @throws ERR_MP_TOO_DEEP */
  protected push(kind: number, obj: object): Frame {
    if (this.top >= this.maxDepth) {
      throw new EncodeError('ERR_MP_TOO_DEEP', `value nests deeper than maxDepth (${this.maxDepth}); raise the maxDepth option or flatten the data`);
    }
    let f = this.frames[this.top];
    if (f === undefined) this.frames.push((f = new Frame()));
    this.top++;
    f.kind = kind;
    f.obj = obj;
    f.i = 0;
    f.phase = 0;
    return f;
  }

  /**
   * The reusable value list of the frame the next `push` hands out, for a container's values from the first object
   * on: one list per depth level instead of one per container. Only the slots from the frame's `i` on are read.
   */
  protected spare(): unknown[] {
    let f = this.frames[this.top];
    if (f === undefined) this.frames.push((f = new Frame()));
    return f.spare;
  }

  protected stepProps(f: Frame): boolean {
    const w = this.w;
    if (f.phase === 0) {
      f.phase = 1;
      w.u8(f.flags);
      if (f.flags & T.O_PROTO && this.child(f.proto, CTOR_SEG)) return false;
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
        if (this.child(descs[f.i - 1]!.set, { label: `[set ${String(k)}]` })) return false;
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
          if (this.child(d.get, { label: `[get ${String(k)}]` })) return false;
          continue;
        }
      }
      if (this.child(d.value, k)) return false;
    }
    return true;
  }

  protected stepIndices(f: Frame): boolean {
    const w = this.w;
    const keys = f.keys;
    const descs = f.vals as PropertyDescriptor[];
    while (f.pendingSet || f.i < f.n) {
      if (f.pendingSet) {
        f.pendingSet = false;
        if (this.child(descs[f.i - 1]!.set, { label: `[set ${Number(keys[f.i - 1])}]` })) return false;
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
          if (this.child(d.get, { label: `[get ${idx}]` })) return false;
          continue;
        }
      }
      if (this.child(d.value, idx)) return false;
    }
    // The indices are written: the same frame goes on with the array's tail.
    this.tailFrame(f, f.obj, f.proto as object | null, f.tailKeys, f.tailDescs, f.flags);
    return false;
  }

  /** A TypedArray, DataView or Buffer: its record in the buffer table, then its own non-index properties. */
  protected view(v: ArrayBufferView, proto: object | null): void {
    const p = viewParts(v, proto);
    const index = this.buffers.addView(v, p);
    this.memo.set(v, this.nextId++);
    this.w.u8(T.T_VIEW);
    this.w.varint(index);
    const keys: (string | symbol)[] = p.kind === T.V_DATAVIEW ? getOwnPropertyNames(v) : namedKeys(v, p.length, false);
    this.binaryTail(v, proto === viewProtos[p.kind] ? null : proto, keys);
  }

  /** An ArrayBuffer or SharedArrayBuffer reached directly: it travels whole. */
  protected buffer(v: ArrayBufferLike, proto: object | null): void {
    const slot = this.buffers.addBuffer(v);
    this.memo.set(v, this.nextId++);
    this.w.u8(T.T_BUFFER);
    this.w.varint(slot);
    const standard = types.isSharedArrayBuffer(v) ? SharedArrayBuffer.prototype : ArrayBuffer.prototype;
    this.binaryTail(v, proto === standard ? null : proto, getOwnPropertyNames(v));
  }

  /** The tail of binary data: two zero bytes in the common case of no own properties. */
  protected binaryTail(v: object, proto: object | null, keys: (string | symbol)[]): void {
    for (const s of getOwnPropertySymbols(v)) keys.push(s);
    if (keys.length === 0 && proto === null && isExtensible(v) && getPrototypeOf(v) !== null) {
      this.w.u8(0);
      this.w.u8(0);
      return;
    }
    this.tailFrame(this.push(F_PROPS, v), v, proto, keys, keys.map((k) => getOwnPropertyDescriptor(v, k)!), 0);
  }

  /** A dense array of known-plain values. */
  protected values(obj: object, items: unknown[]): void {
    this.w.u8(T.T_ARRAY_DENSE);
    this.w.varint(items.length);
    this.children(F_VALUES, obj, EMPTY, items);
  }

  /**
   * A Map or Set with its own prototype: written natively (T_MAP/T_SET, a count and the entries) when it is
   * extensible and has no own property. Returns false, having written nothing, otherwise: then its reducer's
   * tail keeps the properties and the extensibility.
   */
  protected collection(v: Map<unknown, unknown> | Set<unknown>, isMap: boolean): boolean {
    if (!bare(v)) return false;
    this.memo.set(v, this.nextId++);
    const w = this.w;
    // The entries go into the spare list of the frame that `children` pushes, if it pushes one.
    if (isMap) {
      const m = v as Map<unknown, unknown>;
      const n = mapSizeOf(m);
      w.u8(T.T_MAP);
      w.varint(n);
      this.children(F_MAP, v, EMPTY, mapEntries(m, this.spare()), n * 2);
    } else {
      const s = v as Set<unknown>;
      const n = setSizeOf(s);
      w.u8(T.T_SET);
      w.varint(n);
      this.children(F_VALUES, v, EMPTY, setItems(s, this.spare()), n);
    }
    return true;
  }

  /** A Date with its own prototype: T_DATE and its time value when it is bare (as for `collection`), else false. */
  protected date(v: Date): boolean {
    if (!bare(v)) return false;
    this.memo.set(v, this.nextId++);
    this.w.u8(T.T_DATE);
    this.w.f64(timeOf(v));
    return true;
  }

  /**
   * Writes `vals` (children of `obj`): the leading primitives at once, and a frame for the rest only when an
   * object comes (most small objects and arrays are all primitives, so they never need a frame).
   */
  protected children(kind: number, obj: object, keys: (string | symbol)[], vals: unknown[], n = vals.length): void {
    let i = 0;
    for (; i < n; i++) {
      const v = vals[i];
      if ((typeof v === 'object' && v !== null) || typeof v === 'function') break;
      this.child(v, '');
    }
    if (i === n) return;
    const f = this.push(kind, obj);
    f.keys = keys;
    f.vals = vals;
    f.n = n;
    f.i = i;
  }

  /**
   * An object whose prototype is Object.prototype: proven plain with one descriptor read per property, then
   * written by shape. Returns false (nothing written) when it has a `[reduceSymbol]` method.
   */
  protected plain(v: object): boolean {
    const names = getOwnPropertyNames(v);
    const symbols = getOwnPropertySymbols(v);
    if ((symbols.length !== 0 || this.inheritedReduce) && typeof (v as Record<symbol, unknown>)[reduceSymbol] === 'function') return false;
    this.memo.set(v, this.nextId++);
    const keys: (string | symbol)[] = symbols.length === 0 ? names : [...names, ...symbols];
    const n = keys.length;
    if (!isExtensible(v)) return this.general(v, null, keys), true;
    const w = this.w;
    if (n === 0) {
      w.u8(T.T_OBJECT_SIMPLE);
      w.u8(0);
      return true;
    }
    const first = keys[0]!;
    let list = this.shapes.get(first);
    if (list !== undefined) {
      for (let s = 0; s < list.length; s++) {
        const shape = list[s]!;
        const sk = shape.keys;
        if (sk.length !== n) continue;
        let i = 1;
        while (i < n && sk[i] === keys[i]) i++;
        if (i === n) return this.shaped(v, shape);
      }
    }
    const vals: unknown[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const d = getOwnPropertyDescriptor(v, keys[i]!)!;
      if (d.writable !== true || d.enumerable !== true || d.configurable !== true) return this.general(v, null, keys), true;
      vals[i] = d.value;
    }
    if (list === undefined) this.shapes.set(first, (list = []));
    if (list.length >= SHAPES_PER_KEY) {
      w.u8(T.T_OBJECT_SIMPLE);
      w.varint(n);
      const f = this.push(F_ENTRIES, v);
      f.keys = keys;
      f.vals = vals;
      f.n = n;
      return true;
    }
    list.push({ keys, id: this.shapeCount++, ex: canStandForMap(v) ? v : undefined });
    // A shape definition lists its keys first, then its values.
    w.u8(T.T_SHAPE_DEF);
    w.varint(n);
    for (let i = 0; i < n; i++) this.key(keys[i]!);
    this.children(F_SHAPE, v, keys, vals);
    return true;
  }

  /**
   * An object of a known shape: proven plain by its hidden class when it has the map of the shape's exemplar, else
   * each property proven a default data property while its value is written (primitives at once, the rest from
   * the first object on by a frame). A property that is not plain rewinds the writer and takes the general form.
   */
  protected shaped(v: object, shape: Shape): true {
    const w = this.w;
    const keys = shape.keys;
    const n = keys.length;
    const start = w.pos;
    w.u8(T.T_SHAPE);
    w.varint(shape.id);
    if (shape.ex !== undefined && sameMap(v, shape.ex)) {
      const o = v as Record<string | symbol, unknown>;
      const vals = this.spare();
      for (let i = 0; i < n; i++) vals[i] = o[keys[i]!];
      this.children(F_SHAPE, v, keys, vals, n);
      return true;
    }
    let vals: unknown[] | undefined;
    let from = n;
    for (let i = 0; i < n; i++) {
      const d = getOwnPropertyDescriptor(v, keys[i]!)!;
      if (d.writable !== true || d.enumerable !== true || d.configurable !== true) {
        w.pos = start;
        this.general(v, null, keys);
        return true;
      }
      const x = d.value;
      if (vals === undefined) {
        // Primitives other than symbols have no side effect on the encoder, so the rewind above stays exact.
        const t = typeof x;
        if (x === null || (t !== 'object' && t !== 'function' && t !== 'symbol')) {
          this.child(x, '');
          continue;
        }
        vals = this.spare();
        from = i;
      }
      vals[i] = x;
    }
    // Proven by its descriptors: it stands for its map from now on (the map may be the exemplar's successor).
    if (canStandForMap(v)) shape.ex = v;
    if (vals !== undefined) {
      const f = this.push(F_SHAPE, v);
      f.keys = keys;
      f.vals = vals;
      f.n = n;
      f.i = from;
    }
    return true;
  }

  /** Null-prototype objects and instances (proto given): simple when they can be, else the general form. */
  protected plainObject(v: object, proto: object | null): void {
    this.memo.set(v, this.nextId++);
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
        const f = this.push(F_ENTRIES, v);
        f.keys = keys;
        f.vals = vals;
        f.n = n;
        return;
      }
    }
    this.general(v, proto, keys);
  }

  /** T_OBJECT: flags, [prototype], properties with attributes. */
  protected general(v: object, proto: object | null, keys: (string | symbol)[]): void {
    this.w.u8(T.T_OBJECT);
    this.tailFrame(this.push(F_PROPS, v), v, proto, keys, keys.map((k) => getOwnPropertyDescriptor(v, k)!), 0);
  }

  /**
   * Sets `f` up to write the part every non-simple object shares: object flags, the prototype when it is not
   * the default one, the own properties (with attributes when any is not the default) and extensibility.
   */
  protected tailFrame(f: Frame, v: object, proto: object | null, keys: (string | symbol)[], descs: PropertyDescriptor[], extraFlags: number): void {
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

  protected array(v: unknown[], proto: object | null): void {
    this.memo.set(v, this.nextId++);
    const len = v.length;
    const w = this.w;
    if (proto === null && isPackedPlainArray(v)) {
      // Proven plain by its map: no hole, no other key, every element a default data property.
      w.u8(T.T_ARRAY_DENSE);
      w.varint(len);
      const vals = this.spare();
      for (let i = 0; i < len; i++) vals[i] = v[i];
      this.children(F_VALUES, v, EMPTY, vals, len);
      return;
    }
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
              this.child(x, '');
              continue;
            }
            vals = this.spare();
            from = i;
          }
          vals[i] = x;
        }
        if (i === len) {
          if (vals !== undefined) {
            const f = this.push(F_VALUES, v);
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
    const f = this.push(F_INDICES, v);
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
}
