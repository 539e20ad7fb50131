/**
 * Free variables of a function's source text, with a real parser (acorn) and scope analysis (periscopic).
 * acorn parses every current syntax (class fields, `#private`, static blocks, `??=`, optional chaining) and
 * periscopic is a small, maintained scope analyser over acorn's ESTree output; eslint-scope would also work but is
 * ten times larger and wants an eslint-shaped AST. The fix-ups periscopic needs are done here (class expression
 * names, `arguments`).
 */
import { parse, type Node as AcornNode } from 'acorn';
import { ancestor } from 'acorn-walk';
import { analyze } from 'periscopic';
import type * as ESTree from 'estree';

/** What kind of source text `fn.toString()` gave, and so how to evaluate it back into a function. */
export type SourceKind = 'function' | 'arrow' | 'class' | 'method' | 'getter' | 'setter';

/** Where to inject the private-state hooks into a class's source. */
export interface PrivateStateInfo {
  /** Private instance field names (`#x`). */
  readonly fields: readonly string[];
  /** Private static field names (`static #x`): their current values travel with the class. */
  readonly staticFields: readonly string[];
  /** Public instance fields initialized with an arrow function (`onClick = () => this.x`): recreated, not copied. */
  readonly arrowFields: readonly string[];
  /** Offset just after the `{` of the constructor body, when the class declares a constructor. */
  readonly ctorBodyStart?: number;
  /** Offset of the class body's closing `}`. */
  readonly bodyEnd: number;
  readonly derived: boolean;
}

/**
 * A class body method with a key known from the source, and the `length` its function gets (parameters before a
 * default or rest). A well-known symbol key (`[Symbol.iterator]`) is named by its description.
 */
export interface ClassMemberShape {
  readonly static: boolean;
  readonly key: string;
  readonly symbol: boolean;
  readonly kind: 'method' | 'get' | 'set';
  readonly length: number;
}

/** Result of analysing a function's source text. */
export interface SourceInfo {
  readonly kind: SourceKind;
  /** Text that evaluates to the value: `(src)` for functions, arrows and classes, `({src})` for methods. */
  readonly expression: string;
  /** Offset of the original source inside `expression` (for line/column mapping). */
  readonly offset: number;
  /** Names the code reads or writes that it does not declare, sorted. */
  readonly free: readonly string[];
  /** Free names evaluated when the value is defined (class heritage, computed keys, static members). */
  readonly eager: readonly string[];
  /** The code uses `super` (a method needs its home object). */
  readonly usesSuper: boolean;
  /** An arrow function uses the `this` of its defining scope. */
  readonly lexicalThis: boolean;
  /** The function's own body starts with a `'use strict'` directive (or it is a class). */
  readonly strictDirective: boolean;
  /** Offsets of dynamic `import(...)` calls (`[start, sourceStart, sourceEnd, end]`) and `import.meta` (`[start, end]`). */
  readonly imports: readonly (readonly [number, number, number, number])[];
  readonly importMetas: readonly (readonly [number, number])[];
  /** Class with private instance fields: how to let the receiver create instances and set those fields. */
  readonly privateState?: PrivateStateInfo;
  /** A class's methods and accessors with plain keys (to tell whether their own properties changed). */
  readonly members?: readonly ClassMemberShape[];
  /** Offsets of a class heritage expression in `expression` (replaced by the actual parent class on rebuild). */
  readonly heritage?: readonly [number, number];
  /** Async, generator flags of the top-level function (methods included). */
  readonly async: boolean;
  readonly generator: boolean;
}

const nativeRe = /\{\s*\[native code\]\s*\}\s*$/;

/** True when `fn.toString()` text is native code (a builtin or a bound function). */
export function isNativeSource(src: string): boolean {
  return nativeRe.test(src);
}

const cache = new Map<string, SourceInfo>();
const cacheLimit = 5000;

/**
 * Parses a function's `toString()` text and finds its free variables.
 * Returns `undefined` when the text is not evaluable JavaScript (native code, private methods).
 */
export function analyzeSource(src: string): SourceInfo | undefined {
  const hit = cache.get(src);
  if (hit) return hit;
  const info = analyzeUncached(src);
  if (info) {
    if (cache.size >= cacheLimit) cache.clear();
    cache.set(src, info);
  }
  return info;
}

function tryParse(text: string): ESTree.Program | undefined {
  // Script first (sloppy code may use `with`), then module (code may use `import.meta`).
  for (const sourceType of ['script', 'module'] as const) {
    try {
      return parse(text, { ecmaVersion: 'latest', sourceType, allowHashBang: false }) as unknown as ESTree.Program;
    } catch {
      // try the next goal
    }
  }
  return undefined;
}

function analyzeUncached(src: string): SourceInfo | undefined {
  if (isNativeSource(src)) return undefined;
  let expression = `(${src}\n)`;
  let program = tryParse(expression);
  let wrapped: 'expr' | 'method' = 'expr';
  if (!program) {
    expression = `({${src}\n})`;
    program = tryParse(expression);
    wrapped = 'method';
  }
  if (!program) return undefined;
  const stmt = program.body[0];
  if (program.body.length !== 1 || stmt?.type !== 'ExpressionStatement') return undefined;
  let root: ESTree.Node = stmt.expression;
  let kind: SourceKind;
  let fnNode: ESTree.Function | undefined;
  if (wrapped === 'method') {
    if (root.type !== 'ObjectExpression' || root.properties.length !== 1) return undefined;
    const prop = root.properties[0];
    if (prop?.type !== 'Property' || prop.value.type !== 'FunctionExpression') return undefined;
    kind = prop.kind === 'get' ? 'getter' : prop.kind === 'set' ? 'setter' : 'method';
    if (!prop.method && prop.kind === 'init') return undefined;
    fnNode = prop.value;
  } else if (root.type === 'ArrowFunctionExpression') {
    kind = 'arrow';
    fnNode = root;
  } else if (root.type === 'FunctionExpression') {
    kind = 'function';
    fnNode = root;
  } else if (root.type === 'ClassExpression') {
    kind = 'class';
  } else {
    return undefined;
  }
  const { globals } = analyze(program);
  const free = new Set(globals.keys());
  // periscopic does not bind a class expression's own name inside its body.
  let lexicalThis = false;
  let usesSuper = false;
  const eagerNodes: ESTree.Node[] = [];
  const classNames = new Set<string>();
  const lexicalArgs = { used: false };
  const imports: [number, number, number, number][] = [];
  const importMetas: [number, number][] = [];
  type Ranged = ESTree.Node & { start: number; end: number };
  ancestor(program as unknown as AcornNode, {
    ImportExpression(n) {
      const e = n as unknown as Ranged & { source: Ranged };
      imports.push([e.start, e.source.start, e.source.end, e.end]);
    },
    MetaProperty(n) {
      const m = n as unknown as Ranged & { meta: { name: string } };
      if (m.meta.name === 'import') importMetas.push([m.start, m.end]);
    },
    ClassExpression(n) {
      const c = n as unknown as ESTree.ClassExpression;
      if (c.id) classNames.add(c.id.name);
    },
    Super() {
      usesSuper = true;
    },
    ThisExpression(_n, _s, anc) {
      if (kind === 'arrow' && !insideOwnThis(anc as unknown as ESTree.Node[])) lexicalThis = true;
    },
    Identifier(n, _s, anc) {
      if ((n as unknown as ESTree.Identifier).name === 'arguments' && kind === 'arrow' && !insideOwnThis(anc as unknown as ESTree.Node[])) {
        lexicalArgs.used = true;
      }
    },
  });
  for (const name of classNames) free.delete(name);
  if (!lexicalArgs.used) free.delete('arguments');
  if (kind === 'class') collectClassEager(root as ESTree.ClassExpression, eagerNodes);
  if (wrapped === 'method') {
    const prop = (root as ESTree.ObjectExpression).properties[0] as ESTree.Property;
    if (prop.computed) eagerNodes.push(prop.key);
  }
  const eager = new Set<string>();
  for (const node of eagerNodes) {
    ancestor(node as unknown as AcornNode, {
      Identifier(n) {
        const name = (n as unknown as ESTree.Identifier).name;
        if (free.has(name)) eager.add(name);
      },
    });
  }
  let heritage: [number, number] | undefined;
  if (kind === 'class') {
    const sup = (root as ESTree.ClassExpression).superClass as (ESTree.Node & { start: number; end: number }) | null | undefined;
    if (sup && !(sup.type === 'Literal' && sup.value === null)) heritage = [sup.start, sup.end];
  }
  const privateState = kind === 'class' ? classPrivateState(root as ESTree.ClassExpression) : undefined;
  const members = kind === 'class' ? classMembers(root as ESTree.ClassExpression) : undefined;
  return {
    kind,
    expression,
    ...(members?.length ? { members } : {}),
    ...(heritage ? { heritage } : {}),
    ...(privateState ? { privateState } : {}),
    imports,
    importMetas,
    offset: wrapped === 'method' ? 2 : 1,
    free: [...free].sort(),
    eager: [...eager].sort(),
    usesSuper,
    lexicalThis,
    strictDirective: kind === 'class' || (fnNode !== undefined && hasUseStrict(fnNode)),
    async: fnNode?.async ?? false,
    generator: fnNode?.generator ?? false,
  };
}

/** Whether a `this`/`arguments` at the end of `ancestors` belongs to a function other than the root arrow. */
function insideOwnThis(ancestors: ESTree.Node[]): boolean {
  // ancestors[0] is Program, [1] ExpressionStatement, [2] the root arrow.
  for (let i = 3; i < ancestors.length; i++) {
    const a = ancestors[i] as ESTree.Node;
    if (a.type === 'FunctionExpression' || a.type === 'FunctionDeclaration') return true;
    if (a.type === 'PropertyDefinition' || a.type === 'StaticBlock') return true;
  }
  return false;
}

function hasUseStrict(fn: ESTree.Function): boolean {
  if (fn.body.type !== 'BlockStatement') return false;
  for (const s of fn.body.body) {
    if (s.type !== 'ExpressionStatement' || !('directive' in s) || typeof s.directive !== 'string') return false;
    if (s.directive === 'use strict') return true;
  }
  return false;
}

function collectClassEager(cls: ESTree.ClassExpression, out: ESTree.Node[]): void {
  for (const m of cls.body.body) {
    if (m.type === 'StaticBlock') {
      out.push(m);
      continue;
    }
    if (m.computed) out.push(m.key);
    if (m.type === 'PropertyDefinition' && m.static && m.value) out.push(m.value);
  }
}

/** The arrow a field initializer is: `() => ...`, or one named by esbuild's keepNames `__name(() => ..., "x")`. */
function fieldArrow(node: ESTree.Node): ESTree.ArrowFunctionExpression | undefined {
  if (node.type === 'ArrowFunctionExpression') return node;
  if (node.type !== 'CallExpression' || node.callee.type !== 'Identifier' || node.callee.name !== '__name') return undefined;
  const first = node.arguments[0];
  return first?.type === 'ArrowFunctionExpression' ? first : undefined;
}

function classMembers(cls: ESTree.ClassExpression): ClassMemberShape[] {
  const out: ClassMemberShape[] = [];
  for (const m of cls.body.body) {
    if (m.type === 'StaticBlock') continue;
    // A static field initialized with an arrow is a function the body defines too (named after its key).
    const arrowField = m.type === 'PropertyDefinition' && m.static && m.value ? fieldArrow(m.value) : undefined;
    const method = m.type === 'MethodDefinition' && m.kind !== 'constructor' ? m : undefined;
    if (!method && !arrowField) continue;
    const k = m.key;
    let key: string | undefined;
    let symbol = false;
    if (k.type === 'Literal') key = String(k.value);
    else if (k.type === 'Identifier' && !m.computed) key = k.name;
    else if (m.computed && k.type === 'MemberExpression' && !k.computed && k.object.type === 'Identifier' && k.object.name === 'Symbol' && k.property.type === 'Identifier') {
      key = `Symbol.${k.property.name}`;
      symbol = true;
    }
    if (key === undefined) continue;
    let length = 0;
    for (const p of (arrowField ?? method?.value)?.params ?? []) {
      if (p.type === 'AssignmentPattern' || p.type === 'RestElement') break;
      length++;
    }
    out.push({ static: m.static, key, symbol, kind: method ? (method.kind as ClassMemberShape['kind']) : 'method', length });
  }
  return out;
}

function classPrivateState(cls: ESTree.ClassExpression): PrivateStateInfo | undefined {
  const fields: string[] = [];
  const staticFields: string[] = [];
  let ctorBodyStart: number | undefined;
  const arrowFields: string[] = [];
  for (const m of cls.body.body) {
    if (m.type === 'PropertyDefinition' && m.key.type === 'PrivateIdentifier') (m.static ? staticFields : fields).push(`#${m.key.name}`);
    if (m.type === 'PropertyDefinition' && !m.static && !m.computed && m.value && isArrowInit(m.value)) {
      if (m.key.type === 'Identifier') arrowFields.push(m.key.name);
      else if (m.key.type === 'Literal') arrowFields.push(String(m.key.value));
    }
    if (m.type === 'MethodDefinition' && m.kind === 'constructor') ctorBodyStart = (m.value.body as unknown as { start: number }).start + 1;
  }
  if (!fields.length && !arrowFields.length && !staticFields.length) return undefined;
  const bodyEnd = (cls.body as unknown as { end: number }).end - 1;
  return { fields, staticFields, arrowFields, bodyEnd, derived: cls.superClass !== null && cls.superClass !== undefined, ...(ctorBodyStart !== undefined ? { ctorBodyStart } : {}) };
}

/** `() => ...`, or one wrapped by a helper call such as esbuild's keepNames `__name(() => ..., "x")`. */
function isArrowInit(node: ESTree.Node): boolean {
  if (node.type === 'ArrowFunctionExpression') return true;
  return node.type === 'CallExpression' && node.arguments.some((a) => a.type === 'ArrowFunctionExpression');
}
