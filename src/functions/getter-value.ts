/**
 * The value of a forwarding getter, read without calling it: compilers export bindings through getters
 * (esbuild `() => foo`, `() => from[key]`; tsc and Babel `function () { return m_1.foo; }`), so a module's
 * exports can be indexed without running user getters (which may warn, throw or do work, as ioredis's `Promise`
 * getter does). Only getters whose body returns a chain of names and property reads are understood; the names are
 * read from the getter's closure through the inspector, properties through descriptors (a nested getter is read the
 * same way). Anything else is not read at all.
 */
import { parse } from 'acorn';
import type * as ESTree from 'estree';
import { types } from 'node:util';
import { inspectFunction, type ScopeSnapshot } from './inspector.ts';

const maxDepth = 4;

function parseGetter(text: string): ESTree.Expression | undefined {
  for (const wrapped of [`(${text})`, `({${text}})`]) {
    let program: ESTree.Program;
    try {
      program = parse(wrapped, { ecmaVersion: 'latest', sourceType: 'script' }) as unknown as ESTree.Program;
    } catch {
      continue;
    }
    const stmt = program.body[0];
    if (program.body.length !== 1 || stmt?.type !== 'ExpressionStatement') return undefined;
    let fn: ESTree.Node = stmt.expression;
    if (fn.type === 'ObjectExpression') {
      const prop = fn.properties[0];
      if (fn.properties.length !== 1 || prop?.type !== 'Property') return undefined;
      fn = prop.value;
    }
    if (fn.type === 'ArrowFunctionExpression' && fn.body.type !== 'BlockStatement') return fn.params.length ? undefined : fn.body;
    if (fn.type !== 'FunctionExpression' && fn.type !== 'ArrowFunctionExpression') return undefined;
    if (fn.params.length || fn.async || (fn as ESTree.FunctionExpression).generator) return undefined;
    const body = (fn.body as ESTree.BlockStatement).body;
    const ret = body.length === 1 ? body[0] : undefined;
    return ret?.type === 'ReturnStatement' && ret.argument ? ret.argument : undefined;
  }
  return undefined;
}

type Read = { value: unknown } | undefined;

function lookup(name: string, scopes: readonly ScopeSnapshot[]): Read {
  for (const s of scopes) if (Object.prototype.hasOwnProperty.call(s.vars, name)) return { value: s.vars[name] };
  return undefined;
}

function property(obj: unknown, key: PropertyKey, depth: number): Read {
  for (let o = obj; (typeof o === 'object' && o !== null) || typeof o === 'function'; o = Object.getPrototypeOf(o)) {
    // A Proxy's descriptor trap is user code.
    if (types.isProxy(o)) return undefined;
    const d = Object.getOwnPropertyDescriptor(o, key);
    if (!d) continue;
    if ('value' in d) return { value: d.value };
    return typeof d.get === 'function' ? readGetterValue(d.get, depth + 1) : undefined;
  }
  return undefined;
}

function evaluate(e: ESTree.Node, scopes: readonly ScopeSnapshot[], depth: number): Read {
  if (e.type === 'Identifier') return lookup(e.name, scopes);
  if (e.type === 'Literal' && (typeof e.value === 'string' || typeof e.value === 'number')) return { value: e.value };
  if (e.type !== 'MemberExpression' || e.object.type === 'Super' || e.optional) return undefined;
  const obj = evaluate(e.object, scopes, depth);
  if (!obj) return undefined;
  let key: Read;
  if (!e.computed && e.property.type === 'Identifier') key = { value: e.property.name };
  else if (e.computed) key = evaluate(e.property, scopes, depth);
  if (!key || (typeof key.value !== 'string' && typeof key.value !== 'number' && typeof key.value !== 'symbol')) return undefined;
  return property(obj.value, key.value, depth);
}

const cache = new WeakMap<Function, Read | null>();

/** What a forwarding getter would return, read without calling it; `undefined` when it cannot be told. */
export function readGetterValue(get: Function, depth = 0): Read {
  const hit = cache.get(get);
  if (hit !== undefined) return hit ?? undefined;
  if (depth > maxDepth) return undefined;
  let text: string;
  try {
    text = Function.prototype.toString.call(get);
  } catch {
    return undefined;
  }
  const expr = parseGetter(text);
  let out: Read;
  if (expr) {
    try {
      out = evaluate(expr, inspectFunction(get).scopes, depth);
    } catch {
      out = undefined;
    }
  }
  cache.set(get, out ?? null);
  return out;
}
