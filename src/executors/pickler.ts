/**
 * The executors' only link to the other layers: `dumps`, `loads`, the payload format version and the `BlobSource`
 * contract of the ship layer. Keep it this narrow.
 */
export { dumps, loads } from '../codec/payload.ts';
export { FORMAT_VERSION } from '../codec/tags.ts';

/** Options passed through to the codec and its layers (`ship`, `blobSource`, `cacheDir`, `root`, ...). */
export type PickleOptions = Record<string, unknown>;

/** Where a receiver gets content-addressed blobs it lacks (the ship layer's contract). */
export interface BlobSource {
  /** Bytes of each requested blob, in order; undefined for a blob the source does not have. */
  getBlobs(hashes: readonly string[]): Promise<(Uint8Array | undefined)[]>;
}
