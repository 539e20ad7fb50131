/** A growable byte buffer with the primitive writes of the wire format. */
import { Buffer } from 'node:buffer';

/** Strings from this length on are copied by `utf8Write` (measured on Node 20: faster than a JS loop from 16 ASCII chars). */
const NATIVE_COPY_MIN = 16;

/** Appends to a Buffer that doubles when full; `result()` is a view of what was written. */
export class ByteWriter {
  buf: Buffer;
  pos = 0;

  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(b: number): void {
    if (this.pos >= this.buf.length) this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** Unsigned LEB128 of a non-negative safe integer. */
  varint(n: number): void {
    this.ensure(8);
    const buf = this.buf;
    while (n > 0x7f) {
      buf[this.pos++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    buf[this.pos++] = n;
  }

  f64(x: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(x, this.pos);
    this.pos += 8;
  }

  bytes(src: Uint8Array): void {
    this.ensure(src.length);
    this.buf.set(src, this.pos);
    this.pos += src.length;
  }

  /**
   * Writes a string as tag + length + bytes. Well-formed strings go as UTF-8 (those of at most `fixMax` bytes in a
   * one-byte tag with the length inside), strings with lone surrogates as UTF-16LE. Strings under NATIVE_COPY_MIN code
   * units take an inline ASCII copy, falling back to `utf8Write` at the first non-ASCII character.
   */
  string(s: string, fixTag: number, fixMax: number, tag8: number, tag16: number): void {
    const len = s.length;
    if (len >= NATIVE_COPY_MIN && len <= 127) return this.#utf8Short(s, fixTag, fixMax, tag8, tag16);
    if (len <= 127) {
      this.ensure(len * 3 + 3);
      const buf = this.buf;
      const start = this.pos;
      let p = start + (len <= fixMax ? 1 : 2);
      for (let i = 0; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) {
          p = -1;
          break;
        }
        buf[p++] = c;
      }
      if (p >= 0) {
        if (len <= fixMax) buf[start] = fixTag + len;
        else {
          buf[start] = tag8;
          buf[start + 1] = len;
        }
        this.pos = p;
        return;
      }
      return this.#utf8Short(s, fixTag, fixMax, tag8, tag16);
    }
    if (!s.isWellFormed()) return this.#utf16(s, tag16);
    const n = Buffer.byteLength(s, 'utf8');
    this.u8(tag8);
    this.varint(n);
    this.ensure(n);
    this.buf.utf8Write(s, this.pos, n);
    this.pos += n;
  }

  /**
   * A string of at most 127 code units in one `utf8Write`, which writes exactly `len` bytes if and only if the string
   * is ASCII (a lone surrogate becomes three bytes). Else the string is checked, and its bytes moved after the real
   * header or rewritten as UTF-16.
   */
  #utf8Short(s: string, fixTag: number, fixMax: number, tag8: number, tag16: number): void {
    const len = s.length;
    this.ensure(len * 3 + 3);
    const buf = this.buf;
    const start = this.pos;
    const at = start + (len <= fixMax ? 1 : 2);
    const n = buf.utf8Write(s, at);
    if (n !== len && !s.isWellFormed()) return this.#utf16(s, tag16);
    if (n <= fixMax) {
      // Only when len <= fixMax too, so the bytes are at start + 1.
      buf[start] = fixTag + n;
      this.pos = start + 1 + n;
      return;
    }
    // n <= 381: a one- or two-byte length goes between the tag and the bytes.
    const head = n < 128 ? 2 : 3;
    if (at !== start + head) buf.copyWithin(start + head, at, at + n);
    buf[start] = tag8;
    if (n < 128) buf[start + 1] = n;
    else {
      buf[start + 1] = (n & 0x7f) | 0x80;
      buf[start + 2] = n >>> 7;
    }
    this.pos = start + head + n;
  }

  #utf16(s: string, tag16: number): void {
    this.u8(tag16);
    this.varint(s.length);
    this.ensure(s.length * 2);
    this.buf.ucs2Write(s, this.pos, s.length * 2);
    this.pos += s.length * 2;
  }

  /** The bytes written so far (a view, not a copy). */
  result(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

declare module 'node:buffer' {
  interface Buffer {
    utf8Write(s: string, offset?: number, length?: number): number;
    ucs2Write(s: string, offset?: number, length?: number): number;
    utf8Slice(start: number, end: number): string;
    latin1Slice(start: number, end: number): string;
    ucs2Slice(start: number, end: number): string;
  }
}
