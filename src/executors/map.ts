/**
 * Ordered, streaming `map` over any iterable or async iterable: items are grouped into chunks (one task each), at
 * most `concurrency` chunks are in flight, and results come out in input order. Memory stays bounded by the window.
 */
import { RemoteError } from '../errors.ts';
import type { PickleOptions } from './pickler.ts';
import { TaskKind, encodeTask, type EncodedFunction, type EncodedTask } from './task.ts';
import type { CallOptions } from './executor.ts';

/** Options of `map`. */
export interface MapOptions extends CallOptions {
  /** Items per task. Default: for arrays, `ceil(length / (4 * in-flight window))` capped at 256; otherwise 1. */
  readonly chunkSize?: number;
  /** Chunks in flight at once (default: workers × prefetch). */
  readonly concurrency?: number;
}

/** What `map` returns: an async iterable of results in input order, or all of them with `toArray()`. */
export interface MapResult<R> extends AsyncIterable<R> {
  toArray(): Promise<R[]>;
}

interface MapDeps {
  encodeFunction(): Promise<EncodedFunction>;
  submit(task: EncodedTask, options: CallOptions): Promise<unknown[]>;
  readonly dumpsOptions: PickleOptions | undefined;
}

/** Builds the lazy map stream (nothing runs until iteration starts). */
export function mapStream<R>(items: Iterable<unknown> | AsyncIterable<unknown>, options: MapOptions, defaultWindow: number, deps: MapDeps): MapResult<R> {
  const concurrency = Math.max(1, options.concurrency ?? defaultWindow);
  const chunkSize = Math.max(1, options.chunkSize ?? (Array.isArray(items) ? Math.min(256, Math.ceil(items.length / (4 * concurrency))) : 1));

  async function* run(): AsyncGenerator<R> {
    const fn = await deps.encodeFunction();
    const source = Symbol.asyncIterator in items ? (items as AsyncIterable<unknown>)[Symbol.asyncIterator]() : (items as Iterable<unknown>)[Symbol.iterator]();
    const internal = new AbortController();
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
      const task = await encodeTask(fn, chunk, { kind: TaskKind.map, dumpsOptions: deps.dumpsOptions });
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
      if (window.length > 0) internal.abort(new Error('map stopped early'));
      if (!done) await (source as { return?: () => unknown }).return?.();
    }
  }

  return {
    [Symbol.asyncIterator]: () => run(),
    async toArray() {
      const out: R[] = [];
      for await (const v of run()) out.push(v);
      return out;
    },
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
