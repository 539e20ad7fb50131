/**
 * Redis connections for the queue executor and worker: a URL or ioredis options in, ioredis clients out, with a
 * bounded wait for the first connection (a clear error instead of a silent hang) and reconnection afterwards.
 */
import type { Redis, RedisOptions } from 'ioredis';
import { WorkerError } from '../../errors.ts';
import { loadIoredis } from './peers.ts';

/** Where Redis is: `redis://[user:pass@]host:port[/db]` (or `rediss://`), or ioredis options. */
export type QueueConnection = string | RedisOptions;

/** ioredis options for a connection description (a copy; BullMQ's required settings applied). */
export function redisOptions(connection: QueueConnection): RedisOptions {
  let base: RedisOptions;
  if (typeof connection === 'string') {
    let url: URL;
    try {
      url = new URL(connection);
    } catch {
      throw new WorkerError('ERR_MP_BAD_REDIS_URL', `'${connection}' is not a Redis URL; use redis://host:port`);
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new WorkerError('ERR_MP_BAD_REDIS_URL', `'${connection}' is not a Redis URL (protocol ${url.protocol}); use redis://host:port`);
    }
    const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
    base = {
      host: url.hostname || '127.0.0.1',
      port: url.port ? Number(url.port) : 6379,
      db: Number.isInteger(db) ? db : 0,
      ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
      ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
      ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
    };
  } else {
    base = { ...connection };
  }
  return {
    // Reconnect forever with a capped backoff; the executor's own watchdog decides when waiting is too long.
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    ...base,
    // BullMQ requires this on blocking connections; on ours it means commands wait for a reconnect.
    maxRetriesPerRequest: null,
  };
}

/** `host:port` for messages. */
export function describeConnection(options: RedisOptions): string {
  return `${options.host ?? '127.0.0.1'}:${options.port ?? 6379}`;
}

/**
 * Connects to Redis and waits until it is ready. The client reconnects by itself afterwards.
 * @throws ERR_MP_REDIS_UNREACHABLE when it is not ready within `timeoutMs`
 */
export async function connectRedis(options: RedisOptions, timeoutMs: number, name: string): Promise<Redis> {
  const { Redis } = await loadIoredis();
  const redis = new Redis({ ...options, lazyConnect: true, connectionName: name });
  let lastError: Error | undefined;
  const onError = (err: Error): void => {
    lastError = err;
  };
  // Without a listener ioredis prints every failed reconnect; the owner logs state changes instead.
  redis.on('error', onError);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new WorkerError(
            'ERR_MP_REDIS_UNREACHABLE',
            `could not reach Redis at ${describeConnection(options)} within ${timeoutMs} ms` +
              `${lastError ? ` (${lastError.message})` : ''}; start Redis or fix the connection option / --redis URL`,
          ),
        );
      }, timeoutMs);
      redis.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
      redis.connect().catch(() => {
        // Failures surface through 'error' and the retry strategy; the timer reports them.
      });
    });
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  return redis;
}

/** Tracks whether a connection is up, and since when it is down. */
export class ConnectionWatch {
  #downSince: number | undefined;
  #lastError: Error | undefined;
  readonly #onChange: (up: boolean, err: Error | undefined) => void;

  constructor(redis: Redis, onChange: (up: boolean, err: Error | undefined) => void = () => {}) {
    this.#onChange = onChange;
    redis.on('error', (err: Error) => {
      this.#lastError = err;
    });
    redis.on('close', () => {
      if (this.#downSince === undefined) {
        this.#downSince = Date.now();
        this.#onChange(false, this.#lastError);
      }
    });
    redis.on('ready', () => {
      if (this.#downSince !== undefined) {
        this.#downSince = undefined;
        this.#onChange(true, undefined);
      }
    });
  }

  /** Milliseconds the connection has been down (0 when up). */
  downFor(now = Date.now()): number {
    return this.#downSince === undefined ? 0 : now - this.#downSince;
  }

  /** The last connection error seen. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }
}

/**
 * Closes a BullMQ object without hanging. BullMQ's close waits for ioredis' 'end' event, which never comes for a
 * client disconnected while it waits to reconnect (e.g. right after Redis restarted), so the wait is bounded.
 */
export async function closeBullmq(obj: { close(): Promise<void> }, close = (): Promise<void> => obj.close(), boundMs = 3000): Promise<void> {
  // Give a reconnecting client the chance to come back first: then close is clean and quick.
  const conn = (obj as { backend?: { connection?: { client?: Promise<Redis> } } }).backend?.connection?.client;
  const client = conn ? await conn.catch(() => undefined) : undefined;
  for (let i = 0; client && client.status !== 'ready' && client.status !== 'end' && i < 50; i++) await new Promise((r) => setTimeout(r, 20));
  let timer: NodeJS.Timeout | undefined;
  const bounded = new Promise<void>((resolve) => (timer = setTimeout(resolve, boundMs).unref()));
  try {
    await Promise.race([close().catch(() => {}), bounded]);
  } finally {
    clearTimeout(timer);
  }
}

/** The error for a Redis that did not answer in time. */
export function unreachable(where: string, timeoutMs: number): WorkerError {
  return new WorkerError('ERR_MP_REDIS_UNREACHABLE', `could not reach Redis at ${where} within ${timeoutMs} ms; start Redis or fix the connection option`);
}

/** Races a promise against a timer. */
export async function withTimeout<T>(p: Promise<T>, ms: number, err: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(err()), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
