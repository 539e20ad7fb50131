/**
 * What an ES module's namespace holds, computed from source as the spec builds it (GetExportedNames and
 * ResolveExport): its own exports, `export { a as b } from`, `export * as ns from`, `export * from` (without
 * `default`, names two stars bind differently are left out, cycles cut), and imported bindings it exports again.
 * Each name maps to the binding it ends at (`url#local`, `ns:url` for a namespace), so two modules whose
 * namespaces are the same bindings under the same names can be told equal, and different ones apart.
 */
import type { EsmExports } from './esm-exports.ts';

/** The module graph as far as the sender knows it. */
export interface ModuleGraph {
  /** Exports of an ES module by URL (undefined when not an ES module of the graph). */
  esm(url: string): EsmExports | undefined;
  /** Export names of a CommonJS module by URL (undefined when not one). */
  cjs(url: string): readonly string[] | undefined;
  /** URL of the module a specifier names from a module, if known. */
  resolve(spec: string, from: string): string | undefined;
}

const ambiguous = Symbol('ambiguous');
type Resolution = string | null | typeof ambiguous;

/** Thrown inside when a star re-export names a module whose exports are unknown (the namespace cannot be told). */
class Unknown extends Error {}

function target(g: ModuleGraph, spec: string, from: string): string {
  const url = g.resolve(spec, from);
  if (url === undefined) throw new Unknown(spec);
  return url;
}

/**
 * Export names of a module: name -> whether the namespace surely has it. Names a `export *` takes from a CommonJS
 * module may be missing: Node finds those by static analysis of its source (cjs-module-lexer), which can see fewer
 * names than its exports object ends up with (`exports[name] = ...` in a loop).
 */
function exportedNames(g: ModuleGraph, url: string, starSet: Set<string>): Map<string, boolean> {
  const out = new Map<string, boolean>();
  if (starSet.has(url)) return out;
  starSet.add(url);
  const exp = g.esm(url);
  if (!exp) {
    const names = g.cjs(url);
    if (!names) throw new Unknown(url);
    for (const n of names) out.set(n, false);
    out.set('default', true);
    return out;
  }
  for (const n of exp.names) if (n !== '*') out.set(n, true);
  for (const spec of exp.stars) {
    for (const [n, sure] of exportedNames(g, target(g, spec, url), starSet)) if (n !== 'default') out.set(n, sure || out.get(n) === true);
  }
  return out;
}

function importedBinding(g: ModuleGraph, spec: string, imported: string, from: string, seen: Set<string>): Resolution {
  const t = g.resolve(spec, from);
  // A module outside the graph (a package the sender knows nothing about): the binding is named by its specifier.
  if (t === undefined) return `?${spec}#${imported}`;
  return imported === '*' ? `ns:${t}` : resolveExport(g, t, imported, seen);
}

function resolveExport(g: ModuleGraph, url: string, name: string, seen: Set<string>): Resolution {
  const key = `${url}\0${name}`;
  if (seen.has(key)) return null;
  seen.add(key);
  const exp = g.esm(url);
  if (!exp) {
    const names = g.cjs(url);
    return names && (name === 'default' || names.includes(name)) ? `${url}#${name}` : null;
  }
  for (const [local, names] of exp.locals) {
    if (!names.includes(name)) continue;
    const imp = exp.imports.get(local);
    return imp ? importedBinding(g, imp.spec, imp.imported, url, seen) : `${url}#${local}`;
  }
  if (name === 'default' && exp.names.has('default') && !exp.reexports.has('default')) return `${url}#*default*`;
  const re = exp.reexports.get(name);
  if (re) return importedBinding(g, re.spec, re.imported, url, seen);
  if (name === 'default') return null;
  let found: Resolution = null;
  for (const spec of exp.stars) {
    const r = resolveExport(g, target(g, spec, url), name, seen);
    if (r === ambiguous) return ambiguous;
    if (r === null) continue;
    if (found === null) found = r;
    else if (found !== r) return ambiguous;
  }
  return found;
}

/** What a module's namespace holds: export name -> binding, and the names it may lack (see `exportedNames`). */
export interface NamespaceShape {
  readonly bindings: Map<string, string>;
  readonly optional: ReadonlySet<string>;
}

/**
 * The namespace of the ES module at `url`: export name -> the binding it ends at. `undefined` when some star
 * re-export names a module whose exports are unknown here.
 */
export function namespaceBindings(g: ModuleGraph, url: string): NamespaceShape | undefined {
  try {
    const bindings = new Map<string, string>();
    const optional = new Set<string>();
    for (const [name, sure] of exportedNames(g, url, new Set())) {
      const r = resolveExport(g, url, name, new Set());
      if (typeof r !== 'string') continue;
      bindings.set(name, r);
      if (!sure) optional.add(name);
    }
    return { bindings, optional };
  } catch (e) {
    if (e instanceof Unknown) return undefined;
    throw e;
  }
}
