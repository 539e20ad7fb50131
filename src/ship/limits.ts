/**
 * Size limits on what ships, checked on the walk's stat sizes before anything is hashed.
 * The error lists the largest files and folders and names the option to change.
 */
import { ShipError } from '../errors.ts';
import type { WalkEntry } from './walk.ts';

/** Default limit on the total bytes that ship (`ship.maxBytes`). */
export const defaultMaxBytes = 256 * 1024 * 1024;
/** Default limit on one file's bytes (`ship.maxFileBytes`). */
export const defaultMaxFileBytes = 32 * 1024 * 1024;

/** Formats a byte count for humans (`12.3 MB`). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

function largest(entries: readonly WalkEntry[], count: number): { files: string[]; folders: string[] } {
  const files = entries
    .filter((e) => e.kind === 'file')
    .sort((a, b) => b.stat.size - a.stat.size)
    .slice(0, count)
    .map((e) => `${e.rel} (${formatBytes(e.stat.size)})`);
  const totals = new Map<string, number>();
  for (const e of entries) {
    if (e.kind !== 'file') continue;
    const parts = e.rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/') + '/';
      totals.set(dir, (totals.get(dir) ?? 0) + e.stat.size);
    }
  }
  const folders = [...totals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([d, n]) => `${d} (${formatBytes(n)})`);
  return { files, folders };
}

/**
 * Throws when a file is over `maxFileBytes` or the total is over `maxBytes`.
 * @throws ERR_MP_SHIP_FILE_TOO_LARGE, ERR_MP_SHIP_TOO_LARGE
 */
export function checkLimits(entries: readonly WalkEntry[], maxBytes: number, maxFileBytes: number): number {
  let total = 0;
  const over: WalkEntry[] = [];
  for (const e of entries) {
    if (e.kind !== 'file') continue;
    total += e.stat.size;
    if (e.stat.size > maxFileBytes) over.push(e);
  }
  const hint = 'add them to .modulepickleignore or the ship.exclude option';
  if (over.length) {
    const list = over
      .sort((a, b) => b.stat.size - a.stat.size)
      .slice(0, 10)
      .map((e) => `  ${e.rel} (${formatBytes(e.stat.size)})`)
      .join('\n');
    throw new ShipError(
      'ERR_MP_SHIP_FILE_TOO_LARGE',
      `${over.length} file(s) exceed the per-file limit of ${formatBytes(maxFileBytes)}:\n${list}\n` +
        `${hint}, or raise the limit with { ship: { maxFileBytes } }`,
      over[0]!.rel,
    );
  }
  if (total > maxBytes) {
    const { files, folders } = largest(entries, 8);
    throw new ShipError(
      'ERR_MP_SHIP_TOO_LARGE',
      `the project tree to ship is ${formatBytes(total)}, over the limit of ${formatBytes(maxBytes)}.\n` +
        `Largest folders:\n  ${folders.join('\n  ')}\nLargest files:\n  ${files.join('\n  ')}\n` +
        `${hint}, set { root } to a smaller folder, or raise the limit with { ship: { maxBytes } }`,
    );
  }
  return total;
}
