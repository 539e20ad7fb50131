/**
 * `createThreadPool`: the shared executor over the thread transport. The same surface, payloads and code shipping
 * as `createPool`; calls cost a message between threads instead of a pipe round trip between processes, and
 * memory can be shared (SharedArrayBuffer) or moved (`transfer`).
 */
import { availableParallelism } from 'node:os';
import type { ResourceLimits } from 'node:worker_threads';
import { createExecutor, type Executor, type ExecutorOptions } from './executor.ts';
import { workerEntryPath } from './pool.ts';
import { threadTransport } from './transports/thread.ts';

/** Options of {@link createThreadPool}. */
export interface ThreadPoolOptions extends ExecutorOptions {
  /** Number of threads (default: the number of CPUs). */
  readonly threads?: number;
  /** Same as `threads`. */
  readonly workers?: number;
  /** Environment of the threads (default: a copy of this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** Cache folder for shipped code (sets `MODULEPICKLE_CACHE` in the threads' environment). */
  readonly cacheDir?: string;
  /** `node` flags for the threads (default: this process's `execArgv`, as for any Worker). */
  readonly execArgv?: readonly string[];
  /**
   * Per-thread heap limits; a thread that exceeds them fails its task with `ERR_MP_WORKER_OUT_OF_MEMORY` and is
   * replaced. Default: `{ maxOldGenerationSizeMb: 2048 }`, so a runaway task cannot take the whole process's memory.
   */
  readonly resourceLimits?: ResourceLimits;
}

/** A pool of worker threads in this process. @throws WorkerError ERR_MP_WORKER_ENTRY when the package is not built */
export function createThreadPool(options: ThreadPoolOptions = {}): Executor {
  const entry = workerEntryPath('thread');
  const env = { ...(options.env ?? process.env) };
  if (options.cacheDir) env['MODULEPICKLE_CACHE'] = options.cacheDir;
  const size = Math.max(1, options.threads ?? options.workers ?? availableParallelism());
  const prefetch = Math.max(1, options.prefetch ?? 4);
  const resourceLimits = options.resourceLimits ?? { maxOldGenerationSizeMb: 2048 };
  return createExecutor(
    (deps) => threadTransport({ size, prefetch, entry, env, execArgv: options.execArgv, resourceLimits, ...deps }),
    options,
    { manifestById: true },
  );
}
