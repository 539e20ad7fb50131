/**
 * The executors' only link to the codec: `dumps`, `loads` and the `BlobSource` contract.
 * TEMPORARY stand-in until the codec lands on main: v8 serialization, functions by source text (no captures).
 */
import { deserialize, serialize } from 'node:v8';

/** Options passed through to the codec (`ship`, `blobSource`, `cacheDir`, `root`, ...). */
export type PickleOptions = Record<string, unknown>;

/** Where a receiver gets content-addressed blobs it lacks (the ship layer's contract). */
export interface BlobSource {
  /** Bytes of each requested blob, in order; undefined for a blob the source does not have. */
  getBlobs(hashes: readonly string[]): Promise<(Uint8Array | undefined)[]>;
}

const FN = '\u0000fn';

function down(v: unknown): unknown {
  if (typeof v === 'function') return { [FN]: v.toString() };
  if (Array.isArray(v)) return v.map(down);
  return v;
}

function up(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(up);
  if (typeof v === 'object' && v !== null && FN in v) return (0, eval)(`(${String((v as Record<string, unknown>)[FN])})`);
  return v;
}

/** Pickles a value. */
export async function dumps(value: unknown, _options?: PickleOptions): Promise<Uint8Array> {
  return serialize(down(value));
}

/** Unpickles a value. */
export async function loads(bytes: Uint8Array, _options?: PickleOptions): Promise<unknown> {
  return up(deserialize(bytes));
}

/** Payload format version of the codec (carried in the worker handshake). */
export const FORMAT_VERSION = 1;
