import { LocalPool } from '../src/executors/queue/local-pool.ts';
import { createPool } from '../src/index.ts';
import { encodeTask } from '../src/executors/task.ts';
const pool = new LocalPool({ processes: 1, blobServer: { missing: async (h) => [...h], get: async () => new Map() } });
await pool.ready();
const p = createPool({ workers: 1 });
const inc = (x: number) => x + 1;
const task = await encodeTask(inc, [1]);
for (let round = 0; round < 3; round++) {
  let t = performance.now();
  for (let i = 0; i < 1000; i++) await pool.run(task);
  const a = performance.now() - t;
  t = performance.now();
  for (let i = 0; i < 1000; i++) await p.run(inc, i);
  console.log('LocalPool', a.toFixed(0), 'createPool', (performance.now() - t).toFixed(0));
}
await pool.close(); await p.close();
