/**
 * Where a tree watch can be trusted: Linux (inotify, whose events are queued by the write itself), on a local
 * file system (changes made by another machine on NFS/SMB, or by a FUSE daemon, produce no inotify event), within
 * the watch budget. Anything else falls back to the full check, with one warning per process saying why.
 */
import { readFileSync, statfsSync } from 'node:fs';

/** `statfs` magic numbers of local Linux file systems: every change to them goes through this kernel. */
const localFileSystems: ReadonlyMap<number, string> = new Map([
  [0xef53, 'ext2/3/4'],
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
  [0x01021994, 'tmpfs'],
  [0x858458f6, 'ramfs'],
  [0x794c7630, 'overlayfs'],
  [0x2fc12fc1, 'zfs'],
  [0xf2f52010, 'f2fs'],
  [0x52654973, 'reiserfs'],
  [0x3153464a, 'jfs'],
  [0xca451a4e, 'bcachefs'],
]);

/** Why a folder's file system cannot be watched reliably, or undefined when it can. */
export function unwatchableFileSystem(dir: string): string | undefined {
  let type: number;
  try {
    type = statfsSync(dir).type;
  } catch (err) {
    return `statfs failed (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  if (localFileSystems.has(type)) return undefined;
  return `'${dir}' is on a file system (statfs type 0x${type.toString(16)}) whose changes may not reach inotify (network, FUSE or unknown)`;
}

/** Why this platform cannot host a tree watch, or undefined on Linux. */
export function unwatchablePlatform(): string | undefined {
  return process.platform === 'linux' ? undefined : `tree watching is implemented for Linux (inotify) only, not ${process.platform}`;
}

function procNumber(file: string): number | undefined {
  try {
    const n = Number.parseInt(readFileSync(file, 'utf8'), 10);
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

let limits: { maxUserWatches: number | undefined; maxQueuedEvents: number | undefined } | undefined;

/** The inotify limits of this machine (`/proc/sys/fs/inotify`). */
export function inotifyLimits(): { maxUserWatches: number | undefined; maxQueuedEvents: number | undefined } {
  limits ??= { maxUserWatches: procNumber('/proc/sys/fs/inotify/max_user_watches'), maxQueuedEvents: procNumber('/proc/sys/fs/inotify/max_queued_events') };
  return limits;
}

/**
 * Default cap on the folders one tree watch may watch: a quarter of the user's inotify budget (editors and dev
 * servers share it), at most 20,000.
 */
export function defaultMaxFolders(): number {
  const n = inotifyLimits().maxUserWatches;
  return Math.max(1, Math.min(20_000, Math.floor((n ?? 8192) / 4)));
}

let warned = false;

/** Emits the one fallback warning of this process (later fallbacks stay silent). Returns whether it warned. */
export function warnFallbackOnce(root: string, reason: string): boolean {
  if (warned) return false;
  warned = true;
  process.emitWarning(
    `modulepickle cannot watch the project tree '${root}': ${reason}. Every call checks the whole tree instead ` +
      '(a walk and a stat per file: slower for big trees). Set { ship: { watch: false } } or MODULEPICKLE_WATCH=0 to choose this without the warning.',
    { type: 'ModulePickleWarning', code: 'MP_TREE_WATCH_FALLBACK' },
  );
  return true;
}
