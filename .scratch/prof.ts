import { cpSync, mkdtempSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createQueueExecutor, dumps } from '../src/index.ts';
import { startRedis } from '../test/fixtures/queue/redis.ts';
const KEY = 'test-key-0123456789abcdef';
const redis = await startRedis();
const project = realpathSync(mkdtempSync(join(tmpdir(), 'mp-qproj-')));
cpSync('test/fixtures/queue/project', project, { recursive: true });
const procs = [];
for (const n of [1, 2]) {
  const cwd = realpathSync(mkdtempSync(join(tmpdir(), 'mp-qw-')));
  const p = spawn(process.execPath, [realpathSync('dist/cli/main.js'), 'worker', '--redis', redis.url, '--queue', 'smoke', '--concurrency', '4', '--cache', join(cwd, 'cache')], { cwd, env: { ...process.env, MODULEPICKLE_KEY: KEY }, stdio: ['ignore', 'ignore', 'inherit'] });
  procs.push(p);
}
await new Promise(r => setTimeout(r, 1500));
const tasks = await import(join(project, 'src/tasks.ts'));
const ex = createQueueExecutor({ connection: redis.url, queue: 'smoke', key: KEY, dumpsOptions: { root: project } });
await ex.ready();
const f = (x: number) => tasks.work(x);
for (let i = 0; i < 5; i++) {
  let t = performance.now();
  await dumps(f, { root: project, ship: { blobs: 'none' } });
  const d = performance.now() - t;
  t = performance.now();
  await ex.run(f, i);
  console.log('dumps', d.toFixed(1), 'run', (performance.now() - t).toFixed(1));
}
const g = (x: number) => x + 1;
for (let i = 0; i < 5; i++) {
  let t = performance.now();
  await ex.run(g, i);
  console.log('trivial run', (performance.now() - t).toFixed(1));
}
await ex.close();
for (const p of procs) p.kill('SIGTERM');
await new Promise(r => setTimeout(r, 500));
await redis.stop();
