// `npm run demo` (examples/demo/run.ts) as a real process: it must show the edit's new result and one moved blob.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

test('the demo ships a closure, shows what travelled, moves one blob after an edit, and cleans up', () => {
  const script = fileURLToPath(new URL('../examples/demo/run.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /1\. run\(checkout, basket\) -> \{"items":2,"total":25\.2\}/);
  assert.match(r.stdout, /3 file blob\(s\)/);
  assert.match(r.stdout, /hash only, the worker had it, arguments \d+ B, 0 file blob\(s\)/);
  assert.match(r.stdout, /-> \{"items":2,"total":26\.25\}/);
  assert.match(r.stdout, /changed: src\/pricing\.ts/);
  assert.match(r.stdout, /function \d+ B, arguments \d+ B, 1 file blob\(s\)/);
  assert.match(r.stdout, /cleaned up the temp folders/);
  const dirs = [...r.stdout.matchAll(/(\/\S*modulepickle-demo-(?:project|worker)-\w+)/g)].map((m) => m[1]!);
  assert.ok(dirs.length >= 2);
  for (const d of dirs) assert.equal(spawnSync('test', ['-e', d]).status, 1, `${d} was not removed`);
});
