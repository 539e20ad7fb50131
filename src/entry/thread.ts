/**
 * Entry of a pool thread (`dist/entry/thread.js`, started by `createThreadPool`): the worker loop over the
 * thread's port to its pool. The cache folder is the ship layer's default (`MODULEPICKLE_CACHE` in the thread's
 * environment, else the user cache folder), as for worker processes.
 */
import { parentPort } from 'node:worker_threads';
import '../index.ts'; // registers every layer (functions, modules, ship) into the default registry
import { startWorker } from '../executors/worker-loop.ts';

if (!parentPort) throw new Error('dist/entry/thread.js runs inside a worker thread started by createThreadPool');
process.setSourceMapsEnabled(true);
startWorker({ port: parentPort });
