/** The key half of the decoder: property keys, the string table, references, and typed errors from restores. */
import { DecodeError, ModulePickleError } from '../errors.ts';
import { PENDING } from './decode-frames.ts';
import type { ByteReader } from './reader.ts';
import { wellKnownSymbols } from './symbols.ts';
import * as T from './tags.ts';

/** Reads keys and references; shared by the decoder's halves. @throws DecodeError ERR_MP_BAD_REF, ERR_MP_BAD_VALUE */
export abstract class KeyDecoder {
  readonly r: ByteReader;

  constructor(r: ByteReader) {
    this.r = r;
  }
  protected readonly objs: unknown[] = [];
  protected readonly strings: string[] = [];

  protected ref(at: number): unknown {
    const id = this.r.varint();
    if (id >= this.objs.length) this.r.fail('ERR_MP_BAD_REF', `reference to object #${id}, which does not exist`, at);
    const v = this.objs[id];
    if (v === PENDING) this.r.fail('ERR_MP_BAD_REF', `reference to object #${id} before it was created`, at);
    return v;
  }

  /** A property key: a string (interned in the payload's string table) or a symbol. */
  key(): string | symbol {
    const r: ByteReader = this.r;
    const at = r.pos;
    const tag = r.u8();
    if (tag >= T.T_FIXSTR && tag < T.T_FIXINT) return this.intern(r.utf8(tag - T.T_FIXSTR));
    switch (tag) {
      case T.T_STR8:
        return this.intern(r.utf8(r.varint()));
      case T.T_STR16:
        return this.intern(r.utf16(r.varint()));
      case T.T_STRREF: {
        const idx = r.varint();
        const s = this.strings[idx];
        if (s === undefined) r.fail('ERR_MP_BAD_REF', `string table index ${idx} does not exist`, at);
        return s;
      }
      case T.T_SYMBOL_REG:
        return Symbol.for(this.stringKey());
      case T.T_SYMBOL_WK: {
        const name = this.stringKey();
        const s = wellKnownSymbols.get(name);
        if (s === undefined) r.fail('ERR_MP_BAD_VALUE', `unknown well-known symbol Symbol.${name}`, at);
        return s;
      }
      case T.T_SYMBOL_UNIQUE: {
        const id = this.objs.length;
        this.objs.push(PENDING);
        const s = Symbol(this.description(at));
        this.objs[id] = s;
        return s;
      }
      case T.T_REF: {
        const v = this.ref(at);
        if (typeof v !== 'symbol') r.fail('ERR_MP_BAD_VALUE', 'a property key must be a string or a symbol', at);
        return v;
      }
      default:
        return r.fail('ERR_MP_BAD_VALUE', `a property key must be a string or a symbol, found tag 0x${tag.toString(16)}`, at);
    }
  }

  /** A unique symbol's description: a string or undefined (never a container, so it needs no frame). */
  protected description(at: number): string | undefined {
    const r: ByteReader = this.r;
    const tag = r.u8();
    if (tag === T.T_UNDEFINED) return undefined;
    if (tag >= T.T_FIXSTR && tag < T.T_FIXINT) return r.utf8(tag - T.T_FIXSTR);
    if (tag === T.T_STR8) return r.utf8(r.varint());
    if (tag === T.T_STR16) return r.utf16(r.varint());
    return r.fail('ERR_MP_BAD_VALUE', 'symbol description must be a string', at);
  }

  protected intern(s: string): string {
    this.strings.push(s);
    return s;
  }

  protected stringKey(): string {
    const at = this.r.pos;
    const k = this.key();
    if (typeof k !== 'string') this.r.fail('ERR_MP_BAD_VALUE', 'expected a string', at);
    return k;
  }

  protected restoring<R>(at: number, what: string, f: () => R): R {
    try {
      return f();
    } catch (e) {
      if (e instanceof ModulePickleError) throw e;
      throw new DecodeError('ERR_MP_BAD_VALUE', `${what} failed: ${(e as Error)?.message ?? String(e)}`, at, { cause: e });
    }
  }
}
