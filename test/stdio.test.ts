// The stdio executor against real `modulepickle worker --stdio` processes (dist/ build) running in a temp folder.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createStdioExecutor, FORMAT_VERSION, PROTOCOL_VERSION, WorkerError, type LogHandler } from '../src/index.ts';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const fixtures = fileURLToPath(new URL('./fixtures/executors/', import.meta.url));
let dir = '';
before(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'mp-stdio-')));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const isCode = (code: string) => (e: unknown) => e instanceof WorkerError && e.code === code;

test('runs tasks in a worker started by a command, in another folder', async () => {
  const logs: string[] = [];
  const onLog: LogHandler = (worker, _stream, text) => logs.push(`${worker}:${text}`);
  const ex = createStdioExecutor({ command: [process.execPath, cli, 'worker', '--stdio'], cwd: dir, workers: 2, onLog });
  try {
    await ex.ready();
    assert.equal(await ex.run(() => process.cwd()), dir);
    assert.deepEqual(await ex.map((x: number) => x * x, [1, 2, 3, 4, 5]).toArray(), [1, 4, 9, 16, 25]);
    await ex.run(() => console.log('from stdio worker'));
    assert.ok(logs.some((l) => /^s\d+:from stdio worker/.test(l)), logs.join('|'));
  } finally {
    await ex.close();
  }
});

test('a banner printed by the host before the worker starts is forwarded as output, not parsed', async () => {
  const logs: string[] = [];
  const ex = createStdioExecutor({
    command: [join(fixtures, 'banner-worker.sh'), process.execPath, cli],
    cwd: dir,
    onLog: (_w, _s, text) => logs.push(text),
  });
  try {
    assert.equal(await ex.run((a: number) => a * 3, 14), 42);
    assert.match(logs.join(''), /Welcome to the build host/);
  } finally {
    await ex.close();
  }
});

const mismatches: { name: string; args: string[]; message: RegExp }[] = [
  { name: 'protocol version', args: ['99', String(FORMAT_VERSION)], message: /speaks protocol 99 \/ payload format \d+, this side speaks protocol \d+/ },
  { name: 'payload format version', args: [String(PROTOCOL_VERSION), '42'], message: /payload format 42/ },
];

for (const { name, args, message } of mismatches) {
  test(`a worker with another ${name} fails at connect time with ERR_MP_PROTOCOL_MISMATCH`, async () => {
    const ex = createStdioExecutor({ command: [process.execPath, join(fixtures, 'mismatched-worker.mjs'), ...args], cwd: dir, onLog: () => {} });
    try {
      await assert.rejects(ex.ready(), (e: unknown) => isCode('ERR_MP_PROTOCOL_MISMATCH')(e) && message.test((e as Error).message));
      await assert.rejects(ex.run(() => 1), isCode('ERR_MP_PROTOCOL_MISMATCH'));
    } finally {
      await ex.close({ force: true });
    }
  });
}

test('a command that does not exist fails with ERR_MP_WORKER_START', async () => {
  const ex = createStdioExecutor({ command: [join(dir, 'no-such-command')], onLog: () => {} });
  try {
    await assert.rejects(ex.run(() => 1), isCode('ERR_MP_WORKER_START'));
  } finally {
    await ex.close({ force: true });
  }
});

test('a command that is not a modulepickle worker fails instead of hanging', async () => {
  const ex = createStdioExecutor({ command: ['sh', '-c', 'echo not a worker; exit 0'], onLog: () => {} });
  try {
    await assert.rejects(ex.run(() => 1), (e: unknown) => e instanceof WorkerError && /ERR_MP_WORKER_(EXITED|START)/.test(e.code));
  } finally {
    await ex.close({ force: true });
  }
});

test('createStdioExecutor validates its command', () => {
  assert.throws(() => createStdioExecutor({ command: [] }), isCode('ERR_MP_BAD_OPTION'));
});
