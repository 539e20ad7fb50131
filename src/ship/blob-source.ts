/**
 * Blob sources: where a receiver gets the file contents (blobs, named by sha256) it lacks.
 *
 * One interface serves both transports:
 * - a self-contained payload carries its blobs inline (`InlineBlobSource`);
 * - an executor first asks the receiver which blobs it lacks (`BlobStore.missing`, the receiver's disk
 *   store implements it) and sends only those, read from the project (`ProjectBlobSource`), or the receiver
 *   pulls them from a shared store (e.g. Redis) that implements `BlobSource`.
 * Receivers verify every blob against its hash before use, so a source need not be trusted.
 */
import { readFileSync } from 'node:fs';
import { ShipError } from '../errors.ts';
import { sha256Hex } from './manifest.ts';
import type { ShipBuild } from './build.ts';

/** Something that can hand out blobs by hash. */
export interface BlobSource {
  /** Which of `hashes` this source cannot provide (order kept). */
  missing(hashes: readonly string[]): Promise<string[]>;
  /** The bytes of each requested blob it has; absent hashes are left out of the map. */
  get(hashes: readonly string[]): Promise<Map<string, Uint8Array>>;
}

/** A blob source that can also store blobs (a receiver's cache, a shared store). */
export interface BlobStore extends BlobSource {
  /** Stores blobs; each is verified against its hash first. @throws ERR_MP_BLOB_HASH_MISMATCH */
  put(blobs: ReadonlyMap<string, Uint8Array>): Promise<void>;
}

/** Blobs held in memory, e.g. the inline blobs of a self-contained payload. */
export class InlineBlobSource implements BlobSource {
  readonly #blobs: ReadonlyMap<string, Uint8Array>;
  constructor(blobs: ReadonlyMap<string, Uint8Array> | Iterable<readonly [string, Uint8Array]>) {
    this.#blobs = blobs instanceof Map ? blobs : new Map(blobs as Iterable<[string, Uint8Array]>);
  }
  async missing(hashes: readonly string[]): Promise<string[]> {
    return hashes.filter((h) => !this.#blobs.has(h));
  }
  async get(hashes: readonly string[]): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    for (const h of hashes) {
      const b = this.#blobs.get(h);
      if (b) out.set(h, b);
    }
    return out;
  }
}

/** Blobs read from the project files of a build (client side). Rechecks each file's hash when read. */
export class ProjectBlobSource implements BlobSource {
  readonly #files: ReadonlyMap<string, string>;
  constructor(build: Pick<ShipBuild, 'files'>) {
    this.#files = build.files;
  }
  async missing(hashes: readonly string[]): Promise<string[]> {
    return hashes.filter((h) => !this.#files.has(h));
  }
  async get(hashes: readonly string[]): Promise<Map<string, Uint8Array>> {
    return this.getSync(hashes);
  }
  /** Synchronous `get` (used by `dumpsSync`). @throws ERR_MP_SHIP_CHANGED when a file changed since the build */
  getSync(hashes: readonly string[]): Map<string, Uint8Array> {
    const out = new Map<string, Uint8Array>();
    for (const h of hashes) {
      const file = this.#files.get(h);
      if (!file) continue;
      let bytes: Buffer;
      try {
        bytes = readFileSync(file);
      } catch (err) {
        throw new ShipError('ERR_MP_SHIP_CHANGED', `'${file}' was removed or became unreadable while it was being shipped (${(err as NodeJS.ErrnoException).code ?? 'error'}); call again to ship the new version`, file, { cause: err });
      }
      if (sha256Hex(bytes) !== h) {
        throw new ShipError('ERR_MP_SHIP_CHANGED', `'${file}' changed while it was being shipped; call again to ship the new version`, file);
      }
      out.set(h, bytes);
    }
    return out;
  }
}

/** Wraps a source and counts what is asked of it (how many blobs and bytes a receiver fetched). */
export class CountingBlobSource implements BlobSource {
  readonly #inner: BlobSource;
  /** Hashes fetched through `get`, in order. */
  readonly fetched: string[] = [];
  bytes = 0;
  getCalls = 0;
  constructor(inner: BlobSource) {
    this.#inner = inner;
  }
  missing(hashes: readonly string[]): Promise<string[]> {
    return this.#inner.missing(hashes);
  }
  async get(hashes: readonly string[]): Promise<Map<string, Uint8Array>> {
    this.getCalls++;
    const out = await this.#inner.get(hashes);
    for (const [h, b] of out) {
      this.fetched.push(h);
      this.bytes += b.byteLength;
    }
    return out;
  }
}
