/** Receiver side: the cache folder, blob store, tree materialization, leases, GC and module loading. */

export { treeDirKey, treeKey } from './keys.ts';
export { defaultCacheDir } from './cache-dir.ts';
export { DiskBlobStore } from './blob-store.ts';
export { checkManifest, defaultMaxEntries } from './manifest-check.ts';
export type { CheckedManifest, ReceiveLimits } from './manifest-check.ts';
export { materializeTree, materializeTreeSync, materializedTree } from './materialize.ts';
export type { MaterializedTree, MaterializeOptions } from './materialize.ts';
export { openTree, openTreeById, openTreeSync, releaseTree, purgeRequireCache, heldTrees } from './leases.ts';
export type { TreeHandle, GcSchedule } from './leases.ts';
export { gcCache, defaultCacheMaxBytes } from './gc.ts';
export type { GcOptions, GcResult } from './gc.ts';
export { importFromTree, treeModuleUrl, localModuleUrl, ensureTypeScriptLoader, typeScriptLoaderActive } from './loader.ts';
export { checkPackage } from './packages.ts';
export type { InstalledPackage } from './packages.ts';
export { resolveNodeModules } from './node-modules.ts';
