/**
 * Ordered `map` over any iterable or async iterable: items are grouped into chunks (one task each), at most
 * `concurrency` chunks are in flight, and results come out in input order. Memory stays bounded by the window when
 * streamed (`for await`); awaiting the map collects every result into an array.
 */
import { setMaxListeners } from 'node:events';
import { RemoteError } from '../errors.ts';
import type { PickleOptions } from './pickler.ts';
import { TaskKind, encodeTask, type EncodedFunction, type EncodedTask, type TransferOption } from './task.ts';
import { abandoned, type CallOptions } from './scheduler.ts';

/** Options of `map`. */
export interface MapOptions extends CallOptions {
  /** Items per task. Default: for arrays, `ceil(length / (4 * in-flight window))` capped at 256; otherwise 1. */
  readonly chunkSize?: number;
  /** Chunks in flight at once (default: workers × prefetch). */
  readonly concurrency?: number;
}

/**
 * What `map` returns: `await` it for the array of results in input order, or iterate it with `for await` to stream
 * them. Nothing runs until it is awaited or iterated; each iteration runs the map again, awaiting runs it once.
 */
export interface MapResult<R> extends AsyncIterable<R>, PromiseLike<R[]> {
  /** All results in input order (the same as awaiting the map). */
  toArray(): Promise<R[]>;
  then<A = R[], B = never>(onFulfilled?: ((value: R[]) => A | PromiseLike<A>) | null, onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B>;
  catch<T = never>(onRejected?: ((reason: unknown) => T | PromiseLike<T>) | null): Promise<R[] | T>;
  finally(onFinally?: (() => void) | null): Promise<R[]>;
}

interface MapDeps {
  encodeFunction(): Promise<EncodedFunction>;
  submit(task: EncodedTask, options: CallOptions): Promise<unknown[]>;
  readonly dumpsOptions: PickleOptions | undefined;
  /** Thread transports: buffers travel beside the chunks' payloads. */
  readonly beside?: { transfer?: TransferOption } | undefined;
}

/** Builds the lazy map stream (nothing runs until iteration starts). */
export function mapStream<R>(items: Iterable<unknown> | AsyncIterable<unknown>, options: MapOptions, defaultWindow: number, deps: MapDeps): MapResult<R> {
  const concurrency = Math.max(1, options.concurrency ?? defaultWindow);
  const chunkSize = Math.max(1, options.chunkSize ?? (Array.isArray(items) ? Math.min(256, Math.ceil(items.length / (4 * concurrency))) : 1));

  async function* run(): AsyncGenerator<R> {
    const fn = await deps.encodeFunction();
    const source = Symbol.asyncIterator in items ? (items as AsyncIterable<unknown>)[Symbol.asyncIterator]() : (items as Iterable<unknown>)[Symbol.iterator]();
    const internal = new AbortController();
    // Every chunk in flight listens to it (a queue executor keeps 64 by default): not a leak.
    setMaxListeners(0, internal.signal);
    const outer = options.signal;
    const forward = (): void => internal.abort(outer?.reason);
    outer?.addEventListener('abort', forward, { once: true });
    if (outer?.aborted) forward();
    const window: Promise<unknown[]>[] = [];
    let done = false;
    let start = 0;
    const next = async (): Promise<void> => {
      const chunk: unknown[] = [];
      while (chunk.length < chunkSize) {
        const r = await source.next();
        if (r.done) {
          done = true;
          break;
        }
        chunk.push(r.value);
      }
      if (chunk.length === 0) return;
      const first = start;
      start += chunk.length;
      const task = await encodeTask(fn, chunk, { kind: TaskKind.map, dumpsOptions: deps.dumpsOptions, beside: deps.beside });
      const p = deps.submit(task, { timeout: options.timeout, signal: internal.signal }).catch((e: unknown) => {
        throw globalIndex(e, first);
      });
      p.catch(() => {}); // rejections are observed when the chunk reaches the head of the window
      window.push(p);
    };
    try {
      while (true) {
        while (!done && window.length < concurrency) await next();
        const head = window.shift();
        if (!head) break;
        for (const v of await head) yield v as R;
      }
    } finally {
      outer?.removeEventListener('abort', forward);
      // Chunks still queued are dropped; one already running finishes (its result is discarded).
      if (window.length > 0) internal.abort(abandoned);
      if (!done) await (source as { return?: () => unknown }).return?.();
    }
  }

  let all: Promise<R[]> | undefined;
  const toArray = (): Promise<R[]> =>
    (all ??= (async () => {
      const out: R[] = [];
      for await (const v of run()) out.push(v);
      return out;
    })());
  return {
    [Symbol.asyncIterator]: () => run(),
    toArray,
    then: (onFulfilled, onRejected) => toArray().then(onFulfilled, onRejected),
    catch: (onRejected) => toArray().catch(onRejected),
    finally: (onFinally) => toArray().finally(onFinally),
  };
}

// A remote error names the failing item's index within its chunk: make it the index within the whole input.
function globalIndex(e: unknown, first: number): unknown {
  if (!(e instanceof RemoteError)) return e;
  const local = (e as RemoteError & { index?: unknown }).index;
  if (typeof local !== 'number') return e;
  Object.defineProperty(e, 'index', { value: first + local, enumerable: false });
  e.message = e.message.replace(`(map item ${local})`, `(map item ${first + local})`);
  if (e.stack) e.stack = e.stack.replace(`(map item ${local})`, `(map item ${first + local})`);
  return e;
}
