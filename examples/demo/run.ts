// `npm run demo`: ship a closure over a small TypeScript project to a stdio worker that runs in another folder,
// edit one module, call again, and show what travelled each time. Everything happens in temp folders.
import { cpSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createStdioExecutor, diffManifests, formatBytes, type ExecutorStats } from '../../src/index.ts';

type Cart = typeof import('./project/src/cart.ts');

const here = fileURLToPath(new URL('.', import.meta.url));
const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const ms = (t: number) => `${(performance.now() - t).toFixed(1)} ms`;

// The project is copied so that the demo's edit never touches the repository.
const project = realpathSync(mkdtempSync(join(tmpdir(), 'modulepickle-demo-project-')));
const workerDir = realpathSync(mkdtempSync(join(tmpdir(), 'modulepickle-demo-worker-')));
cpSync(join(here, 'project'), project, { recursive: true });

const executor = createStdioExecutor({
  // Any command works here: ['ssh', '-T', 'host', 'npx', 'modulepickle', 'worker', '--stdio'], docker run -i, ...
  command: [process.execPath, cli, 'worker', '--stdio', '--cache-dir', join(workerDir, '.cache')],
  cwd: workerDir,
  dumpsOptions: { root: project },
});

let before: ExecutorStats = { ...executor.stats };
function travelled(): string {
  const s = executor.stats;
  const line =
    `sent ${formatBytes(s.bytesSent - before.bytesSent)} (function ${formatBytes(s.functionBytes - before.functionBytes)}` +
    `${s.functionsSent === before.functionsSent ? ' - hash only, the worker had it' : ''}, ` +
    `arguments ${formatBytes(s.argsBytes - before.argsBytes)}, ${s.blobsServed - before.blobsServed} file blob(s) ${formatBytes(s.blobBytesServed - before.blobBytesServed)}), ` +
    `received ${formatBytes(s.bytesReceived - before.bytesReceived)}`;
  before = { ...s };
  return line;
}

try {
  console.log(bold('modulepickle demo'));
  console.log(`  project (2 local modules): ${project}`);
  console.log(`  worker runs in:            ${workerDir}  (its own folder; it never reads the project)\n`);

  let t = performance.now();
  await executor.ready();
  console.log(`${bold('0.')} started the worker: modulepickle worker --stdio (${ms(t)})`);
  before = { ...executor.stats };

  const cart = (await import(join(project, 'src/cart.ts'))) as Cart;
  const basket = [
    { sku: 'tea', price: 4.5, qty: 2 },
    { sku: 'mug', price: 12, qty: 1 },
  ];
  const checkout = (items: typeof basket) => cart.total(items); // a closure over a local module

  t = performance.now();
  let result = await executor.run(checkout, basket);
  const first = executor.lastBuild!;
  console.log(`\n${bold('1.')} run(checkout, basket) -> ${JSON.stringify(result)}   (${ms(t)}; the first call includes one-time setup on both sides)`);
  console.log(`   shipped code version ${first.id.slice(0, 12)}: ${first.manifest.entries.length} files, ${formatBytes(first.totalBytes)}: ${first.manifest.entries.map((e) => e.path).join(', ')}`);
  console.log(`   ${travelled()}`);

  t = performance.now();
  result = await executor.run(checkout, basket);
  console.log(`\n${bold('2.')} same call again -> ${JSON.stringify(result)}   (${ms(t)})`);
  console.log(`   ${travelled()}`);

  const pricing = join(project, 'src/pricing.ts');
  writeFileSync(pricing, readFileSync(pricing, 'utf8').replace('TAX_RATE = 0.2', 'TAX_RATE = 0.25'));
  console.log(`\n${bold('3.')} edited src/pricing.ts: TAX_RATE = 0.2 -> 0.25`);
  t = performance.now();
  result = await executor.run(checkout, basket);
  const second = executor.lastBuild!;
  const diff = diffManifests(first.manifest, second.manifest);
  console.log(`   run(checkout, basket) -> ${JSON.stringify(result)}   (${ms(t)})`);
  console.log(`   new code version ${second.id.slice(0, 12)}; changed: ${diff.changed.join(', ') || 'nothing'}`);
  console.log(`   ${travelled()}`);

  const where = await executor.run(() => process.cwd());
  console.log(`\n${bold('4.')} the worker's cwd: ${where}`);
} finally {
  await executor.close();
  rmSync(project, { recursive: true, force: true });
  rmSync(workerDir, { recursive: true, force: true });
  console.log('\ncleaned up the temp folders; done.');
}
