'use strict';
/**
 * The package's `require` entry (copied to dist/index.cjs by scripts/build-cjs.mjs): `require('modulepickle')`
 * returns the ES module namespace of dist/index.js — the same instance `import('modulepickle')` returns, so there
 * is one registry, one function layer and one set of classes per process (no dual-package hazard).
 *
 * Node's own require(esm) (unflagged in 20.19.0 and 22.12.0) does the loading. Why not `require('./index.js')`:
 * a require hook on `.js` (tsx in CommonJS mode, and other transpiling hooks) would compile each ES module file of
 * the package and of its ESM-only dependencies to CommonJS, giving a second copy of the package and failing on
 * dependencies whose `exports` have only an `import` condition. Compiling the entry with format 'module' hands it
 * to Node's ES module loader directly, past any `.js` hook; the rest of the graph loads as ES modules.
 * @throws ERR_MP_NODE_VERSION on a Node without require(esm)
 */
const Module = require('node:module');
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

const NEEDED = '^20.19.0 || >=22.12.0';

if (process.features.require_module !== true) {
  // undefined: an older Node (on 20.x: before 20.19.0); false: require(esm) present but off (a 22.x before
  // 22.12 without --experimental-require-module, or --no-experimental-require-module).
  const why = process.features.require_module === false ? ', where it is turned off (on by default from 20.19.0 and 22.12.0; --no-experimental-require-module turns it off)' : '';
  const err = new Error(
    `modulepickle: require('modulepickle') needs a Node.js that can require() ES modules (${NEEDED}); this is Node.js ${process.version}${why}. ` +
      "Upgrade Node.js, or load the package with `await import('modulepickle')`.",
  );
  err.code = 'ERR_MP_NODE_VERSION';
  throw err;
}

const entry = join(__dirname, 'index.js');

function loadNative() {
  const cached = Module._cache[entry];
  if (cached !== undefined) return cached.exports;
  const mod = new Module(entry, module);
  mod.filename = entry;
  mod.paths = Module._nodeModulePaths(__dirname);
  Module._cache[entry] = mod;
  try {
    mod._compile(readFileSync(entry, 'utf8'), entry, 'module');
  } catch (err) {
    delete Module._cache[entry];
    throw err;
  }
  mod.loaded = true;
  return mod.exports;
}

// `_compile(source, filename, format)` is how Node's own `.js` loader starts require(esm) (20.19+, 22.12+).
// Where it is not that (an unknown runtime, a test framework's module object), plain require is the fallback.
const native = typeof Module.prototype._compile === 'function' && Module.prototype._compile.length === 3 && module instanceof Module;
module.exports = native ? loadNative() : require('./index.js');
