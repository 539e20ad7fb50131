// The extension point: registry reducers (per-call registry and the global `register`), the per-call
// `reducerOverride` hook, the `[reduceSymbol]` method, getState/setState cycles, ownProps, code reducers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DecodeError, EncodeError, ModulePickleError, Registry, defaultRegistry, dumps, dumpsSync, loads, loadsSync,
  reduceSymbol, register, type Reducer,
} from '../src/index.ts';

class Point {
  constructor(readonly x: number, readonly y: number) {}
}
const pointReducer: Reducer<Point, [number, number]> = {
  name: 'test.Point',
  reduce: (p) => [p.x, p.y],
  restore: ([x, y]) => new Point(x, y),
};
const points = new Registry(defaultRegistry).register(Point, pointReducer);

test('a per-call registry reducer round-trips instances, keeping sharing', async () => {
  const p = new Point(1, 2);
  const value = { a: p, b: [p, new Point(3, 4)], when: new Date(0) };
  const bytes = await dumps(value, { registry: points });
  const back = (await loads(bytes, { registry: points })) as typeof value;
  assert.ok(back.a instanceof Point);
  assert.deepEqual([back.a.x, back.a.y], [1, 2]);
  assert.equal(back.a, back.b[0]);
  assert.ok(back.b[1] instanceof Point);
  assert.ok(back.when instanceof Date, 'built-ins still work through a child registry');
  assert.deepEqual(dumpsSync(back, { registry: points }), bytes);
});

test('decoding without the reducer gives ERR_MP_UNKNOWN_REDUCER', async () => {
  const bytes = await dumps(new Point(1, 2), { registry: points });
  assert.throws(() => loadsSync(bytes), (e: unknown) => e instanceof DecodeError && e.code === 'ERR_MP_UNKNOWN_REDUCER' && /test\.Point/.test(e.message));
});

test('register() adds to the default registry', async () => {
  class Money {
    constructor(readonly cents: bigint, readonly currency: string) {}
  }
  register(Money, {
    name: 'test.Money',
    reduce: (m: Money): [bigint, string] => [m.cents, m.currency],
    restore: ([c, cur]: [bigint, string]) => new Money(c, cur),
  });
  const back = (await loads(await dumps({ price: new Money(1999n, 'EUR') }))) as { price: Money };
  assert.ok(back.price instanceof Money);
  assert.equal(back.price.cents, 1999n);
  assert.throws(
    () => register(Money, { name: 'test.Money', reduce: () => [], restore: () => new Money(0n, '') }),
    (e: unknown) => e instanceof ModulePickleError && e.code === 'ERR_MP_REDUCER_EXISTS',
  );
});

test('reducerOverride takes over values before the registry, including built-ins', async () => {
  const isoDate: Reducer<Date, string> = { name: 'test.isoDate', reduce: (d) => d.toISOString(), restore: (s) => new Date(`${s}`) };
  const reg = new Registry(defaultRegistry).registerMatcher(() => false, isoDate as Reducer<object, unknown, unknown>);
  const seen: string[] = [];
  const value = { at: new Date(86_400_000), nested: { p: new Point(5, 6) }, untouched: new Map([[1, 2]]) };
  const bytes = await dumps(value, {
    registry: reg,
    reducerOverride: (v: object, ctx: { path(): readonly unknown[] }) => {
      seen.push(JSON.stringify(ctx.path()));
      if (v instanceof Date) return { reducer: 'test.isoDate' };
      if (v instanceof Point) return { reducer: pointReducer as unknown as Reducer<never, unknown, unknown> };
      return undefined;
    },
  });
  const regBoth = new Registry(reg).register(Point, pointReducer);
  const back = (await loads(bytes, { registry: regBoth })) as typeof value;
  assert.equal(back.at.getTime(), 86_400_000);
  assert.ok(back.nested.p instanceof Point);
  assert.ok(back.untouched instanceof Map);
  assert.ok(seen.includes(JSON.stringify(['nested', 'p'])), `override sees paths: ${seen.join(' ')}`);
  assert.notDeepEqual(bytes, await dumps({ ...value, nested: { p: null } }, { registry: reg }));
});

test('an object can pickle itself with a [reduceSymbol] method naming a reducer', async () => {
  const tempReducer: Reducer<Temperature, number> = { name: 'test.Temperature', reduce: (t) => t.celsius, restore: (c) => new Temperature(c) };
  class Temperature {
    constructor(readonly celsius: number) {}
    [reduceSymbol]() {
      return { reducer: tempReducer as unknown as Reducer<never, unknown, unknown> };
    }
  }
  const reg = new Registry(defaultRegistry).registerMatcher(() => false, tempReducer as Reducer<object, unknown, unknown>);
  const t = new Temperature(21.5);
  const back = (await loads(await dumps([t, t]), { registry: reg })) as Temperature[];
  assert.ok(back[0] instanceof Temperature);
  assert.equal(back[0].celsius, 21.5);
  assert.equal(back[0], back[1]);
});

test('[reduceSymbol] may return a restore function pickled by reference, with args and state', async () => {
  class Counter {
    count = 0;
    constructor(readonly label: string) {}
    [reduceSymbol]() {
      return { restore: makeCounter, args: [this.label], state: { count: this.count, self: this } };
    }
  }
  function makeCounter(label: string): Counter {
    return new Counter(label);
  }
  const reg = new Registry(defaultRegistry).registerValue(makeCounter, {
    name: 'test.makeCounter', reduce: () => null, restore: () => makeCounter,
  });
  const c = new Counter('hits');
  c.count = 7;
  const back = (await loads(await dumps({ c }, { registry: reg }), { registry: reg })) as { c: Counter & { self?: unknown } };
  assert.ok(back.c instanceof Counter);
  assert.equal(back.c.label, 'hits');
  assert.equal(back.c.count, 7);
  assert.equal(back.c.self, back.c, 'state may point back at the value');
});

class TreeNode {
  parent: TreeNode | null = null;
  children: TreeNode[] = [];
  constructor(readonly name: string) {}
}
const treeReducer: Reducer<TreeNode, string, { parent: TreeNode | null; children: TreeNode[] }> = {
  name: 'test.TreeNode',
  reduce: (n) => n.name,
  restore: (name) => new TreeNode(name),
  getState: (n) => ({ parent: n.parent, children: n.children }),
  setState: (n, s) => Object.assign(n, s),
};

test('cycles go through getState/setState', async () => {
  const reg = new Registry(defaultRegistry).register(TreeNode, treeReducer);
  const root = new TreeNode('root');
  for (const name of ['a', 'b']) {
    const kid = new TreeNode(name);
    kid.parent = root;
    root.children.push(kid);
  }
  root.children.push(root);
  const value = { root, map: new Map([[root, root.children[0]]]) };
  const bytes = await dumps(value, { registry: reg });
  const back = (await loads(bytes, { registry: reg })) as typeof value;
  assert.ok(back.root instanceof TreeNode);
  assert.equal(back.root.children[0]!.parent, back.root);
  assert.equal(back.root.children[2], back.root);
  assert.equal(back.map.get(back.root), back.root.children[0]);
  assert.deepEqual(dumpsSync(back, { registry: reg }), bytes);
});

test('a cycle through reduce() arguments is ERR_MP_CYCLE_IN_ARGS with the path', () => {
  class Selfish {
    box = { me: this as Selfish };
  }
  const reg = new Registry(defaultRegistry).register(Selfish, { name: 'test.Selfish', reduce: (s) => [s.box], restore: () => new Selfish() });
  assert.throws(() => dumpsSync({ list: [new Selfish()] }, { registry: reg }), (e: unknown) => {
    assert.ok(e instanceof EncodeError);
    assert.equal(e.code, 'ERR_MP_CYCLE_IN_ARGS');
    assert.match(e.message, /root\.list\[0\]/);
    return true;
  });
});

test('ownProps keeps own properties with attributes and extensibility', async () => {
  class Tagged {
    constructor(readonly id: number) {}
  }
  const reg = new Registry(defaultRegistry).register(Tagged, { name: 'test.Tagged', ownProps: true, reduce: (t) => t.id, restore: (id) => new Tagged(Number(id)) });
  const t = new Tagged(3) as Tagged & { note?: string };
  Object.defineProperty(t, 'note', { value: 'hidden', enumerable: false });
  Object.freeze(t);
  const back = (await loads(await dumps(t, { registry: reg }), { registry: reg })) as typeof t;
  assert.equal(back.id, 3);
  assert.equal(back.note, 'hidden');
  assert.equal(Object.getOwnPropertyDescriptor(back, 'note')?.enumerable, false);
  assert.ok(Object.isFrozen(back));
});

test('a reducer marked code is refused by loads(bytes, { code: false })', async () => {
  class Script {
    constructor(readonly src: string) {}
  }
  const reg = new Registry(defaultRegistry).register(Script, { name: 'test.Script', code: true, reduce: (s) => s.src, restore: (s) => new Script(String(s)) });
  const bytes = await dumps({ s: new Script('1+1') }, { registry: reg });
  await assert.rejects(loads(bytes, { registry: reg, code: false }), (e: unknown) => e instanceof DecodeError && e.code === 'ERR_MP_CODE_REFUSED');
  assert.throws(() => loadsSync(bytes, { registry: reg, code: false }), (e: unknown) => e instanceof DecodeError && e.code === 'ERR_MP_CODE_REFUSED');
  assert.ok(((await loads(bytes, { registry: reg })) as { s: unknown }).s instanceof Script);
});

test('restore() that throws gives a typed DecodeError', async () => {
  class Fragile {}
  const reg = new Registry(defaultRegistry).register(Fragile, { name: 'test.Fragile', reduce: () => 0, restore: () => { throw new Error('nope'); } });
  const bytes = await dumps([new Fragile()], { registry: reg });
  assert.throws(() => loadsSync(bytes, { registry: reg }), (e: unknown) => e instanceof ModulePickleError && /nope/.test(`${e.message} ${String((e as Error).cause)}`));
});

test('payload sections: encode after the body (descending rank), decode before it (ascending rank)', async () => {
  const order: string[] = [];
  const ids = Symbol('ids');
  class Ticket {
    constructor(readonly id: number) {}
  }
  const reg = new Registry(defaultRegistry)
    .register(Ticket, {
      name: 'test.Ticket',
      reduce: (t, ctx) => {
        const seen = (ctx.scratch.get(ids) as number[] | undefined) ?? [];
        ctx.scratch.set(ids, [...seen, t.id]);
        return t.id;
      },
      restore: (id, ctx) => {
        assert.ok((ctx.scratch.get('table') as number[]).includes(Number(id)), 'the section was decoded before the body');
        return new Ticket(Number(id));
      },
    })
    .registerSection({
      name: 'test.table', rank: 20,
      encode: (ctx) => { order.push('encode table'); return ctx.scratch.get(ids); },
      decode: (data, ctx) => { order.push('decode table'); ctx.scratch.set('table', data); },
    })
    .registerSection({
      name: 'test.first', rank: 10,
      encode: () => { order.push('encode first'); return 'hello'; },
      decode: (data) => { order.push(`decode first ${String(data)}`); },
    })
    .registerSection({ name: 'test.empty', rank: 30, encode: () => undefined, decode: () => assert.fail('an omitted section is not decoded') });
  const bytes = await dumps([new Ticket(7), new Ticket(9)], { registry: reg });
  assert.deepEqual(order.splice(0), ['encode table', 'encode first']);
  assert.equal(bytes[5], 2, 'two sections written, the empty one omitted');
  const back = (await loads(bytes, { registry: reg })) as Ticket[];
  assert.deepEqual(order, ['decode first hello', 'decode table']);
  assert.deepEqual(back.map((t) => t.id), [7, 9]);
  assert.deepEqual(dumpsSync(back, { registry: reg }), bytes, 'deterministic with sections');
  assert.throws(() => loadsSync(bytes), (e: unknown) => e instanceof DecodeError && e.code === 'ERR_MP_UNKNOWN_SECTION');
});

test('a code section is refused by { code: false }; an async section needs loads/dumps', async () => {
  const reg = new Registry(defaultRegistry)
    .registerSection({ name: 'test.code', rank: 10, code: true, encode: () => 1, decode: () => {} });
  const bytes = await dumps({ a: 1 }, { registry: reg });
  assert.equal(bytes[4]! & 1, 1, 'the header flags the payload as carrying code');
  await assert.rejects(loads(bytes, { registry: reg, code: false }), (e: unknown) => e instanceof DecodeError && e.code === 'ERR_MP_CODE_REFUSED');

  const slow = new Registry(defaultRegistry).registerSection({
    name: 'test.async', rank: 10,
    encode: async () => 'later',
    decode: async () => { await new Promise((r) => setTimeout(r, 1)); },
  });
  assert.throws(() => dumpsSync(1, { registry: slow }), (e: unknown) => e instanceof EncodeError && e.code === 'ERR_MP_ASYNC_REQUIRED');
  const payload = await dumps(1, { registry: slow });
  assert.equal(await loads(payload, { registry: slow }), 1);
  assert.throws(() => loadsSync(payload, { registry: slow }), (e: unknown) => e instanceof DecodeError && e.code === 'ERR_MP_ASYNC_REQUIRED');
});

test('reducers whose parts nest 100,000 deep: args, state and [reduceSymbol] go through the same iterative walk', () => {
  class Link {
    constructor(readonly value: number, public next: Link | null) {}
  }
  // One registry per way of nesting: through reduce() args, through getState, through a [reduceSymbol] method.
  const byArgs = new Registry(defaultRegistry).register(Link, {
    name: 'test.Link.args',
    reduce: (l) => [l.value, l.next],
    restore: ([value, next]) => new Link(value as number, next as Link | null),
  });
  const byState = new Registry(defaultRegistry).register(Link, {
    name: 'test.Link.state',
    reduce: (l) => l.value,
    restore: (value) => new Link(value as number, null),
    getState: (l) => ({ next: l.next }),
    setState: (l, s) => { l.next = (s as { next: Link | null }).next; },
  });
  const DEEP = 100_000;
  let chain: Link | null = null;
  for (let i = 0; i < DEEP; i++) chain = new Link(i, chain);
  for (const registry of [byArgs, byState]) {
    const back = loadsSync(dumpsSync(chain, { registry }), { registry }) as Link;
    let node: Link | null = back;
    let count = 0;
    for (; node; node = node.next) {
      assert.ok(node instanceof Link);
      assert.equal(node.value, DEEP - 1 - count++);
    }
    assert.equal(count, DEEP);
  }

  class Cell {
    constructor(readonly inner: unknown) {}
    [reduceSymbol]() {
      return { reducer: 'test.Cell' };
    }
  }
  const cells = new Registry(defaultRegistry).registerMatcher((v): v is Cell => v instanceof Cell, {
    name: 'test.Cell',
    reduce: (c: Cell) => c.inner,
    restore: (inner) => new Cell(inner),
  } as Reducer<Cell, unknown, unknown>);
  let cell: unknown = 'bottom';
  for (let i = 0; i < DEEP; i++) cell = new Cell(cell);
  let out = loadsSync(dumpsSync(cell, { registry: cells }), { registry: cells });
  for (let i = 0; i < DEEP; i++) {
    assert.ok(out instanceof Cell);
    out = out.inner;
  }
  assert.equal(out, 'bottom');
});

test('section data may carry binary data: each section is a value stream with its own buffer table', async () => {
  let got: unknown;
  const registry = new Registry(defaultRegistry).registerSection({
    name: 'test.binary',
    rank: 5,
    encode: () => { const ab = new ArrayBuffer(8); return { a: new Uint16Array(ab, 2, 2).fill(7), b: Buffer.from(ab, 6, 2) }; },
    decode: (data) => { got = data; },
  });
  const back = await loads(await dumps({ body: new Float32Array([1.5]) }, { registry }), { registry });
  const { a, b } = got as { a: Uint16Array; b: Buffer };
  assert.deepEqual([...a], [7, 7]);
  assert.equal(a.buffer, b.buffer, 'the two views share one buffer in the section too');
  assert.equal((back as { body: Float32Array }).body[0], 1.5);
});
