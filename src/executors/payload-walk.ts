/**
 * Decodes a payload without running any of it: the codec's own reader and decoder, with a registry whose every
 * reducer records its name and arguments instead of restoring (so no function is rebuilt, no module imported, no
 * tree materialized). Section data is plain data and is decoded as such.
 */
import { decodeSectionData, readFrame } from '../codec/payload.ts';
import { Registry, type Reducer } from '../codec/registry.ts';
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

/** How many sections a payload has, from its header alone (the body is not decoded). @throws DecodeError */
export function payloadSectionCount(bytes: Uint8Array): number {
  return readFrame(bytes, new RecordingRegistry(), {}).sections.length;
}

/** Whether a payload carries code (functions, classes, modules, files): its header says. @throws DecodeError */
export function payloadHasCode(bytes: Uint8Array): boolean {
  return readFrame(bytes, new RecordingRegistry(), {}).hasCode;
}

/** Walks a payload. @throws DecodeError for malformed input (same checks as `loads`) */
export function walkPayload(bytes: Uint8Array): Walked {
  const registry = new RecordingRegistry();
  const { reader: r, decoder, hasCode, sections: framed } = readFrame(bytes, registry, {});
  const formatVersion = bytes[3]!;
  const sections: Walked['sections'] = framed.map((s) => ({ name: s.name, code: s.code, bytes: s.span.length, data: decodeSectionData(s, registry, {}) }));
  const bodyStart = r.pos;
  const body = decoder.value();
  if (r.pos !== r.end) throw new DecodeError('ERR_MP_TRAILING_BYTES', `${r.end - r.pos} bytes follow the value`, r.pos);
  return { formatVersion, hasCode, sections, bodyBytes: r.end - bodyStart, reduced: registry.reduced, body };
}
