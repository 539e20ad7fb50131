import { dumps, loads } from '../src/index.ts';
import { encodeTask } from '../src/executors/task.ts';
const g = (x: number) => x + 1;
async function m(label: string) {
  for (let i = 0; i < 200; i++) await encodeTask(g, [i]);
  let t = performance.now();
  for (let i = 0; i < 1000; i++) await encodeTask(g, [i]);
  const e = (performance.now() - t);
  t = performance.now();
  for (let i = 0; i < 1000; i++) await loads(await dumps(i));
  console.log(label, 'encodeTask us', e.toFixed(0), 'dumps+loads us', (performance.now() - t).toFixed(0));
}
await m('before bullmq');
await import('bullmq');
await m('after bullmq');
