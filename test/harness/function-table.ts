/**
 * Table driver for function cases: each case is built here, dumped once with its check, then checked at home,
 * in this process after `loads`, and in ONE fresh `node` process that decodes every payload of the table
 * (plain node on dist/, so build first). Behaviour is compared, not text.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { dumps, loads } from '../../src/index.ts';
import { runCheck } from '../fixtures/functions/normalize.mjs';

const run = promisify(execFile);

/** One case: `make` builds the value, `check` exercises it (runs at home and on every receiver). */
export interface FunctionCase {
  readonly name: string;
  readonly make: () => any;
  readonly check: (value: any) => unknown;
  /** Options for dumps. */
  readonly options?: Record<string, unknown>;
  /** Options for loads, in process and in the fresh node process (JSON data, e.g. `root`). */
  readonly loadOptions?: Record<string, unknown>;
}

/** Runs the payload folder through a child decoder and returns its JSON results. */
export async function decodeInChild(dir: string, nodeArgs: string[] = [], cwd = process.cwd(), dist?: string): Promise<Record<string, unknown>> {
  const runner = resolve('test/fixtures/functions/run-payloads.mjs');
  const args = [...nodeArgs, runner, dir, ...(dist ? [dist] : [])];
  const { stdout } = await run(process.execPath, args, { cwd, maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

/** Registers a describe block running every case in process and in one fresh node process. */
export function functionTable(title: string, cases: readonly FunctionCase[]): void {
  describe(title, () => {
    let dir = '';
    const expected = new Map<string, unknown>();
    const inProcess = new Map<string, unknown>();
    const dumpErrors = new Map<string, unknown>();
    let child: Record<string, unknown> = {};
    const key = (i: number): string => String(i).padStart(3, '0');

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'mp-fn-'));
      for (const [i, c] of cases.entries()) {
        try {
          const value = await c.make();
          const bytes = await dumps({ value, check: c.check }, c.options);
          await writeFile(join(dir, `${key(i)}.bin`), bytes);
          if (c.loadOptions) await writeFile(join(dir, `${key(i)}.json`), JSON.stringify(c.loadOptions));
          expected.set(c.name, await runCheck(c.check, value));
          const back = (await loads(bytes, c.loadOptions)) as { value: unknown; check: (v: unknown) => unknown };
          inProcess.set(c.name, await runCheck(back.check, back.value));
        } catch (e) {
          dumpErrors.set(c.name, e);
        }
      }
      child = await decodeInChild(dir);
    });
    after(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    for (const [i, c] of cases.entries()) {
      it(c.name, () => {
        const err = dumpErrors.get(c.name);
        if (err) throw err;
        const want = expected.get(c.name);
        assert.deepEqual(inProcess.get(c.name), want, 'in process');
        assert.deepEqual(child[key(i)], want, 'fresh node process');
      });
    }
  });
}
