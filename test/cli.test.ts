// The `modulepickle` bin, run as a real process from dist/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dumps } from '../src/index.ts';

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

test('cli: inspect shows functions (by value / by reference, why), module refs and the manifest, without running anything', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'mp-inspect-')));
  try {
    const project = join(dir, 'project');
    cpSync(fileURLToPath(new URL('./fixtures/executors/project/', import.meta.url)), project, { recursive: true });
    const side = (await import(join(project, 'src/side-effect.ts'))) as typeof import('./fixtures/executors/project/src/side-effect.ts');
    const factor = 3;
    const payload = join(dir, 'payload.mp');
    writeFileSync(payload, await dumps((x: number) => side.touch() + x * factor, { root: project }));
    const marker = join(dir, 'marker');
    const r = spawnSync(process.execPath, [cli, 'inspect', payload], { encoding: 'utf8', env: { ...process.env, MP_MARK: marker } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /carries code/);
    assert.match(r.stdout, /sections: ship \(\d+ bytes, code\), modules/);
    assert.match(r.stdout, /arrow by value: .*side\.touch\(\)/);
    assert.match(r.stdout, /why: not reachable as an export .* with 2 captured variable\(s\)/);
    assert.match(r.stdout, /captures: factor, side|captures: side, factor/);
    assert.match(r.stdout, /src\/side-effect\.ts \(local, shipped\)/);
    assert.match(r.stdout, /shipped tree: version [0-9a-f]{16}, \d+ files/);
    assert.match(r.stdout, /blobs carried inline: \d+/);
    assert.equal(existsSync(marker), false, 'inspect imported a module');

    const json = spawnSync(process.execPath, [cli, 'inspect', '-', '--json'], { input: readBytes(payload), encoding: 'utf8' });
    assert.equal(json.status, 0, json.stderr);
    const report = JSON.parse(json.stdout) as { functions: { how: string }[]; manifest: { files: number } };
    assert.equal(report.functions[0]!.how, 'by value');
    assert.ok(report.manifest.files >= 3);

    const data = join(dir, 'data.mp');
    // A plain Date is written natively (format 4); a RegExp still goes through its reducer.
    writeFileSync(data, await dumps({ when: new Date(0), re: /x/g, list: [1, 2] }));
    const d = run(['inspect', data]);
    assert.match(d.stdout, /data only/);
    assert.match(d.stdout, /reduced values: RegExp x1/);

    const cut = join(dir, 'cut.mp');
    writeFileSync(cut, readBytes(payload).subarray(0, 30));
    const bad = run(['inspect', cut]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /error \[ERR_MP_/);
    writeFileSync(cut, 'not a payload');
    assert.match(run(['inspect', cut]).stderr, /ERR_MP_BAD_MAGIC/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function readBytes(file: string): Buffer {
  return readFileSync(file);
}
