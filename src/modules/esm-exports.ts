/**
 * Export names of an ES module's source text (as V8 runs it), parsed with acorn: local binding -> exported names.
 */
import { parse } from 'acorn';
import type * as ESTree from 'estree';

/** What an ES module exports, as far as its own source says. */
export interface EsmExports {
  /** Local binding name -> export names (`export { a as b }`, `export function f`, `export default f`). */
  readonly locals: ReadonlyMap<string, readonly string[]>;
  /** Every export name, including re-exports (`export * from` contributes `*`). */
  readonly names: ReadonlySet<string>;
  /** Start offsets of anonymous `export default function/class` declarations. */
  readonly defaultStart: number | undefined;
}

const cache = new Map<string, EsmExports | null>();

function add(map: Map<string, string[]>, local: string, exported: string): void {
  const list = map.get(local);
  if (list) list.push(exported);
  else map.set(local, [exported]);
}

function nameOf(n: ESTree.Identifier | ESTree.Literal): string {
  return n.type === 'Identifier' ? n.name : String(n.value);
}

/** Parses an ES module's exports. Returns `undefined` when the source does not parse. Cached by source text. */
export function esmExports(source: string): EsmExports | undefined {
  const hit = cache.get(source);
  if (hit !== undefined) return hit ?? undefined;
  let program: ESTree.Program;
  try {
    program = parse(source, { ecmaVersion: 'latest', sourceType: 'module', allowHashBang: true }) as unknown as ESTree.Program;
  } catch {
    cache.set(source, null);
    return undefined;
  }
  const locals = new Map<string, string[]>();
  const names = new Set<string>();
  let defaultStart: number | undefined;
  for (const s of program.body) {
    if (s.type === 'ExportNamedDeclaration') {
      if (s.declaration) {
        const d = s.declaration;
        if (d.type === 'VariableDeclaration') {
          for (const decl of d.declarations) if (decl.id.type === 'Identifier') add(locals, decl.id.name, decl.id.name);
        } else if (d.id) {
          add(locals, d.id.name, d.id.name);
        }
      }
      for (const spec of s.specifiers) {
        const exported = nameOf(spec.exported);
        names.add(exported);
        if (!s.source) add(locals, nameOf(spec.local), exported);
      }
    } else if (s.type === 'ExportDefaultDeclaration') {
      names.add('default');
      const d = s.declaration;
      if ((d.type === 'FunctionDeclaration' || d.type === 'ClassDeclaration') && d.id) add(locals, d.id.name, 'default');
      else if (d.type === 'Identifier') add(locals, d.name, 'default');
      else defaultStart = (d as unknown as { start: number }).start;
    } else if (s.type === 'ExportAllDeclaration') {
      names.add(s.exported ? nameOf(s.exported) : '*');
    }
  }
  for (const list of locals.values()) for (const n of list) names.add(n);
  const out: EsmExports = { locals, names, defaultStart };
  if (cache.size > 2000) cache.clear();
  cache.set(source, out);
  return out;
}
