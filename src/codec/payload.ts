/**
 * The payload: header (magic, format version, flags), sections (layers' data: module table, manifest),
 * then the value body. `dumps`/`loads` and their sync twins.
 */
import { Buffer } from 'node:buffer';
import { DecodeError, EncodeError, ModulePickleError } from '../errors.ts';
import { defaultRegistry } from './builtins.ts';
import { Decoder, type LoadOptions } from './decode.ts';
import { Encoder, type DumpOptions } from './encode.ts';
import { ByteReader } from './reader.ts';
import type { Registry, Section } from './registry.ts';
import * as T from './tags.ts';
import { keepCodecWarm } from './warm.ts';
import { ByteWriter } from './writer.ts';

const SECTION_CODE = 0x01;
keepCodecWarm();

interface EncodedSection {
  readonly section: Section;
  readonly bytes: Uint8Array;
}

function header(w: ByteWriter, hasCode: boolean): void {
  w.ensure(T.HEADER_SIZE);
  for (const b of T.MAGIC) w.u8(b);
  w.u8(T.FORMAT_VERSION);
  w.u8(hasCode ? T.HEADER_HAS_CODE : 0);
}

/** Encodes a section's data value on its own (its own memo and string table), data only. */
function encodeSectionData(enc: Encoder, data: unknown): Uint8Array {
  const sub = new Encoder(enc.registry, {});
  sub.value(data);
  if (sub.hasCode) throw new EncodeError('ERR_MP_REDUCER_FAILED', 'section data must be plain data');
  return sub.stream();
}

/** Bytes reserved before the body: the header plus a one-byte section count of zero. */
const BODY_START = T.HEADER_SIZE + 1;

function assemble(body: Encoder, sections: EncodedSection[]): Uint8Array {
  const hasCode = body.hasCode || sections.some((s) => s.section.code);
  const table = body.hasBuffers ? body.buffers.byteSize() : 0;
  if (sections.length === 0 && table === 0) {
    // Common case: write the header into the reserved bytes; no copy of the body.
    const end = body.w.pos;
    body.w.pos = 0;
    header(body.w, hasCode);
    body.w.u8(0);
    body.w.pos = end;
    return body.w.result();
  }
  const w = new ByteWriter(64);
  header(w, hasCode);
  w.varint(sections.length);
  for (const { section, bytes } of sections) {
    w.u8(section.code ? SECTION_CODE : 0);
    w.string(section.name, T.T_FIXSTR, T.FIXSTR_MAX, T.T_STR8, T.T_STR16);
    w.varint(bytes.length);
    w.bytes(bytes);
  }
  const bodyBytes = body.w.result().subarray(BODY_START);
  const out = Buffer.allocUnsafe(w.pos + table + bodyBytes.length);
  out.set(w.result(), 0);
  // The buffer table goes before the value; its bytes are copied from the buffers straight into the payload.
  const pos = table === 0 ? w.pos : body.buffers.write(out, w.pos);
  out.set(bodyBytes, pos);
  return out;
}

function encodeBody(value: unknown, options: DumpOptions): Encoder {
  const enc = new Encoder(options.registry ?? defaultRegistry, options);
  enc.w.ensure(BODY_START);
  enc.w.pos = BODY_START;
  for (const section of enc.registry.sections()) section.begin?.(enc);
  try {
    enc.value(value);
  } catch (e) {
    // The stack ran out (a reducer that recurses on its own): unwound, report it typed.
    if (e instanceof RangeError && e.message.includes('call stack')) {
      throw new EncodeError('ERR_MP_TOO_DEEP', 'value nests too deeply for the call stack; flatten it or lower maxDepth', enc.path(), { cause: e });
    }
    // The path stack was not unwound by the throw, so it still names where the error happened.
    if (e instanceof EncodeError) {
      // No spread: a path can be a million steps long.
      const tail = e.path.splice(0);
      for (const seg of enc.path()) e.path.push(seg);
      for (const seg of tail) e.path.push(seg);
      e.refreshMessage();
    }
    throw e;
  }
  return enc;
}

/**
 * Pickles a value to bytes. Async because layers (module table, shipped files) may read files.
 * @throws EncodeError ERR_MP_UNSUPPORTED_TYPE, ERR_MP_LIVE_HANDLE, ERR_MP_PROXY, ERR_MP_NO_FUNCTION_LAYER, ERR_MP_TOO_DEEP, ERR_MP_REDUCER_FAILED, ERR_MP_CYCLE_IN_ARGS
 */
export async function dumps(value: unknown, options: DumpOptions = {}): Promise<Uint8Array> {
  const enc = encodeBody(value, options);
  const encoded: EncodedSection[] = [];
  for (const section of enc.registry.sections().reverse()) {
    // A section with nothing to do answers at once: no await (data pays no microtask per layer).
    const pending = section.encodeAsync ? section.encodeAsync(enc) : section.encode(enc);
    const data = pending instanceof Promise ? await pending : pending;
    if (data !== undefined) encoded.unshift({ section, bytes: encodeSectionData(enc, data) });
  }
  return assemble(enc, encoded);
}

/**
 * Synchronous `dumps`. Works for data and for every layer that needs no asynchronous work.
 * @throws EncodeError as `dumps`, and ERR_MP_ASYNC_REQUIRED when a layer needs `dumps`
 */
export function dumpsSync(value: unknown, options: DumpOptions = {}): Uint8Array {
  const enc = encodeBody(value, options);
  const encoded: EncodedSection[] = [];
  for (const section of enc.registry.sections().reverse()) {
    const data = section.encode(enc);
    if (data instanceof Promise) {
      data.catch(() => {});
      throw new EncodeError('ERR_MP_ASYNC_REQUIRED', `the '${section.name}' layer needs asynchronous work; use dumps instead of dumpsSync`);
    }
    if (data !== undefined) encoded.unshift({ section, bytes: encodeSectionData(enc, data) });
  }
  return assemble(enc, encoded);
}

interface Parsed {
  readonly reader: ByteReader;
  readonly decoder: Decoder;
  readonly sections: { section: Section; data: unknown }[];
}

function toBytes(bytes: Uint8Array | ArrayBuffer): Uint8Array {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  throw new DecodeError('ERR_MP_BAD_MAGIC', 'loads expects a Uint8Array, Buffer or ArrayBuffer');
}

/** A section as framed in a payload: its name, code flag and the bytes of its data value. */
export interface FramedSection {
  readonly name: string;
  readonly code: boolean;
  /** Byte offset of the section's header (for errors). */
  readonly at: number;
  readonly span: Uint8Array;
}

/** A payload's frame: the checked header, the sections (not decoded), and a decoder positioned at the body. */
export interface Frame {
  readonly reader: ByteReader;
  readonly decoder: Decoder;
  readonly hasCode: boolean;
  readonly sections: FramedSection[];
}

/**
 * Checks the header and splits off the sections; decodes nothing else and runs nothing. Shared by `loads` and by
 * tools that read payloads without running them (`modulepickle inspect`).
 * @throws DecodeError ERR_MP_TRUNCATED, ERR_MP_BAD_MAGIC, ERR_MP_BAD_VERSION, ERR_MP_CODE_REFUSED, ERR_MP_BAD_LENGTH, ERR_MP_BAD_VALUE
 */
export function readFrame(input: Uint8Array | ArrayBuffer, registry: Registry, options: LoadOptions): Frame {
  const bytes = toBytes(input);
  const r: ByteReader = new ByteReader(bytes);
  if (bytes.length < T.HEADER_SIZE) r.fail('ERR_MP_TRUNCATED', 'payload is shorter than its header', 0);
  if (bytes[0] !== T.MAGIC[0] || bytes[1] !== T.MAGIC[1] || bytes[2] !== T.MAGIC[2]) {
    r.fail('ERR_MP_BAD_MAGIC', 'not a modulepickle payload (bad magic bytes)', 0);
  }
  if (bytes[3] !== T.FORMAT_VERSION) {
    r.fail('ERR_MP_BAD_VERSION', `payload format version ${bytes[3]} is not supported by this modulepickle (format ${T.FORMAT_VERSION}); use the same modulepickle version on both sides`, 3);
  }
  const hasCode = (bytes[4]! & T.HEADER_HAS_CODE) !== 0;
  if (options.code === false && hasCode) {
    r.fail('ERR_MP_CODE_REFUSED', 'payload carries code (functions, classes, modules or files) and loads was called with { code: false }', 4);
  }
  r.pos = T.HEADER_SIZE;
  const decoder = new Decoder(r, registry, options);
  const n = r.count(3);
  const sections: FramedSection[] = [];
  for (let i = 0; i < n; i++) {
    const at = r.pos;
    const code = (r.u8() & SECTION_CODE) !== 0;
    const name = decoder.value();
    const span = r.span(r.varint());
    if (typeof name !== 'string') r.fail('ERR_MP_BAD_VALUE', 'section name must be a string', at);
    if (code && options.code === false) r.fail('ERR_MP_CODE_REFUSED', `payload carries code (section '${name}') and loads was called with { code: false }`, at);
    sections.push({ name: name as string, code, at, span });
  }
  return { reader: r, decoder, hasCode, sections };
}

/** Decodes one section's data value (always data only). */
export function decodeSectionData(s: FramedSection, registry: Registry, options: LoadOptions): unknown {
  const sub = new Decoder(new ByteReader(s.span), registry, { ...options, code: false });
  const data = sub.value();
  if (sub.r.pos !== sub.r.end) sub.r.fail('ERR_MP_TRAILING_BYTES', `section '${s.name}' has bytes after its value`, s.at);
  return data;
}

/** Reads the header and the sections' data; runs nothing. */
function parse(input: Uint8Array | ArrayBuffer, options: LoadOptions): Parsed {
  const registry = options.registry ?? defaultRegistry;
  const frame: Frame = readFrame(input, registry, options);
  const known = registry.sections();
  const sections = frame.sections.map((s) => {
    const found = known.find((k) => k.name === s.name);
    if (!found) frame.reader.fail('ERR_MP_UNKNOWN_SECTION', `payload has a '${s.name}' section that this modulepickle cannot read; use the same modulepickle version on both sides`, s.at);
    return { section: found, data: decodeSectionData(s, registry, options) };
  });
  return { reader: frame.reader, decoder: frame.decoder, sections };
}

function finish(p: Parsed): unknown {
  const value = p.decoder.value();
  if (p.reader.pos !== p.reader.end) p.reader.fail('ERR_MP_TRAILING_BYTES', `${p.reader.end - p.reader.pos} bytes follow the value`);
  return value;
}

function asDecodeError(e: unknown): unknown {
  if (e instanceof ModulePickleError) return e;
  if (e instanceof RangeError && /call stack/.test(e.message)) {
    return new DecodeError('ERR_MP_TOO_DEEP', 'payload nests too deeply for the stack; lower its depth', undefined, { cause: e });
  }
  return new DecodeError('ERR_MP_BAD_VALUE', `payload could not be decoded: ${(e as Error)?.message ?? String(e)}`, undefined, { cause: e });
}

/**
 * Loads a value from bytes made by `dumps`.
 * @throws DecodeError ERR_MP_BAD_MAGIC, ERR_MP_BAD_VERSION, ERR_MP_TRUNCATED, ERR_MP_BAD_TAG, ERR_MP_BAD_LENGTH, ERR_MP_TOO_DEEP, ERR_MP_BAD_REF, ERR_MP_UNKNOWN_REDUCER, ERR_MP_UNKNOWN_SECTION, ERR_MP_CODE_REFUSED, ERR_MP_TRAILING_BYTES, ERR_MP_BAD_VALUE
 */
export function loads(bytes: Uint8Array | ArrayBuffer, options: LoadOptions = {}): Promise<unknown> {
  try {
    const p = parse(bytes, options);
    // Data (no sections) decodes at once, without an async step per call.
    return p.sections.length === 0 ? Promise.resolve(finish(p)) : loadSections(p);
  } catch (e) {
    return Promise.reject(asDecodeError(e));
  }
}

async function loadSections(p: Parsed): Promise<unknown> {
  try {
    for (const { section, data } of p.sections) await section.decode(data, p.decoder);
    return finish(p);
  } catch (e) {
    throw asDecodeError(e);
  }
}

/**
 * Synchronous `loads`.
 * @throws DecodeError as `loads`, and ERR_MP_ASYNC_REQUIRED when a layer needs `loads`
 */
export function loadsSync(bytes: Uint8Array | ArrayBuffer, options: LoadOptions = {}): unknown {
  try {
    const p = parse(bytes, options);
    for (const { section, data } of p.sections) {
      const done = section.decode(data, p.decoder);
      if (done instanceof Promise) {
        done.catch(() => {});
        throw new DecodeError('ERR_MP_ASYNC_REQUIRED', `the '${section.name}' layer needs asynchronous work; use loads instead of loadsSync`);
      }
    }
    return finish(p);
  } catch (e) {
    throw asDecodeError(e);
  }
}
