/* What cannot travel fails at dumps time with a typed code and a capture path; untrusted payloads are refused. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as path from 'node:path';
import { dumps, loads, loadsSync, Registry, defaultRegistry } from '../src/index.ts';

interface Coded {
  code?: string;
  message: string;
}

async function dumpsError(value: unknown): Promise<Coded> {
  try {
    await dumps(value);
  } catch (e) {
    return e as Coded;
  }
  throw new Error('dumps did not throw');
}

const kOnlyKey = Symbol('only-in-a-key');
class Keyed {
  [kOnlyKey](): number {
    return 1;
  }
}

describe('dumps-time errors', () => {
  it('a live handle: code and capture path', async () => {
    const db = { socket: new net.Socket() };
    const handler = () => db.socket.write('x');
    const e = await dumpsError({ handler });
    assert.equal(e.code, 'ERR_MP_LIVE_HANDLE');
    assert.match(e.message, /handler.*captures\.db\.socket/);
    assert.match(e.message, /open it on the receiver/);
  });

  it('a WeakMap capture', async () => {
    const cache = new WeakMap<object, number>();
    const e = await dumpsError(() => cache.get({}));
    assert.equal(e.code, 'ERR_MP_UNSUPPORTED_TYPE');
    assert.match(e.message, /captures\.cache/);
  });

  it('a native function unreachable by reference', async () => {
    const format = new Intl.NumberFormat('en').format;
    const e = await dumpsError(() => format(1));
    assert.equal(e.code, 'ERR_MP_NATIVE_FUNCTION');
    assert.match(e.message, /captures\.format/);
  });

  it("an arrow using its creator's this", async () => {
    class Widget {
      size = 3;
      handler() {
        const k = 2;
        return () => this.size * k;
      }
    }
    const e = await dumpsError(new Widget().handler());
    assert.equal(e.code, 'ERR_MP_LEXICAL_THIS');
    assert.match(e.message, /const self = this/);
  });

  it("a class field arrow using the instance's this, detached from its instance", async () => {
    class Button {
      label = 'ok';
      onClick = () => this.label;
    }
    const e = await dumpsError(new Button().onClick);
    assert.equal(e.code, 'ERR_MP_LEXICAL_THIS');
  });

  it("an arrow using its creator's arguments", async () => {
    function outer(..._xs: number[]) {
      // eslint-disable-next-line prefer-rest-params
      return () => arguments.length;
    }
    const e = await dumpsError(outer(1, 2));
    assert.equal(e.code, 'ERR_MP_LEXICAL_ARGUMENTS');
  });

  it('a name used only in a computed key while the class is defined', async () => {
    const e = await dumpsError(Keyed);
    assert.equal(e.code, 'ERR_MP_UNCAPTURED_NAME');
    assert.match(e.message, /kOnlyKey/);
  });

  it('a Proxy captured by a closure', async () => {
    const p = new Proxy({}, {});
    const e = await dumpsError(() => p);
    assert.equal(e.code, 'ERR_MP_PROXY');
    assert.match(e.message, /captures\.p/);
  });
});

describe('untrusted input: loads(bytes, { code: false })', () => {
  const refused = (e: unknown): boolean => (e as Coded).code === 'ERR_MP_CODE_REFUSED';

  it('refuses a function, a class instance, a module namespace and built-in references (Math.max, process)', async () => {
    class Thing {
      x = 1;
    }
    for (const value of [() => 1, new Thing(), { ns: path }, { f: Math.max }, { p: process }, [1, 2, function named() {}]]) {
      const bytes = await dumps(value);
      await assert.rejects(loads(bytes, { code: false }), refused);
      assert.throws(() => loadsSync(bytes, { code: false }), refused);
    }
  });

  it('refuses a payload whose header code flag was cleared (the body still carries code)', async () => {
    let ran = false;
    const bytes = Buffer.from(await dumps({ f: () => (ran = true) }));
    bytes[4] = 0;
    await assert.rejects(loads(bytes, { code: false }), refused);
    assert.equal(ran, false);
  });

  it('returns plain data in data-only mode', async () => {
    const data = { a: [1, 'two', new Map([[3, new Date(0)]])] };
    assert.deepEqual(await loads(await dumps(data), { code: false }), data);
  });

  it('rejects crafted function arguments with a typed error before evaluating anything', async () => {
    class Fake {}
    const crafted: unknown[] = [
      { t: 'value', kind: 'arrow', expression: '(() => 1)', strict: true, url: '', line: 0, column: 0, offset: 1, home: false, eager: {}, scope: { names: ['a = globalThis.pwned = 1'], parent: null } },
      { t: 'value', kind: 'nope', expression: '1', eager: {}, scope: null },
      { t: 'ref', ref: { module: { kind: 'local', path: '../../etc/passwd', esm: false }, view: 'exports', path: [] } },
      { t: 'ref', ref: { module: { kind: 'weird' }, view: 'exports', path: [] } },
      { t: 'elsewhere' },
    ];
    for (const args of crafted) {
      const reg = new Registry();
      reg.register(Fake, { name: 'mp.function', code: true, reduce: () => args, restore: () => new Fake() });
      const bytes = await dumps(new Fake(), { registry: reg });
      await assert.rejects(loads(bytes), (e: unknown) => {
        assert.match((e as Coded).code ?? '', /^ERR_MP_BAD_(FUNCTION|MODULE_REF)$/, (e as Coded).message);
        return true;
      });
    }
    assert.equal((globalThis as { pwned?: unknown }).pwned, undefined);
    void defaultRegistry;
  });
});
