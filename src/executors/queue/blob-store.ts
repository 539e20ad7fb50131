/**
 * Content-addressed blobs in Redis: code blobs, manifests, and arguments/results too big to sit in job data.
 * Keys are `<prefix>:b:<id>` (blobs) and `<prefix>:m:<id>` (manifests), shared by every queue on the Redis.
 * Every key carries a TTL; `touch` refreshes it, and in-flight jobs keep their keys alive that way.
 */
import { createHash } from 'node:crypto';
import type { Redis, ChainableCommander } from 'ioredis';
import { ShipError, WorkerError } from '../../errors.ts';

/** Options of a {@link RedisBlobStore}. */
export interface RedisBlobStoreOptions {
  /** Key prefix (default `mp`). Blobs are shared by every queue that uses the same prefix. */
  readonly prefix?: string;
  /** Time to live of every key in milliseconds (default 24 h). In-flight jobs refresh it. */
  readonly ttlMs?: number;
  /** Largest pipeline, in bytes of values (default 8 MiB). */
  readonly batchBytes?: number;
  /** Largest pipeline, in commands (default 1,000). */
  readonly batchCount?: number;
}

/** What an upload did. */
export interface UploadStats {
  /** Ids that were checked. */
  checked: number;
  /** Blobs that were missing and uploaded. */
  uploaded: number;
  /** Bytes uploaded. */
  bytes: number;
}

/** Loads the bytes of a blob the caller holds locally. */
export type BlobLoader = (id: string) => Uint8Array | Promise<Uint8Array>;

/** sha256 of bytes, lowercase hex: the id of an argument or result blob. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const ID_RE = /^[A-Za-z0-9_.:-]{1,200}$/;

function checkId(id: string): string {
  if (!ID_RE.test(id)) throw new WorkerError('ERR_MP_BAD_BLOB_ID', `blob id ${JSON.stringify(id.slice(0, 80))} is not a content hash; refusing it`);
  return id;
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

async function execChecked(p: ChainableCommander, what: string): Promise<unknown[]> {
  const res = await p.exec();
  if (!res) throw new WorkerError('ERR_MP_REDIS', `Redis pipeline for ${what} was aborted (connection lost?); retry the call`);
  return res.map(([err, value]) => {
    if (err) throw new WorkerError('ERR_MP_REDIS', `Redis refused ${what}: ${err.message}`, undefined, { cause: err });
    return value;
  });
}

/** Blobs and manifests in Redis under content-hash keys, with batched, pipelined existence checks and uploads. */
export class RedisBlobStore {
  readonly redis: Redis;
  readonly prefix: string;
  readonly ttlMs: number;
  readonly #batchBytes: number;
  readonly #batchCount: number;
  /** Everything this store wrote: blobs (code files, function payloads, big values), manifest markers, bytes. */
  readonly uploads = { blobs: 0, manifests: 0, bytes: 0 };
  /** Keys known to exist, with the local time until which that knowledge is trusted (half the TTL after a refresh). */
  readonly #known = new Map<string, number>();
  /** Keys being checked or uploaded right now, with the promise that settles when that is done. */
  readonly #inflight = new Map<string, Promise<void>>();

  constructor(redis: Redis, options: RedisBlobStoreOptions = {}) {
    this.redis = redis;
    this.prefix = options.prefix ?? 'mp';
    this.ttlMs = options.ttlMs ?? 24 * 3600_000;
    this.#batchBytes = options.batchBytes ?? 8 * 1024 * 1024;
    this.#batchCount = options.batchCount ?? 1000;
    // After a reconnect Redis may have restarted empty: forget what we believed was there.
    redis.on('close', () => this.#known.clear());
  }

  /** Redis key of a blob. */
  blobKey(id: string): string {
    return `${this.prefix}:b:${checkId(id)}`;
  }

  /** Redis key of a manifest. */
  manifestKey(id: string): string {
    return `${this.prefix}:m:${checkId(id)}`;
  }

  /** Forgets which keys are known to exist (the next upload checks Redis again). */
  forget(): void {
    this.#known.clear();
  }

  /** Whether `key` is known to be in Redis (checked or written recently by this store). */
  knows(key: string): boolean {
    return this.#isKnown(key, Date.now());
  }

  #isKnown(key: string, now: number): boolean {
    const until = this.#known.get(key);
    return until !== undefined && until > now;
  }

  /**
   * Refreshes the TTL of keys and returns the ones that do not exist. One `PEXPIRE` per key, pipelined in batches:
   * an existence check and a refresh in a single round trip.
   */
  async missingKeys(keys: readonly string[]): Promise<string[]> {
    const missing: string[] = [];
    const now = Date.now();
    for (let i = 0; i < keys.length; i += this.#batchCount) {
      const batch = keys.slice(i, i + this.#batchCount);
      const p = this.redis.pipeline();
      for (const k of batch) p.pexpire(k, this.ttlMs);
      const res = await execChecked(p, 'an existence check');
      res.forEach((r, j) => {
        const k = batch[j]!;
        if (r === 1) this.#known.set(k, now + this.ttlMs / 2);
        else {
          this.#known.delete(k);
          missing.push(k);
        }
      });
    }
    return missing;
  }

  /** Ids among `ids` whose blobs are not in Redis (refreshing the TTL of those that are). */
  async missing(ids: readonly string[]): Promise<string[]> {
    const keys = ids.map((id) => this.blobKey(id));
    const missing = new Set(await this.missingKeys(keys));
    return ids.filter((id) => missing.has(this.blobKey(id)));
  }

  /** Refreshes the TTL of blobs and manifests still in use (in-flight jobs call this periodically). */
  async touch(blobIds: readonly string[], manifestIds: readonly string[] = []): Promise<void> {
    const keys = [...manifestIds.map((id) => this.manifestKey(id)), ...blobIds.map((id) => this.blobKey(id))];
    if (keys.length > 0) await this.missingKeys(keys);
  }

  /** Writes entries with `SET key value PX ttl`, pipelined in batches bounded by count and bytes. */
  async #putEntries(entries: AsyncIterable<[string, Uint8Array]> | Iterable<[string, Uint8Array]>, stats: UploadStats): Promise<void> {
    let p = this.redis.pipeline();
    let n = 0;
    let bytes = 0;
    const flush = async (): Promise<void> => {
      if (n === 0) return;
      await execChecked(p, `an upload of ${n} blobs (${bytes} bytes)`);
      p = this.redis.pipeline();
      n = 0;
      bytes = 0;
    };
    const now = Date.now();
    for await (const [key, value] of entries) {
      p.set(key, toBuffer(value), 'PX', this.ttlMs);
      this.#known.set(key, now + this.ttlMs / 2);
      n++;
      bytes += value.byteLength;
      stats.uploaded++;
      stats.bytes += value.byteLength;
      if (key.startsWith(`${this.prefix}:m:`)) this.uploads.manifests++;
      else this.uploads.blobs++;
      this.uploads.bytes += value.byteLength;
      if (n >= this.#batchCount || bytes >= this.#batchBytes) await flush();
    }
    await flush();
  }

  /** Uploads the blobs among `ids` that Redis lacks, loading their bytes with `load`. Known-present keys are skipped. */
  async ensureBlobs(ids: readonly string[], load: BlobLoader, stats: UploadStats = { checked: 0, uploaded: 0, bytes: 0 }): Promise<UploadStats> {
    const now = Date.now();
    const unique = [...new Set(ids)];
    // Blobs another call is already checking or uploading: wait for that instead of uploading them twice.
    const waits: Promise<void>[] = [];
    const toCheck: string[] = [];
    for (const id of unique) {
      const key = this.blobKey(id);
      if (this.#isKnown(key, now)) continue;
      const busy = this.#inflight.get(key);
      if (busy) waits.push(busy);
      else toCheck.push(id);
    }
    stats.checked += toCheck.length;
    if (toCheck.length > 0) {
      const work = (async () => {
        const missing = await this.missing(toCheck);
        const blobKey = (id: string): string => this.blobKey(id);
        async function* entries(): AsyncGenerator<[string, Uint8Array]> {
          for (const id of missing) yield [blobKey(id), await load(id)];
        }
        await this.#putEntries(entries(), stats);
      })();
      const keys = toCheck.map((id) => this.blobKey(id));
      const settled = work.then(
        () => undefined,
        () => undefined,
      );
      for (const k of keys) this.#inflight.set(k, settled);
      try {
        await work;
      } finally {
        for (const k of keys) if (this.#inflight.get(k) === settled) this.#inflight.delete(k);
      }
    }
    if (waits.length > 0) {
      await Promise.all(waits);
      // If that other upload failed, try these blobs ourselves (and report the error if it fails again).
      const again = unique.filter((id) => !toCheck.includes(id) && !this.#isKnown(this.blobKey(id), Date.now()));
      if (again.length > 0) await this.ensureBlobs(again, load, stats);
    }
    return stats;
  }

  /**
   * Makes a manifest and all its blobs present: blobs first (only the missing ones), the manifest last, so a worker
   * that sees the manifest can fetch every blob. An unchanged manifest costs one `PEXPIRE` (or nothing when known).
   */
  async ensureManifest(manifestId: string, manifestBytes: Uint8Array, blobIds: readonly string[], load: BlobLoader): Promise<UploadStats> {
    const stats: UploadStats = { checked: 0, uploaded: 0, bytes: 0 };
    const mkey = this.manifestKey(manifestId);
    if (this.#isKnown(mkey, Date.now())) return stats;
    stats.checked++;
    const [absent] = await this.missingKeys([mkey]);
    if (absent === undefined) {
      // The manifest is there, so its blobs were uploaded before it; refresh their TTL along with it.
      await this.touch(blobIds);
      return stats;
    }
    await this.ensureBlobs(blobIds, load, stats);
    await this.#putEntries([[mkey, manifestBytes]], stats);
    return stats;
  }

  /** Stores bytes under their sha256 (arguments or results too big for job data) and returns the id. */
  async putValue(bytes: Uint8Array): Promise<string> {
    const id = sha256Hex(bytes);
    const key = this.blobKey(id);
    if (!this.#isKnown(key, Date.now())) {
      await this.#putEntries([[key, bytes]], { checked: 0, uploaded: 0, bytes: 0 });
    }
    return id;
  }

  /** Fetches blobs by id (pipelined). Missing ids map to `undefined`. With `verify`, ids must be the sha256 of the bytes. */
  async getBlobs(ids: readonly string[], verify = false): Promise<Map<string, Uint8Array | undefined>> {
    const out = new Map<string, Uint8Array | undefined>();
    for (let i = 0; i < ids.length; i += this.#batchCount) {
      const batch = ids.slice(i, i + this.#batchCount);
      const p = this.redis.pipeline();
      for (const id of batch) p.getBuffer(this.blobKey(id));
      const res = await execChecked(p, 'a blob fetch');
      res.forEach((value, j) => {
        const id = batch[j]!;
        if (!Buffer.isBuffer(value)) return void out.set(id, undefined);
        if (verify && sha256Hex(value) !== id) {
          throw new ShipError('ERR_MP_BLOB_CORRUPT', `blob ${id} in Redis does not match its hash; it was altered. Delete key ${this.blobKey(id)} and retry`);
        }
        out.set(id, value);
      });
    }
    return out;
  }

  /** Fetches one blob. @throws ERR_MP_BLOB_MISSING when it is not in Redis (expired, evicted, or Redis restarted). */
  async getBlob(id: string, verify = false): Promise<Uint8Array> {
    const value = (await this.getBlobs([id], verify)).get(id);
    if (!value) {
      throw new ShipError(
        'ERR_MP_BLOB_MISSING',
        `blob ${id} is not in Redis (key ${this.blobKey(id)}): it expired, was evicted (use maxmemory-policy noeviction) or Redis restarted; call again from the client to re-upload it`,
      );
    }
    return value;
  }

  /** Fetches a manifest's bytes, or `undefined` when it is absent. */
  async getManifest(id: string): Promise<Uint8Array | undefined> {
    const value = await this.redis.getBuffer(this.manifestKey(id));
    return value ?? undefined;
  }
}
