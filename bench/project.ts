// A generated project for the "first call after a one-file edit" rows of the executor benches.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Writes `files` files (BENCH_PROJECT_FILES, default 2,000) under `<work>/project`: generated modules plus
 * `src/entry.js`, whose export `f` the benches call and whose `bump` they edit. Returns the paths.
 */
export function makeEditProject(work: string): { project: string; target: string; files: number } {
  const files = Number(process.env['BENCH_PROJECT_FILES'] ?? 2000);
  const project = join(work, 'project');
  mkdirSync(join(project, 'src', 'gen'), { recursive: true });
  writeFileSync(join(project, 'package.json'), '{ "name": "bench-project", "type": "module", "private": true }\n');
  for (let i = 0; i < files - 2; i++) writeFileSync(join(project, 'src', 'gen', `m${i}.js`), `export const v${i} = ${i};\n// ${'x'.repeat(200)}\n`);
  const target = join(project, 'src', 'entry.js');
  writeFileSync(target, 'export const bump = 0;\nexport function f(x) { return x + bump; }\n');
  return { project, target, files };
}
