/** Client side of code shipping: project root, file walk, manifest, stat cache, size limits and blob sources. */

export { localModulesKey, projectRootKey } from './keys.ts';
export { shipSection, localModulePath, payloadRoot } from './section.ts';
export type { ShipOptions } from './section.ts';
export { findProjectRoot, isLocalPath } from './root.ts';
export type { ProjectRoot, RootReason } from './root.ts';
export { walkProject, alwaysExcluded, ignoreFileName } from './walk.ts';
export { configuredCaches } from './owned.ts';
export type { OwnedFolder } from './owned.ts';
export type { WalkOptions, WalkEntry, WalkResult, FileStat } from './walk.ts';
export { buildManifest } from './build.ts';
export { watchedBuild, closeTreeWatches, holdTreeWatches, treeWatches } from './tree-watch.ts';
export type { WatchOption, WatchedBuildOptions } from './tree-watch.ts';
export type { BuildOptions, ShipBuild } from './build.ts';
export { serializeManifest, manifestIdOf, blobHashes, diffManifests, comparePaths, hasTypeScript, sha256Hex } from './manifest.ts';
export type { Manifest, ManifestEntry, FileEntry, SymlinkEntry, ManifestDiff } from './manifest.ts';
export { checkRelPath, checkSymlinkTarget } from './path-rules.ts';
export { defaultMaxBytes, defaultMaxFileBytes, formatBytes } from './limits.ts';
export { StatCache, racyWindowMs } from './stat-cache.ts';
export { InlineBlobSource, ProjectBlobSource, CountingBlobSource } from './blob-source.ts';
export type { BlobSource, BlobStore } from './blob-source.ts';
export { loadedModulePaths, localLoadedModules } from './loaded-modules.ts';
