/**
 * Decodes a payload without running any of it: the codec's own reader and decoder, with a registry whose every
 * reducer records its name and arguments instead of restoring (so no function is rebuilt, no module imported, no
 * tree materialized). Section data is plain data and is decoded as such.
 */
import { ByteReader } from '../codec/reader.ts';
import { Decoder } from '../codec/decode.ts';
import { Registry, type Reducer } from '../codec/registry.ts';
import * as T from '../codec/tags.ts';
import { DecodeError } from '../errors.ts';

/** One reduced value met in the body: the reducer's wire name, its arguments and state (as decoded data). */
export interface Reduced {
  readonly reducer: string;
  readonly args: unknown;
  state?: unknown;
}

/** What the walker found. */
export interface Walked {
  readonly formatVersion: number;
  readonly hasCode: boolean;
  readonly sections: { readonly name: string; readonly code: boolean; readonly bytes: number; readonly data: unknown }[];
  readonly bodyBytes: number;
  /** Every reduced value, in decode order. */
  readonly reduced: Reduced[];
  /** The decoded body, with reduced values replaced by inert stubs. */
  readonly body: unknown;
}

const recordOf = new WeakMap<object, Reduced>();

/** The record behind a stub produced by the walker. */
export function reducedOf(value: unknown): Reduced | undefined {
  return (typeof value === 'function' || (typeof value === 'object' && value !== null)) ? recordOf.get(value) : undefined;
}

class RecordingRegistry extends Registry {
  readonly reduced: Reduced[] = [];
  readonly #cache = new Map<string, Reducer<object, unknown, unknown>>();
  override byName(name: string): Reducer<object, unknown, unknown> {
    let r: Reducer<object, unknown, unknown> | undefined = this.#cache.get(name);
    if (!r) {
      const list = this.reduced;
      r = {
        name,
        reduce() {
          throw new DecodeError('ERR_MP_INSPECT_ONLY', 'the inspect registry only decodes');
        },
        restore(args) {
          const rec: Reduced = { reducer: name, args };
          list.push(rec);
          // An arrow function: accepts any own properties, and is callable where a restore function is expected.
          const stub = (): object => {
            const out = {};
            recordOf.set(out, { reducer: `${name}()`, args: [] });
            return out;
          };
          recordOf.set(stub, rec);
          return stub;
        },
        setState(value, state) {
          const rec = recordOf.get(value);
          if (rec) rec.state = state;
        },
      };
      this.#cache.set(name, r);
    }
    return r!;
  }
}

/** Walks a payload. @throws DecodeError for malformed input (same checks as `loads`) */
export function walkPayload(bytes: Uint8Array): Walked {
  const r = new ByteReader(bytes);
  if (bytes.length < T.HEADER_SIZE) r.fail('ERR_MP_TRUNCATED', 'payload is shorter than its header', 0);
  if (bytes[0] !== T.MAGIC[0] || bytes[1] !== T.MAGIC[1] || bytes[2] !== T.MAGIC[2]) {
    r.fail('ERR_MP_BAD_MAGIC', 'not a modulepickle payload (bad magic bytes)', 0);
  }
  const formatVersion = bytes[3]!;
  if (formatVersion !== T.FORMAT_VERSION) {
    r.fail('ERR_MP_BAD_VERSION', `payload format version ${formatVersion}; this modulepickle reads format ${T.FORMAT_VERSION}`, 3);
  }
  const hasCode = (bytes[4]! & T.HEADER_HAS_CODE) !== 0;
  r.pos = T.HEADER_SIZE;
  const registry = new RecordingRegistry();
  const decoder = new Decoder(r, registry, {});
  const sections: Walked['sections'] = [];
  const n = r.count(3);
  for (let i = 0; i < n; i++) {
    const at = r.pos;
    const flags = r.u8();
    const name = decoder.value();
    const len = r.varint();
    const span = r.span(len);
    if (typeof name !== 'string') r.fail('ERR_MP_BAD_VALUE', 'section name must be a string', at);
    const sub = new Decoder(new ByteReader(span), registry, { code: false });
    sections.push({ name: name as string, code: (flags & 0x01) !== 0, bytes: len, data: sub.value() });
  }
  const bodyStart = r.pos;
  const body = decoder.value();
  if (r.pos !== r.end) throw new DecodeError('ERR_MP_TRAILING_BYTES', `${r.end - r.pos} bytes follow the value`, r.pos);
  return { formatVersion, hasCode, sections, bodyBytes: r.end - bodyStart, reduced: registry.reduced, body };
}
