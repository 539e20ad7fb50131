/**
 * The executors' only link to the other layers: `dumps`/`loads`, the payload format version, and from the ship
 * layer the `BlobSource` contract, the build report (`ShipBuild`, via the `ship.onBuild` dumps option) and the
 * receiver's list of trees in use (for recycling by code version), the cleanup of a pool thread's leases, and the
 * hold on the watched project trees (closed with the last executor), and the two halves of call templates (a closure's
 * captures and the ship stamp on the client, `instantiate` on the worker). Keep it this narrow.
 */
export { dumps, loads } from '../codec/payload.ts';
export { FORMAT_VERSION } from '../codec/tags.ts';
export { ProjectBlobSource } from '../ship/blob-source.ts';
export type { BlobSource } from '../ship/blob-source.ts';
export type { ShipBuild } from '../ship/build.ts';
export { heldTrees, dropThreadLeftovers } from '../runtime/leases.ts';
export { defaultCacheDir } from '../runtime/cache-dir.ts';
export { encodingKey } from '../functions/function-info.ts';
export { holdTreeWatches } from '../ship/tree-watch.ts';
export { currentShipBuild } from '../ship/section.ts';
export type { ShipStamp } from '../ship/section.ts';
export { readCaptured, capturedByReference, exportOf, settledByValue } from '../functions/template.ts';
export type { Captured, TemplateOf } from '../functions/template.ts';
export { instantiate } from '../functions/decode-function.ts';

/** Options passed through to the codec and its layers (`ship`, `blobSource`, `cacheDir`, `root`, ...). */
export type PickleOptions = Record<string, unknown>;
