/**
 * `createPool`: local worker processes (the embedded default). `createStdioExecutor`: any command that runs
 * `modulepickle worker --stdio` (docker, ssh, kubectl). Both are the shared executor over the process transport.
 */
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WorkerError } from '../errors.ts';
import { createExecutor, type Executor, type ExecutorOptions } from './executor.ts';
import { processTransport, type SpawnSpec } from './transports/process.ts';

/** Options of the executors whose workers run on this machine (`createPool`, `createThreadPool`). */
export interface LocalWorkerOptions extends ExecutorOptions {
  /** Number of workers (default: the number of CPUs). */
  readonly workers?: number;
  /** Environment of the workers (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** Cache folder for shipped code on this machine (sets `MODULEPICKLE_CACHE` for the workers). */
  readonly cacheDir?: string;
  /** `node` flags for the workers, e.g. `['--max-old-space-size=512']` (threads: default this process's `execArgv`). */
  readonly execArgv?: readonly string[];
}

/** Options of {@link createPool}. */
export interface PoolOptions extends LocalWorkerOptions {
  /** Working directory of the workers (default: this process's). */
  readonly cwd?: string;
}

/** The workers' environment: `env` (default this process's) with `MODULEPICKLE_CACHE` set from `cacheDir`. */
export function localWorkerEnv(options: LocalWorkerOptions): NodeJS.ProcessEnv {
  const env = { ...(options.env ?? process.env) };
  if (options.cacheDir) env['MODULEPICKLE_CACHE'] = options.cacheDir;
  return env;
}

/** Options of {@link createStdioExecutor}. */
export interface StdioExecutorOptions extends ExecutorOptions {
  /** The command and its arguments, e.g. `['ssh', '-T', 'host', 'npx', 'modulepickle', 'worker', '--stdio']`. */
  readonly command: readonly string[];
  /** Number of processes of that command to run (default 1). */
  readonly workers?: number;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Path of a built entry: `dist/entry/worker.js` (worker processes) or `dist/entry/thread.js` (pool threads). When
 * this module runs from TypeScript sources (tests, tsx), the sibling `dist/` build is used so workers start as plain
 * `node`. @throws WorkerError ERR_MP_WORKER_ENTRY
 */
export function workerEntryPath(entry: 'worker' | 'thread' = 'worker'): string {
  const here = fileURLToPath(import.meta.url);
  const built = here.endsWith('.ts') ? here.replace(/[\\/]src[\\/]executors[\\/]pool\.ts$/, `/dist/entry/${entry}.js`) : fileURLToPath(new URL(`../entry/${entry}.js`, import.meta.url));
  if (!existsSync(built)) {
    throw new WorkerError('ERR_MP_WORKER_ENTRY', `the worker entry ${built} does not exist: run 'npm run build' first`);
  }
  return built;
}

/** A pool of local worker processes. @throws WorkerError ERR_MP_WORKER_ENTRY when the package is not built */
export function createPool(options: PoolOptions = {}): Executor {
  const entry = workerEntryPath();
  const env = localWorkerEnv(options);
  const command = [process.execPath, ...(options.execArgv ?? []), entry];
  return processExecutor('pool', 'p', { command, cwd: options.cwd, env }, options.workers ?? availableParallelism(), options);
}

/** Workers reached through any command's stdin/stdout. @throws WorkerError ERR_MP_BAD_OPTION */
export function createStdioExecutor(options: StdioExecutorOptions): Executor {
  if (!Array.isArray(options.command) || options.command.length === 0 || !options.command.every((c) => typeof c === 'string')) {
    throw new WorkerError('ERR_MP_BAD_OPTION', "createStdioExecutor needs { command: [program, ...args] }, e.g. ['docker', 'run', '-i', 'img', 'npx', 'modulepickle', 'worker', '--stdio']");
  }
  const spec = { command: options.command, cwd: options.cwd, env: options.env };
  return processExecutor('stdio', 's', spec, options.workers ?? 1, options);
}

function processExecutor(name: string, prefix: string, spec: SpawnSpec, workers: number, options: ExecutorOptions): Executor {
  const size = Math.max(1, workers);
  const prefetch = Math.max(1, options.prefetch ?? 4);
  // process workers fetch blobs (and manifests) from this executor: payloads name their code version by id
  return createExecutor((deps) => processTransport({ name, prefix, size, prefetch, spawn: () => spec, ...deps }), options, { manifestById: true });
}
