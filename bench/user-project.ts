// A generated user project for the executor benches: what a TypeScript developer has on disk, run the way the
// README says (`npx tsx src/bench.ts`), and the same compiled by tsc and run with plain node.
//
//   <dir>/package.json        "type": "module"
//   <dir>/tsconfig.json       module nodenext, outDir dist (only src/*.ts and src/lib compile)
//   <dir>/src/lib/v.ts        export function v(x) — the local module the benched closures use (and that is edited)
//   <dir>/src/gen/f<i>.ts     filler modules, so the tree is real-sized (they ship, nothing imports them)
//   <dir>/src/bench.ts        the bench script (copied from bench/user-scripts/), with src/measure.ts beside it
//   <dir>/node_modules/       links to this repository (modulepickle) and to the peers it measures against
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const linked = ['tsx', 'workerpool', 'piscina', 'tinypool', 'bullmq', 'ioredis'];

/** How the bench script runs: from TypeScript under tsx, or compiled by tsc to JavaScript. */
export type RunMode = 'tsx' | 'js';

/**
 * Writes a project of about `files` files under `dir`. `modulepickle` is the checkout the project uses (default:
 * this repository; a benchmark may pass an older checkout, built, to compare before and after in one run).
 */
export function makeUserProject(dir: string, files: number, modulepickle: string = repo): void {
  mkdirSync(join(dir, 'src', 'lib'), { recursive: true });
  mkdirSync(join(dir, 'src', 'gen'), { recursive: true });
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'bench-user-project', private: true, type: 'module', dependencies: { modulepickle: '*' } }, null, 2));
  writeFileSync(join(dir, '.gitignore'), 'node_modules\ndist\n');
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, outDir: 'dist', rootDir: 'src', skipLibCheck: true, types: ['node'], typeRoots: [join(repo, 'node_modules/@types')] },
      files: ['src/bench.ts', 'src/lib/v.ts'],
    }),
  );
  writeFileSync(join(dir, 'src', 'lib', 'v.ts'), 'export const bump: number = 0;\nexport function v(x: number): number {\n  return x + bump;\n}\n');
  for (let i = 0; i < files - 5; i++) writeFileSync(join(dir, 'src', 'gen', `f${i}.ts`), `export const f${i} = (x: number): number => x + ${i};\n// ${'x'.repeat(160)}\n`);
  symlinkSync(modulepickle, join(dir, 'node_modules', 'modulepickle'));
  for (const name of linked) if (existsSync(join(repo, 'node_modules', name))) symlinkSync(join(repo, 'node_modules', name), join(dir, 'node_modules', name));
  mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
  symlinkSync(join(repo, 'node_modules', 'tsx', 'dist', 'cli.mjs'), join(dir, 'node_modules', '.bin', 'tsx'));
  mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true });
  symlinkSync(join(repo, 'node_modules', '@types', 'node'), join(dir, 'node_modules', '@types', 'node'));
}

/**
 * The checkout to compare against, from `BENCH_BASELINE` (a built modulepickle checkout, e.g. a `git worktree` of
 * an older commit with `npm run build` done), or undefined.
 */
export function baselineCheckout(): string | undefined {
  const b = process.env['BENCH_BASELINE'];
  return b && existsSync(join(b, 'dist', 'index.js')) ? b : undefined;
}

/** Runs `bench/user-scripts/<script>` inside the project; resolves with the JSON its last output line holds. */
export async function runUserScript<T>(dir: string, script: string, mode: RunMode, env: NodeJS.ProcessEnv = {}): Promise<T> {
  copyFileSync(join(repo, 'bench', 'user-scripts', script), join(dir, 'src', 'bench.ts'));
  copyFileSync(join(repo, 'bench', 'user-scripts', 'measure.ts'), join(dir, 'src', 'measure.ts'));
  let command: string[];
  if (mode === 'tsx') command = [join(dir, 'node_modules', '.bin', 'tsx'), 'src/bench.ts'];
  else {
    await run([process.execPath, join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], dir, env);
    command = [process.execPath, 'dist/bench.js'];
  }
  const out = await run(command, dir, { ...env, BENCH_MODE: mode });
  const last = out.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as T;
}

function run(command: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = command;
    const child = spawn(cmd!, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command.join(' ')} exited with ${code}:\n${out.slice(-2000)}`))));
  });
}
