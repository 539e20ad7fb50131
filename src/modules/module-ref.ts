/**
 * References to modules and to values exported by them: what travels instead of a copy of the module.
 */

/** A module the receiver can load by itself. */
export type ModuleRef =
  /** A `node:` builtin such as `fs`. */
  | { readonly kind: 'builtin'; readonly name: string }
  /** A file of an installed package: `file` is the POSIX path inside the package folder. */
  | { readonly kind: 'package'; readonly name: string; readonly version: string; readonly file: string; readonly esm: boolean }
  /** A file of the project: `path` is the POSIX path relative to the project root. */
  | { readonly kind: 'local'; readonly path: string; readonly esm: boolean }
  /** A file outside the project and outside node_modules (same machine only): absolute path. */
  | { readonly kind: 'file'; readonly path: string; readonly esm: boolean };

/** How the module object itself is presented. */
export type ModuleView =
  /** `module.exports` of a CommonJS module, or the namespace of an ES module. */
  | 'exports'
  /** The ES module namespace of a CommonJS module or builtin (`import * as fs from 'node:fs'`). */
  | 'namespace'
  /** esbuild's `__toESM(require(x))` interop object (tsx and esbuild bundles). */
  | 'interop'
  /** The CommonJS `module` object of the file (`module` inside the CommonJS wrapper). */
  | 'module';

/** A value reached from a module: `path` walks from the module object (empty: the module object itself). */
export interface ExportRef {
  readonly module: ModuleRef;
  readonly view: ModuleView;
  /** Property names from the module object; `#get:x`/`#set:x` name an accessor function. */
  readonly path: readonly string[];
}

/** Stable key of a module reference (one load per key). */
export function moduleKey(ref: ModuleRef): string {
  switch (ref.kind) {
    case 'builtin':
      return `builtin:${ref.name}`;
    case 'package':
      return `package:${ref.esm ? 'esm' : 'cjs'}:${ref.name}/${ref.file}`;
    case 'local':
    case 'file':
      return `${ref.kind}:${ref.esm ? 'esm' : 'cjs'}:${ref.path}`;
  }
}

/** Human-readable module name for messages. */
export function describeModule(ref: ModuleRef): string {
  switch (ref.kind) {
    case 'builtin':
      return `node:${ref.name}`;
    case 'package':
      return `${ref.name}@${ref.version} (${ref.file})`;
    case 'local':
      return `./${ref.path}`;
    case 'file':
      return ref.path;
  }
}
