/** Bounds-checked primitive reads of the wire format. Every failure is a typed DecodeError. */
import { Buffer } from 'node:buffer';
import { DecodeError } from '../errors.ts';

/** Reads the primitive parts of the wire format with bounds checks. @throws DecodeError ERR_MP_TRUNCATED, ERR_MP_BAD_LENGTH */
export class ByteReader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;

  constructor(bytes: Uint8Array, start = 0) {
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
    this.end = bytes.byteLength;
  }

  fail(code: string, message: string, at = this.pos): never {
    throw new DecodeError(code, message, at);
  }

  truncated(): never {
    this.fail('ERR_MP_TRUNCATED', 'payload ends early: it was cut off in transit or storage');
  }

  u8(): number {
    if (this.pos >= this.end) this.truncated();
    return this.buf[this.pos++]!;
  }

  varint(): number {
    const buf = this.buf;
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.end) this.truncated();
      const b = buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    this.fail('ERR_MP_BAD_LENGTH', 'varint longer than 8 bytes');
  }

  /** A count of items that each take at least `minBytes` bytes: rejects counts the remaining bytes cannot hold. */
  count(minBytes = 1): number {
    const at = this.pos;
    const n = this.varint();
    if (n * minBytes > this.end - this.pos) {
      this.fail('ERR_MP_BAD_LENGTH', `count ${n} is larger than the ${this.end - this.pos} bytes left`, at);
    }
    return n;
  }

  f64(): number {
    if (this.pos + 8 > this.end) this.truncated();
    const x = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return x;
  }

  /** A view of the next `n` bytes (no copy). */
  span(n: number): Uint8Array {
    if (n > this.end - this.pos) this.fail('ERR_MP_BAD_LENGTH', `length ${n} runs past the end of the payload`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  utf8(n: number): string {
    if (n > this.end - this.pos) this.fail('ERR_MP_BAD_LENGTH', `string length ${n} runs past the end of the payload`);
    const start = this.pos;
    this.pos += n;
    if (n < 16) {
      const buf = this.buf;
      let s = '';
      for (let i = start; i < start + n; i++) {
        const c = buf[i]!;
        if (c >= 0x80) return buf.utf8Slice(start, start + n);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return this.buf.utf8Slice(start, start + n);
  }

  utf16(units: number): string {
    const n = units * 2;
    if (n > this.end - this.pos) this.fail('ERR_MP_BAD_LENGTH', `string length ${units} runs past the end of the payload`);
    const start = this.pos;
    this.pos += n;
    return this.buf.ucs2Slice(start, start + n);
  }
}
