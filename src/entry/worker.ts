/**
 * Entry of a pool worker process (`node dist/entry/worker.js`): speaks the worker protocol on stdin/stdout.
 * The cache folder is the ship layer's default (`MODULEPICKLE_CACHE`, else the user cache folder). `modulepickle worker --stdio` runs the same loop.
 */
import '../index.ts'; // registers every layer (functions, modules, ship) into the default registry
import { startWorker } from '../executors/worker-loop.ts';

process.setSourceMapsEnabled(true);
startWorker();
