// The `modulepickle` bin, run as a real process from dist/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const run = (args: string[], input?: Uint8Array) => spawnSync(process.execPath, [cli, ...args], { input, encoding: 'utf8' });

const cases: { name: string; args: string[]; status: number; stdout?: RegExp; stderr?: RegExp }[] = [
  { name: 'no command prints usage', args: [], status: 2, stdout: /Usage: modulepickle <command>/ },
  { name: '--help', args: ['--help'], status: 0, stdout: /Commands:\n\s+worker --stdio/ },
  { name: 'help worker', args: ['help', 'worker'], status: 0, stdout: /Usage: modulepickle worker --stdio/ },
  { name: 'worker --help', args: ['worker', '--help'], status: 0, stdout: /--cache-dir DIR/ },
  { name: 'inspect --help', args: ['inspect', '--help'], status: 0, stdout: /Usage: modulepickle inspect <file\|->/ },
  { name: 'inspect -h', args: ['inspect', '-h'], status: 0, stdout: /--json/ },
  { name: '--version', args: ['--version'], status: 0, stdout: /^\d+\.\d+\.\d+/ },
  { name: 'unknown command', args: ['frobnicate'], status: 2, stderr: /unknown command 'frobnicate'/ },
  { name: 'worker without transport', args: ['worker'], status: 2, stderr: /worker --stdio/ },
  { name: 'worker with unknown option', args: ['worker', '--stdio', '--tcp'], status: 2, stderr: /unknown option '--tcp'/ },
  { name: 'inspect without file', args: ['inspect'], status: 2, stderr: /exactly one payload file/ },
  { name: 'inspect of a missing file', args: ['inspect', '/nonexistent/payload.mp'], status: 1, stderr: /ERR_MP_CLI_READ.*cannot read/ },
];

for (const c of cases) {
  test(`cli: ${c.name} exits ${c.status}`, () => {
    const r = run(c.args);
    assert.equal(r.status, c.status, r.stderr);
    if (c.stdout) assert.match(r.stdout, c.stdout);
    if (c.stderr) assert.match(r.stderr, c.stderr);
  });
}

test('cli: worker --stdio exits when stdin closes', () => {
  const r = spawnSync(process.execPath, [cli, 'worker', '--stdio'], { input: '', timeout: 20_000 });
  assert.equal(r.status, 0);
  assert.equal(r.signal, null);
});
