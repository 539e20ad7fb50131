/**
 * Which module-level bindings of an ES module can never change once initialized, read from the module's source:
 * a top-level declaration (not an import) that no code of the module ever assigns. ES modules are strict and
 * importers cannot assign imports, so only the module's own code (or a direct `eval` in it) could. Repeated dumps
 * of closures over such bindings reuse the value from the last scope read instead of reading the scope again.
 */
import { parse, type Node as AcornNode } from 'acorn';
import { ancestor } from 'acorn-walk';
import { analyze, type Scope } from 'periscopic';
import type * as ESTree from 'estree';

/** What the source says about the module-level bindings. */
export interface ModuleBindings {
  /** Top-level declarations (not imports) that nothing assigns after their declaration ran. */
  readonly stable: ReadonlySet<string>;
}

const cache = new Map<string, ModuleBindings | null>();
const none: ModuleBindings = { stable: new Set() };

/** Analyses an ES module's source (cached per script id); `undefined` when it does not parse as a module. */
export function moduleBindings(scriptId: string, source: string): ModuleBindings | undefined {
  const hit = cache.get(scriptId);
  if (hit !== undefined) return hit ?? undefined;
  let result: ModuleBindings | null;
  try {
    result = analyse(parse(source, { ecmaVersion: 'latest', sourceType: 'module', allowHashBang: true }) as unknown as ESTree.Program);
  } catch {
    result = null;
  }
  if (cache.size > 5000) cache.clear();
  cache.set(scriptId, result);
  return result ?? undefined;
}

/** Binding names a pattern assigns (`a`, `[a, ...b]`, `{ k: c = 1 }`); a member target (`o.x = 1`) assigns none. */
function targetNames(p: ESTree.Node, out: string[] = []): string[] {
  switch (p.type) {
    case 'Identifier':
      out.push(p.name);
      break;
    case 'ObjectPattern':
      for (const prop of p.properties) targetNames(prop.type === 'RestElement' ? prop.argument : prop.value, out);
      break;
    case 'ArrayPattern':
      for (const el of p.elements) if (el) targetNames(el, out);
      break;
    case 'RestElement':
      targetNames(p.argument, out);
      break;
    case 'AssignmentPattern':
      targetNames(p.left, out);
      break;
  }
  return out;
}

function analyse(program: ESTree.Program): ModuleBindings {
  const { map, scope: root } = analyze(program);
  const declared = new Set<string>();
  for (const [name, node] of root.declarations) {
    if (node.type !== 'ImportSpecifier' && node.type !== 'ImportDefaultSpecifier' && node.type !== 'ImportNamespaceSpecifier') declared.add(name);
  }
  const written = new Set<string>();
  let directEval = false;
  const initialized = new Set<string>();
  const scopeAt = (ancestors: readonly ESTree.Node[]): Scope => {
    for (let i = ancestors.length - 1; i >= 0; i--) {
      const s = map.get(ancestors[i] as ESTree.Node);
      if (s) return s;
    }
    return root;
  };
  const write = (target: ESTree.Node, ancestors: readonly ESTree.Node[]): void => {
    const scope = scopeAt(ancestors);
    for (const name of targetNames(target)) if (scope.find_owner(name) === root) written.add(name);
  };
  ancestor(program as unknown as AcornNode, {
    AssignmentExpression(n, _s, anc) {
      write((n as unknown as ESTree.AssignmentExpression).left, anc as unknown as ESTree.Node[]);
    },
    UpdateExpression(n, _s, anc) {
      write((n as unknown as ESTree.UpdateExpression).argument, anc as unknown as ESTree.Node[]);
    },
    ForInStatement(n, _s, anc) {
      const left = (n as unknown as ESTree.ForInStatement).left;
      if (left.type !== 'VariableDeclaration') write(left, anc as unknown as ESTree.Node[]);
    },
    ForOfStatement(n, _s, anc) {
      const left = (n as unknown as ESTree.ForOfStatement).left;
      if (left.type !== 'VariableDeclaration') write(left, anc as unknown as ESTree.Node[]);
    },
    VariableDeclaration(n, _s, anc) {
      const d = n as unknown as ESTree.VariableDeclaration;
      if (d.kind !== 'var') return;
      // A `var` initializer is a write unless it is a top-level statement that runs once, the first for its name.
      const topLevel = anc.length === 2 || (anc.length === 3 && anc[1]?.type === 'ExportNamedDeclaration');
      const scope = scopeAt(anc as unknown as ESTree.Node[]);
      for (const decl of d.declarations) {
        if (!decl.init) continue;
        for (const name of targetNames(decl.id)) {
          if (scope.find_owner(name) !== root) continue;
          if (!topLevel || initialized.has(name)) written.add(name);
          initialized.add(name);
        }
      }
    },
    CallExpression(n) {
      const callee = (n as unknown as ESTree.CallExpression).callee;
      // Strict code cannot bind the name `eval`, so a call of it is always a direct eval.
      if (callee.type === 'Identifier' && callee.name === 'eval') directEval = true;
    },
  });
  if (directEval) return none;
  const stable = new Set<string>();
  for (const name of declared) if (!written.has(name)) stable.add(name);
  return { stable };
}
