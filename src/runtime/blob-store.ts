/**
 * The receiver's blob store on disk: `<cache>/blobs/<2 hex>/<64 hex>`, read-only files written through
 * a temp file and a rename, each verified against its sha256 before it is stored.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync, unlinkSync } from 'node:fs';
import { join, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ShipError } from '../errors.ts';
import { ensureCacheDir } from './cache-dir.ts';
import { sha256Hex } from '../ship/manifest.ts';
import type { BlobStore } from '../ship/blob-source.ts';

const hashRe = /^[0-9a-f]{64}$/;

/** Blob store in a cache folder. Implements `BlobStore`: `missing` tells a sender what to send. */
export class DiskBlobStore implements BlobStore {
  readonly dir: string;
  readonly #tmp: string;
  readonly #cacheDir: string;
  readonly #subdirs = new Set<string>();

  constructor(cacheDir: string) {
    this.dir = join(cacheDir, 'blobs');
    this.#tmp = join(cacheDir, 'tmp');
    this.#cacheDir = cacheDir;
  }

  /** Path of a blob's file (it may not exist). */
  pathOf(hash: string): string {
    if (!hashRe.test(hash)) throw new ShipError('ERR_MP_MANIFEST_INVALID', `'${hash}' is not a sha256 hex digest`);
    return join(this.dir, hash.slice(0, 2), hash);
  }

  /** Path of a blob whose hash was already validated (no check: used for every file of a tree). */
  pathOfChecked(hash: string): string {
    return `${this.dir}${sep}${hash.slice(0, 2)}${sep}${hash}`;
  }

  /** Whether the blob is stored. */
  has(hash: string): boolean {
    return existsSync(this.pathOf(hash));
  }

  /** Which of `hashes` are not stored (what a sender should send). */
  async missing(hashes: readonly string[]): Promise<string[]> {
    return this.missingSync(hashes);
  }

  /** Synchronous `missing`. */
  missingSync(hashes: readonly string[]): string[] {
    return hashes.filter((h) => !this.has(h));
  }

  /** The stored blobs among `hashes`. */
  async get(hashes: readonly string[]): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    for (const h of hashes) {
      try {
        out.set(h, readFileSync(this.pathOf(h)));
      } catch {
        // absent
      }
    }
    return out;
  }

  /** Verifies and stores blobs. @throws ERR_MP_BLOB_HASH_MISMATCH */
  async put(blobs: ReadonlyMap<string, Uint8Array>): Promise<void> {
    this.putSync(blobs);
  }

  /**
   * Verifies and stores blobs (atomic per blob; racing writers of the same blob are harmless).
   * @throws ERR_MP_BLOB_HASH_MISMATCH when bytes do not match their hash
   */
  putSync(blobs: ReadonlyMap<string, Uint8Array>): void {
    ensureCacheDir(this.#cacheDir);
    mkdirSync(this.#tmp, { recursive: true });
    for (const [hash, bytes] of blobs) {
      const dest = this.pathOf(hash);
      const actual = sha256Hex(bytes);
      if (actual !== hash) {
        throw new ShipError('ERR_MP_BLOB_HASH_MISMATCH', `a shipped blob does not match its hash (expected ${hash}, got ${actual}); the payload or blob source is corrupt`, hash);
      }
      if (existsSync(dest)) continue;
      const sub = hash.slice(0, 2);
      if (!this.#subdirs.has(sub)) {
        mkdirSync(join(this.dir, sub), { recursive: true });
        this.#subdirs.add(sub);
      }
      const tmp = join(this.#tmp, `blob-${process.pid}-${randomBytes(6).toString('hex')}`);
      // read-only (the umask can only remove bits): tree files are hardlinks to it
      writeFileSync(tmp, bytes, { mode: 0o444 });
      try {
        renameSync(tmp, dest);
      } catch (err) {
        try {
          unlinkSync(tmp);
        } catch {
          // already gone
        }
        throw err;
      }
    }
  }
}
