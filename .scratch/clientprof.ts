import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createQueueExecutor } from '../src/index.ts';
import { startRedis } from '../test/fixtures/queue/redis.ts';
import { startWorkerProc } from '../test/fixtures/queue/procs.ts';
const KEY = 'test-key-0123456789abcdef';
const redis = await startRedis();
const cwd = mkdtempSync(join(tmpdir(), 'cp-'));
const w = await startWorkerProc(['dist/cli/main.js', 'worker', '--redis', redis.url, '--queue', 'cp', '--concurrency', '8', '--cache', join(cwd, 'c')], { cwd: process.cwd(), env: { ...process.env, MODULEPICKLE_KEY: KEY, NODE_OPTIONS: process.env.WPROF ? '--cpu-prof --cpu-prof-dir=/tmp/wprof' : '' }, ready: /ready on queue/ });
const ex = createQueueExecutor({ connection: redis.url, queue: 'cp', key: KEY });
await ex.ready();
const inc = (x: number) => x + 1;
await Promise.all(Array.from({ length: 200 }, (_, i) => ex.run(inc, i)));
for (let r = 0; r < 3; r++) {
  const t = performance.now();
  await Promise.all(Array.from({ length: 1000 }, (_, i) => ex.run(inc, i)));
  console.log('jobs/s', (1000 / ((performance.now() - t) / 1000)).toFixed(0));
}
await ex.close(); await w.stop(); await redis.stop();
