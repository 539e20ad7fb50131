/**
 * Entry of a pool worker process (`node dist/entry/worker.js`): speaks the worker protocol on stdin/stdout.
 * The cache folder comes from `MODULEPICKLE_CACHE_DIR` when set. `modulepickle worker --stdio` runs the same loop.
 */
import '../index.ts'; // registers every layer (functions, modules, ship) into the default registry
import { startWorker } from '../executors/worker-loop.ts';

process.setSourceMapsEnabled(true);
startWorker({ cacheDir: process.env['MODULEPICKLE_CACHE_DIR'] || undefined });
