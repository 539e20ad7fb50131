/**
 * Bytes -> value graph. Every length is checked against the bytes left; every failure is a typed DecodeError.
 * The walk is iterative (an explicit stack of frames), so a deep payload meets `maxDepth`, never the JS stack.
 */
import { readTable, type LoadedTable } from './buffers.ts';
import { D_DENSE, D_INDICES, D_MAP, D_PROPS, D_REDUCE, D_SET, D_SHAPE, D_SIMPLE, NONE, OPEN, PENDING, W_ARGS, W_RESTORE, W_STATE, assign, copyBytes, type Frame } from './decode-frames.ts';
import { PropsDecoder } from './decode-props.ts';
import { DEFAULT_MAX_DEPTH } from './encode.ts';
import { ByteReader } from './reader.ts';
import type { Registry, RestoreContext } from './registry.ts';
import * as T from './tags.ts';

/** Options of `loads`. Layers read their own options from the same record. */
export interface LoadOptions {
  registry?: Registry;
  /** `false`: data only. Refuses, before running anything, payloads with functions, classes, modules or code. */
  code?: boolean;
  /** Maximum nesting depth in containers (default 500,000; each level costs a few hundred bytes while loading). */
  maxDepth?: number;
  /** The buffers that travelled beside the payload (see the `outOfBand` dumps option), in the encoder's order. */
  outOfBand?: readonly ArrayBufferLike[];
  [option: string]: unknown;
}

const { defineProperty } = Object;

/** Loads one payload's value stream. @throws DecodeError (every code of `loads`) */
export class Decoder extends PropsDecoder implements RestoreContext {
  readonly options: LoadOptions;
  #scratch: Map<unknown, unknown> | undefined;
  readonly #registry: Registry;
  readonly #allowCode: boolean;
  readonly #shapes: (string | symbol)[][] = [];
  #table: LoadedTable | undefined;

  constructor(r: ByteReader, registry: Registry, options: LoadOptions) {
    super(r, options.maxDepth ?? DEFAULT_MAX_DEPTH);
    this.#registry = registry;
    this.options = options;
    this.#allowCode = options.code !== false;
  }

  get scratch(): Map<unknown, unknown> {
    return (this.#scratch ??= new Map());
  }

  /** Decodes one complete value (a value stream may start with the buffer table). */
  value(): unknown {
    const r: ByteReader = this.r;
    if (this.top === 0 && this.#table === undefined && r.pos < r.end && r.buf[r.pos] === T.T_TABLE) {
      r.pos++;
      this.#table = readTable(r, this.options.outOfBand);
    }
    const base = this.top;
    const v = this.read();
    return v === OPEN ? this.#run(base) : v;
  }

  #run(base: number): unknown {
    const frames = this.frames;
    let incoming: unknown = NONE;
    for (;;) {
      const f = frames[this.top - 1]!;
      const out = this.#step(f, incoming);
      if (out === OPEN) {
        incoming = NONE;
        continue;
      }
      this.top--;
      if (this.top === base) return out;
      incoming = out;
    }
  }

  /** Reads a primitive or a reference, or begins a container: then returns OPEN with its frame pushed. */
  protected read(): unknown {
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
        return this.ref(at);
      case T.T_BYTES: {
        const n = r.varint();
        return copyBytes(r.span(n));
      }
      case T.T_OBJECT_SIMPLE: {
        const obj = {};
        this.objs.push(obj);
        const n = r.count(2);
        if (n === 0) return obj;
        this.push(D_SIMPLE, obj, at).n = n;
        return OPEN;
      }
      case T.T_SHAPE_DEF: {
        const obj = {};
        this.objs.push(obj);
        const n = r.count(2);
        const keys: (string | symbol)[] = new Array(n);
        for (let i = 0; i < n; i++) keys[i] = this.key();
        this.#shapes.push(keys);
        const f = this.push(D_SHAPE, obj, at);
        f.keys = keys;
        f.n = n;
        return OPEN;
      }
      case T.T_SHAPE: {
        const id = r.varint();
        const keys = this.#shapes[id];
        if (keys === undefined) r.fail('ERR_MP_BAD_REF', `object of shape #${id}, which is not defined`, at);
        const obj = {};
        this.objs.push(obj);
        const f = this.push(D_SHAPE, obj, at);
        f.keys = keys;
        f.n = keys.length;
        return OPEN;
      }
      case T.T_OBJECT: {
        const obj = {};
        this.objs.push(obj);
        this.push(D_PROPS, obj, at);
        return OPEN;
      }
      case T.T_ARRAY_DENSE: {
        const n = r.count(1);
        const arr: unknown[] = [];
        this.objs.push(arr);
        if (n === 0) return arr;
        this.push(D_DENSE, arr, at).n = n;
        return OPEN;
      }
      case T.T_ARRAY:
        return this.beginArray(at);
      case T.T_MAP: {
        const m = new Map<unknown, unknown>();
        this.objs.push(m);
        const n = r.count(2);
        if (n === 0) return m;
        this.push(D_MAP, m, at).n = n * 2;
        return OPEN;
      }
      case T.T_DATE: {
        const d = new Date(r.f64());
        this.objs.push(d);
        return d;
      }
      case T.T_SET: {
        const s = new Set<unknown>();
        this.objs.push(s);
        const n = r.count(1);
        if (n === 0) return s;
        this.push(D_SET, s, at).n = n;
        return OPEN;
      }
      case T.T_VIEW:
      case T.T_BUFFER: {
        const i = r.varint();
        const t = this.#table;
        const count = t === undefined ? 0 : tag === T.T_VIEW ? t.viewCount : t.buffers.length;
        if (i >= count) r.fail('ERR_MP_BAD_REF', `${tag === T.T_VIEW ? 'view' : 'buffer'} #${i} is not in the payload's buffer table`, at);
        const v = tag === T.T_VIEW ? this.restoring(at, 'creating a view', () => t!.view(i)) : t!.buffers[i]!;
        this.objs.push(v);
        this.push(D_PROPS, v, at);
        return OPEN;
      }
      case T.T_REDUCE: {
        const flags = r.u8();
        const f = this.push(D_REDUCE, Object.prototype, at);
        f.flags = flags;
        f.id = this.objs.length;
        this.objs.push(PENDING);
        f.reducer = undefined;
        return OPEN;
      }
      default:
        return r.fail('ERR_MP_BAD_TAG', `unknown tag 0x${tag.toString(16)}: the payload is corrupt or from a newer format`, at);
    }
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
          const v = this.read();
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
          const v = this.read();
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
          const v = this.read();
          if (v === OPEN) return OPEN;
          assign(obj, k, v);
        }
        return obj;
      }
      case D_MAP: {
        // Odd steps read a key (kept in f.value), even steps its value.
        const m = f.obj as Map<unknown, unknown>;
        if (incoming !== NONE) {
          if (f.i & 1) f.value = incoming;
          else m.set(f.value, incoming);
        }
        const n = f.n;
        while (f.i < n) {
          f.i++;
          const v = this.read();
          if (v === OPEN) return OPEN;
          if (f.i & 1) f.value = v;
          else m.set(f.value, v);
        }
        f.value = undefined;
        return m;
      }
      case D_SET: {
        const set = f.obj as Set<unknown>;
        if (incoming !== NONE) set.add(incoming);
        const n = f.n;
        while (f.i < n) {
          f.i++;
          const v = this.read();
          if (v === OPEN) return OPEN;
          set.add(v);
        }
        return set;
      }
      case D_PROPS:
        return this.stepProps(f, incoming);
      case D_INDICES:
        return this.stepIndices(f, incoming);
      default:
        return this.#stepReduce(f, incoming);
    }
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
            v = this.read();
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
          const name = this.stringKey();
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
        v = this.read();
        if (v === OPEN) return OPEN;
        continue;
      }
      if (f.phase === 1) {
        // The value exists (delivered args were restored above).
        f.phase = 2;
        if (f.flags & T.R_STATE) {
          f.want = W_STATE;
          v = this.read();
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
        return this.stepProps(f, NONE);
      }
      return value;
    }
  }

  #restoreValue(f: Frame, args: unknown): void {
    const at = f.at;
    let value: unknown;
    const reducer = f.reducer;
    if (reducer) {
      value = this.restoring(at, `reducer '${reducer.name}'`, () => reducer.restore(args, this));
    } else {
      if (!Array.isArray(args)) this.r.fail('ERR_MP_BAD_VALUE', 'restore arguments must be an array', at);
      const fn = f.restore as (...a: unknown[]) => unknown;
      const list: unknown[] = args;
      value = this.restoring(at, `restore function ${fn.name}`, () => fn(...list));
    }
    f.value = value;
    this.objs[f.id] = value;
  }

  #applyState(f: Frame, state: unknown): void {
    const reducer = f.reducer;
    const value = f.value;
    if (reducer) {
      if (reducer.setState) this.restoring(f.at, `reducer '${reducer.name}' setState`, () => reducer.setState!(value as object, state, this));
    } else if (state !== null && typeof state === 'object' && typeof value === 'object' && value !== null) {
      for (const k of Reflect.ownKeys(state)) {
        defineProperty(value, k, { value: (state as Record<string | symbol, unknown>)[k], writable: true, enumerable: true, configurable: true });
      }
    }
  }

  #refuseCode(at: number, why: string): never {
    this.r.fail('ERR_MP_CODE_REFUSED', `payload carries code (${why}) and loads was called with { code: false }`, at);
  }
}
