/**
 * `modulepickle worker --redis redis://host:port --queue NAME [--concurrency N] [--cache DIR] [--insecure]`:
 * a queue worker. It takes jobs from the BullMQ queue, runs them in a local pool of worker processes, and keeps
 * blobs and materialized trees in its cache folder, so code crosses the network once per worker host.
 */
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { ModulePickleError } from '../errors.ts';
import type { BlobSource } from '../executors/pickler.ts';

/** Help text of `modulepickle worker --redis`. */
export const REDIS_WORKER_HELP = `Usage: modulepickle worker --redis URL --queue NAME [options]

Takes jobs from a BullMQ queue on Redis and runs them in a local pool of worker processes.
Start one on every machine that should work; clients use createQueueExecutor({ connection, queue }).

Jobs must be signed with the shared key in MODULEPICKLE_KEY (the same on clients and workers).
Without a key the worker refuses to start, unless --insecure is given.

Options:
  --redis URL              Redis to connect to, e.g. redis://10.0.0.5:6379 (required).
  --queue NAME             Queue name (required).
  --concurrency N          Jobs run at the same time (default 1).
  --processes N            Local worker processes (default: min(concurrency, CPUs)).
  --inline                 Run tasks in this process instead (no local pool): fastest for very short tasks, but a
                           task that blocks stalls every job here, a crash stops this worker, and a running task
                           that is cancelled cannot be stopped (its job is failed and removed, its result dropped).
  --cache DIR              Cache folder for blobs and trees (default: $MODULEPICKLE_CACHE, else the user cache).
  --key-file FILE          Read the signing key from FILE instead of MODULEPICKLE_KEY.
  --insecure               Run unsigned jobs. Anyone who can write to the queue can then run code here.
  --lock-duration MS       Lock of a running job; a dead worker's job is retried after it (default 30000).
  --stalled-interval MS    How often stalled jobs are looked for (default 30000).
  --max-stalled N          Stalls allowed before a job fails (default 1).
  --max-code-versions N    Recycle a local process after this many code versions (default 64).
  --connect-timeout MS     Give up when Redis does not answer at start within MS (default 10000).
  -h, --help               Show this help.

Stops gracefully on SIGTERM or SIGINT (running jobs finish); a second signal stops at once.
Exit codes: 0 stopped, 1 failure (the error's code is printed), 2 usage error.`;

type Spec = Record<string, 'bool' | 'value'>;
const SPEC: Spec = {
  '--redis': 'value',
  '--queue': 'value',
  '--concurrency': 'value',
  '--processes': 'value',
  '--cache': 'value',
  '--cache-dir': 'value',
  '--key-file': 'value',
  '--insecure': 'bool',
  '--inline': 'bool',
  '--lock-duration': 'value',
  '--stalled-interval': 'value',
  '--max-stalled': 'value',
  '--max-code-versions': 'value',
  '--connect-timeout': 'value',
  '--help': 'bool',
};

class UsageError extends Error {}

function parse(args: readonly string[]): Map<string, string | true> {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-h') {
      flags.set('--help', true);
      continue;
    }
    const [name, inline] = a.split('=', 2) as [string, string | undefined];
    const kind = SPEC[name];
    if (!kind) throw new UsageError(a.startsWith('-') ? `unknown option '${name}'` : `unexpected argument '${a}'`);
    if (kind === 'bool') flags.set(name, true);
    else {
      const v = inline ?? args[++i];
      if (v === undefined) throw new UsageError(`option '${name}' needs a value`);
      flags.set(name, v);
    }
  }
  return flags;
}

function int(flags: Map<string, string | true>, name: string, min: number): number | undefined {
  const v = flags.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`option '${name}' needs an integer >= ${min}, got '${String(v)}'`);
  return n;
}

/** Runs `modulepickle worker --redis ...`; resolves with the exit code once the worker stops. */
export async function redisWorker(args: readonly string[]): Promise<number> {
  let flags: Map<string, string | true>;
  let concurrency: number;
  let processes: number;
  try {
    if (args.includes('--help') || args.includes('-h')) {
      console.log(REDIS_WORKER_HELP);
      return 0;
    }
    flags = parse(args);
    if (flags.has('--help')) {
      console.log(REDIS_WORKER_HELP);
      return 0;
    }
    if (typeof flags.get('--redis') !== 'string') throw new UsageError("worker --redis needs a URL, e.g. '--redis redis://127.0.0.1:6379'");
    if (typeof flags.get('--queue') !== 'string') throw new UsageError("worker --redis needs '--queue NAME'");
    concurrency = int(flags, '--concurrency', 1) ?? 1;
    processes = int(flags, '--processes', 1) ?? Math.max(1, Math.min(concurrency, availableParallelism()));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`modulepickle: ${err.message}\nRun 'modulepickle worker --redis --help' for usage.`);
    return 2;
  }
  const queue = flags.get('--queue') as string;
  const cacheFlag = flags.get('--cache') ?? flags.get('--cache-dir');
  const cacheDir = typeof cacheFlag === 'string' ? cacheFlag : undefined;
  const keyFile = flags.get('--key-file');
  let key: string | undefined;
  if (typeof keyFile === 'string') {
    try {
      key = readFileSync(keyFile, 'utf8').trim();
    } catch (err) {
      throw new ModulePickleError('ERR_MP_CLI_READ', `cannot read the key file '${keyFile}': ${(err as Error).message}`);
    }
  }

  await import('../index.ts'); // registers every layer into the default registry
  const { createQueueWorker } = await import('../executors/queue/worker.ts');
  const { LocalPool } = await import('../executors/queue/local-pool.ts');
  const { inlineRunner, poolRunner, redisBlobSource } = await import('../executors/queue/runner.ts');
  const inline = flags.has('--inline');
  process.setSourceMapsEnabled(true);

  // The pool's processes ask for blobs only while a job runs, after the worker (and its blob store) exists.
  let source: BlobSource | undefined;
  const blobServer: BlobSource = {
    missing: (h) => (source ? source.missing(h) : Promise.resolve([...h])),
    get: (h) => (source ? source.get(h) : Promise.resolve(new Map())),
  };
  const pool = inline ? undefined : new LocalPool({ processes, cacheDir, blobServer, maxCodeVersions: int(flags, '--max-code-versions', 1) });
  const runner = pool ? poolRunner(pool) : inlineRunner({ cacheDir });
  let worker: Awaited<ReturnType<typeof createQueueWorker>> | undefined;
  try {
    // Connect to Redis while the local processes start; a Redis that does not answer fails fast.
    const poolReady = pool?.ready() ?? Promise.resolve();
    poolReady.catch(() => {});
    worker = await createQueueWorker({
      connection: flags.get('--redis') as string,
      queue,
      key,
      insecure: flags.has('--insecure'),
      concurrency,
      runner: async (frame, ctx) => {
        source ??= redisBlobSource(ctx.store);
        return await runner(frame, ctx);
      },
      lockDuration: int(flags, '--lock-duration', 1),
      stalledInterval: int(flags, '--stalled-interval', 1),
      maxStalledCount: int(flags, '--max-stalled', 0),
      connectTimeoutMs: int(flags, '--connect-timeout', 1),
    });
    await poolReady;
  } catch (err) {
    await worker?.close({ force: true });
    await pool?.close({ force: true });
    throw err;
  }
  const running = worker;
  process.stderr.write(
    `[modulepickle worker] ready on queue '${queue}' (${running.name}): concurrency ${concurrency}, ${pool ? `${processes} local process${processes === 1 ? '' : 'es'}` : 'tasks run inline, in this process'}` +
      `${cacheDir ? `, cache ${cacheDir}` : ''}\n`,
  );
  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) {
        void Promise.allSettled([running.close({ force: true }), pool?.close({ force: true })]).then(() => resolve(0));
        return;
      }
      stopping = true;
      process.stderr.write('[modulepickle worker] stopping: waiting for running jobs (signal again to stop now)\n');
      void running
        .close()
        .then(() => pool?.close())
        .then(() => resolve(0), () => resolve(1));
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
