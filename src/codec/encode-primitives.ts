/** The primitive half of the encoder: the byte writer, the memo of ids, interned keys, numbers, bigints, symbols. */
import * as T from './tags.ts';
import { wellKnownSymbolNames } from './symbols.ts';
import { ByteWriter } from './writer.ts';

/** Writes primitives and keys into the payload's byte writer. */
export class PrimitiveEncoder {
  readonly w = new ByteWriter();
  /** Id of every object (and unique symbol) written so far, in first-visit order (the loader counts alike). */
  protected readonly memo = new Map<unknown, number>();
  protected nextId = 0;
  protected readonly strings = new Map<string, number>();

  /** Writes a property key (interned string or symbol). */
  key(k: string | symbol): void {
    if (typeof k === 'symbol') return this.symbol(k);
    const idx = this.strings.get(k);
    if (idx !== undefined) {
      this.w.u8(T.T_STRREF);
      this.w.varint(idx);
      return;
    }
    this.strings.set(k, this.strings.size);
    this.w.string(k, T.T_FIXSTR, T.FIXSTR_MAX, T.T_STR8, T.T_STR16);
  }

  protected number(n: number): void {
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

  protected bigint(v: bigint): void {
    const neg = v < 0n;
    let hex = (neg ? -v : v).toString(16);
    if (hex === '0') hex = '';
    if (hex.length & 1) hex = '0' + hex;
    const bytes = Buffer.from(hex, 'hex');
    this.w.u8(neg ? T.T_BIGINT_NEG : T.T_BIGINT_POS);
    this.w.varint(bytes.length);
    this.w.bytes(bytes);
  }

  protected symbol(s: symbol): void {
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
    const id = this.memo.get(s);
    if (id !== undefined) {
      this.w.u8(T.T_REF);
      return this.w.varint(id);
    }
    this.memo.set(s, this.nextId++);
    this.w.u8(T.T_SYMBOL_UNIQUE);
    const d = s.description;
    if (d === undefined) this.w.u8(T.T_UNDEFINED);
    else this.w.string(d, T.T_FIXSTR, T.FIXSTR_MAX, T.T_STR8, T.T_STR16);
  }
}
