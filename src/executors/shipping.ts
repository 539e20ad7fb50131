/**
 * Client-side glue between an executor and the ship layer: functions are pickled with `ship: { blobs: 'none' }`
 * (the payload carries the manifest, not the files), the builds they produced are remembered, and a worker's blob
 * requests are answered from the project files of those builds. Also maps remote stack frames that point into a
 * materialized tree (`.../trees/<version id>/tree/<path>`) back to the client's files, and compiled lines back to
 * TypeScript lines through the source maps this process has (tsx registers them).
 */
import { findSourceMap } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ProjectBlobSource, type BlobSource, type PickleOptions, type ShipBuild } from './pickler.ts';

/** What `createShipping` gives an executor. */
export interface Shipping {
  /** `dumps` options: the caller's, with `ship.blobs: 'none'` and a build observer added. */
  readonly dumpsOptions: PickleOptions;
  /** Serves blobs of the remembered builds. */
  readonly blobServer: BlobSource;
  /** Rewrites a remote stack to the caller's files and lines. */
  mapStack(stack: string): string;
  /** Whether `hash` is the version id of a remembered build (a manifest, not a file blob). */
  isManifest(hash: string): boolean;
  /** The most recent build (what the last pickled function shipped). */
  readonly lastBuild: ShipBuild | undefined;
}

/**
 * Remembers the last `keep` builds (by version id). `manifestById`: payloads name their code version by id and the
 * blob server serves the manifest texts too (only when workers fetch from this blob server).
 */
export function createShipping(userOptions: PickleOptions = {}, keep = 8, manifestById = false): Shipping {
  const builds = new Map<string, ShipBuild>();
  let last: ShipBuild | undefined;
  const user = userOptions['ship'];
  const shipOff = user === false;
  const userShip = typeof user === 'object' && user !== null ? (user as Record<string, unknown>) : {};
  const onBuild = (build: ShipBuild): void => {
    last = build;
    builds.delete(build.id);
    builds.set(build.id, build);
    if (builds.size > keep) builds.delete(builds.keys().next().value!);
    const userHook = userShip['onBuild'];
    if (typeof userHook === 'function') (userHook as (b: ShipBuild) => void)(build);
  };
  const byId = manifestById ? { manifest: 'id' } : {};
  const dumpsOptions: PickleOptions = shipOff ? { ...userOptions } : { ...userOptions, ship: { blobs: 'none', ...byId, ...userShip, onBuild } };

  const blobServer: BlobSource = {
    async missing(hashes) {
      const got = await blobServer.get(hashes);
      return hashes.filter((h) => !got.has(h));
    },
    async get(hashes) {
      const out = new Map<string, Uint8Array>();
      // a manifest asked for by its version id (payloads that name their version by id)
      for (const h of hashes) {
        const b = builds.get(h);
        if (b) out.set(h, new TextEncoder().encode(b.text));
      }
      let rest = hashes.filter((h) => !out.has(h));
      // Newest build first: its files are the most likely to still hold the requested content.
      for (const build of [...builds.values()].reverse()) {
        if (rest.length === 0) break;
        const mine = rest.filter((h) => build.files.has(h));
        if (mine.length === 0) continue;
        try {
          for (const [h, b] of await new ProjectBlobSource(build).get(mine)) out.set(h, b);
        } catch {
          // A file changed since that build: an older build may still have the content elsewhere.
        }
        rest = rest.filter((h) => !out.has(h));
      }
      return out;
    },
  };

  return {
    dumpsOptions,
    blobServer,
    isManifest: (hash) => builds.has(hash),
    mapStack: (stack) => mapStack(stack, (id) => builds.get(id)?.root ?? findPrefix(builds, id)),
    get lastBuild() {
      return last;
    },
  };
}

function findPrefix(builds: Map<string, ShipBuild>, id: string): string | undefined {
  for (const [k, b] of builds) if (k.startsWith(id) || id.startsWith(k)) return b.root;
  return undefined;
}

const TREE_FRAME = /(?:file:\/\/)?(?:[^\s()'"]*?)[\\/]trees[\\/]([0-9a-f]{8,})[\\/]tree[\\/]([^\s()'"]+?):(\d+):(\d+)/g;
const LOCAL_FRAME = /((?:file:\/\/)?\/[^\s()'"]+?):(\d+):(\d+)/g;

/**
 * Maps frames into materialized trees to `<root>/<path>` (root by version id) and compiled positions to original
 * ones through `module.findSourceMap`. Frames it cannot map are left as they are.
 */
export function mapStack(stack: string, rootOf: (versionId: string) => string | undefined): string {
  return stack
    .split('\n')
    .map((line) => {
      if (!/^\s+at /.test(line)) return line;
      // Tree frames were already mapped to original lines by the worker (its TypeScript loader has source maps).
      let tree = false;
      const out = line.replace(TREE_FRAME, (all, id: string, rel: string, l: string, c: string) => {
        const root = rootOf(id);
        tree = true;
        return root ? `${root}/${rel}:${l}:${c}` : all;
      });
      if (tree) return out;
      // By-value function code carries the caller's file URL and compiled position: map through our source maps.
      return out.replace(LOCAL_FRAME, (all, file: string, l: string, c: string) => originalPosition(file, Number(l), Number(c)) ?? all);
    })
    .join('\n');
}

function originalPosition(file: string, line: number, column: number): string | undefined {
  const url = file.startsWith('file://') ? file : `file://${file}`;
  let map: ReturnType<typeof findSourceMap>;
  try {
    map = findSourceMap(url) ?? findSourceMap(file.startsWith('file://') ? fileURLToPath(file) : file);
  } catch {
    return undefined;
  }
  if (!map) return undefined;
  const entry = map.findEntry(line - 1, column - 1) as { originalSource?: string; originalLine?: number; originalColumn?: number };
  if (!entry || entry.originalSource === undefined || entry.originalLine === undefined) return undefined;
  const src = entry.originalSource.startsWith('file://') ? fileURLToPath(entry.originalSource) : entry.originalSource;
  return `${src}:${entry.originalLine + 1}:${(entry.originalColumn ?? 0) + 1}`;
}
