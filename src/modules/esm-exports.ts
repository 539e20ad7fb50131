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
  /** `export { a as b } from 'm'` (imported `a`) and `export * as b from 'm'` (imported `*`), by exported name. */
  readonly reexports: ReadonlyMap<string, ImportedBinding>;
  /** Specifiers of `export * from 'm'`, in source order. */
  readonly stars: readonly string[];
  /** Import bindings: local name -> where it comes from (`*` for `import * as x`). */
  readonly imports: ReadonlyMap<string, ImportedBinding>;
}

/** A binding of another module: its specifier and the name it has there (`*`: the namespace, `default`). */
export interface ImportedBinding {
  readonly spec: string;
  readonly imported: string;
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
  const reexports = new Map<string, ImportedBinding>();
  const stars: string[] = [];
  const imports = new Map<string, ImportedBinding>();
  for (const s of program.body) {
    if (s.type === 'ImportDeclaration') {
      const spec = String(s.source.value);
      for (const i of s.specifiers) {
        const imported = i.type === 'ImportNamespaceSpecifier' ? '*' : i.type === 'ImportDefaultSpecifier' ? 'default' : nameOf(i.imported);
        imports.set(i.local.name, { spec, imported });
      }
      continue;
    }
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
        else reexports.set(exported, { spec: String(s.source.value), imported: nameOf(spec.local) });
      }
    } else if (s.type === 'ExportDefaultDeclaration') {
      names.add('default');
      const d = s.declaration;
      if ((d.type === 'FunctionDeclaration' || d.type === 'ClassDeclaration') && d.id) add(locals, d.id.name, 'default');
      else if (d.type === 'Identifier') add(locals, d.name, 'default');
      else defaultStart = (d as unknown as { start: number }).start;
    } else if (s.type === 'ExportAllDeclaration') {
      names.add(s.exported ? nameOf(s.exported) : '*');
      if (s.exported) reexports.set(nameOf(s.exported), { spec: String(s.source.value), imported: '*' });
      else stars.push(String(s.source.value));
    }
  }
  for (const list of locals.values()) for (const n of list) names.add(n);
  const out: EsmExports = { locals, names, defaultStart, reexports, stars, imports };
  if (cache.size > 2000) cache.clear();
  cache.set(source, out);
  return out;
}
