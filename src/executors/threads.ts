/**
 * `createThreadPool`: the shared executor over the thread transport. The same surface, payloads and code shipping
 * as `createPool`; calls cost a message between threads instead of a pipe round trip between processes, and
 * memory can be shared (SharedArrayBuffer) or moved (`transfer`).
 */
import { availableParallelism } from 'node:os';
import type { ResourceLimits } from 'node:worker_threads';
import { createExecutor, type Executor } from './executor.ts';
import { localWorkerEnv, workerEntryPath, type LocalWorkerOptions } from './pool.ts';
import { threadTransport } from './transports/thread.ts';

/** Options of {@link createThreadPool}: those of `createPool` but `cwd` (threads share this process's). */
export interface ThreadPoolOptions extends LocalWorkerOptions {
  /** Number of threads (default: the number of CPUs); the same as `workers`. */
  readonly threads?: number;
  /**
   * Per-thread heap limits; a thread that exceeds them fails its task with `ERR_MP_WORKER_OUT_OF_MEMORY` and is
   * replaced. Default: `{ maxOldGenerationSizeMb: 2048 }`, so a runaway task cannot take the whole process's memory.
   */
  readonly resourceLimits?: ResourceLimits;
}

/** A pool of worker threads in this process. @throws WorkerError ERR_MP_WORKER_ENTRY when the package is not built */
export function createThreadPool(options: ThreadPoolOptions = {}): Executor {
  const entry = workerEntryPath('thread');
  const env = localWorkerEnv(options);
  const size = Math.max(1, options.threads ?? options.workers ?? availableParallelism());
  const prefetch = Math.max(1, options.prefetch ?? 4);
  const resourceLimits = options.resourceLimits ?? { maxOldGenerationSizeMb: 2048 };
  return createExecutor(
    (deps) => threadTransport({ size, prefetch, entry, env, execArgv: options.execArgv, resourceLimits, ...deps }),
    options,
    { manifestById: true },
  );
}
