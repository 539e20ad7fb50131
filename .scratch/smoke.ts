import { cpSync, mkdtempSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createQueueExecutor } from '../src/index.ts';
import { startRedis } from '../test/fixtures/queue/redis.ts';
const KEY = 'test-key-0123456789abcdef';
const redis = await startRedis();
const project = realpathSync(mkdtempSync(join(tmpdir(), 'mp-qproj-')));
cpSync('test/fixtures/queue/project', project, { recursive: true });
const procs = [];
for (const n of [1, 2]) {
  const cwd = realpathSync(mkdtempSync(join(tmpdir(), 'mp-qw-')));
  const p = spawn('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs none "$1" && shift && exec "$@"', 'sh', project, process.execPath, realpathSync('dist/cli/main.js'), 'worker', '--redis', redis.url, '--queue', 'smoke', '--concurrency', '4', '--cache', join(cwd, 'cache')], { cwd, env: { ...process.env, MODULEPICKLE_KEY: KEY }, stdio: ['ignore', 'inherit', 'inherit'] });
  procs.push(p);
}
await new Promise(r => setTimeout(r, 1500));
const tasks = await import(join(project, 'src/tasks.ts'));
const ex = createQueueExecutor({ connection: redis.url, queue: 'smoke', key: KEY, dumpsOptions: { root: project } });
await ex.ready();
let t = performance.now();
console.log(await ex.run((x: number) => tasks.work(x), 21), performance.now() - t, ex.stats);
t = performance.now();
console.log(await ex.run((p: string) => tasks.whereAmI(p), project), performance.now() - t, ex.stats);
t = performance.now();
const r = await ex.map((x: number) => tasks.work(x), Array.from({ length: 2000 }, (_, i) => i)).toArray();
console.log(r.length, new Set(r.map(x => x.pid)).size, performance.now() - t, ex.stats);
try { await ex.run((m: string) => tasks.fail(m), 'boom'); } catch (e) { console.log('ERR', e.code, e.message, e.remoteStack); }
await ex.close();
for (const p of procs) p.kill('SIGTERM');
await new Promise(r => setTimeout(r, 500));
await redis.stop();
