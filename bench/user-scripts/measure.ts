// Shared by the user scripts (copied beside them into the generated project as src/measure.ts): medians, latency
// of sequential calls, throughput of a burst, and the interleaved rounds that measure a table of contenders.
const CALLS = Number(process.env['BENCH_LAT_CALLS'] ?? 400);
const TASKS = Number(process.env['BENCH_TASKS'] ?? 10_000);

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Median µs of `n` sequential calls (no warm-up). */
export async function timeUs(n: number, call: (i: number) => Promise<unknown> | unknown): Promise<number> {
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await call(i);
    t.push(performance.now() - s);
  }
  return median(t) * 1000;
}

/** Median µs of sequential calls, after 50 warm-up calls. */
export async function latency(call: (i: number) => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 50; i++) await call(i);
  return timeUs(CALLS, call);
}

/** Tasks per second of one burst of TASKS submitted at once, after a smaller warm-up burst. */
export async function throughput(burst: (n: number) => Promise<unknown>): Promise<number> {
  await burst(Math.min(TASKS, 1000));
  const s = performance.now();
  await burst(TASKS);
  return TASKS / ((performance.now() - s) / 1000);
}

/** A burst of `n` concurrent calls. */
export const each = (call: (i: number) => Promise<unknown>) => (n: number) => Promise.all(Array.from({ length: n }, (_, i) => call(i)));

/** A contender: its sequential call, and optionally its own burst (default: `each(call)`) or no latency row. */
export interface Row {
  readonly name: string;
  readonly call: (i: number) => Promise<unknown>;
  readonly burst?: (n: number) => Promise<unknown>;
  readonly latency?: false;
}

/** Measures every row in `rounds` interleaved rounds (throughput in the first three): medians per row. */
export async function measureRows(rows: readonly Row[], rounds = 5): Promise<{ name: string; latencyUs: number | null; tasksPerSec: number }[]> {
  const lat: number[][] = rows.map(() => []);
  const tput: number[][] = rows.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (const [i, row] of rows.entries()) {
      if (row.latency !== false) lat[i]!.push(await latency(row.call));
      if (r < 3) tput[i]!.push(await throughput(row.burst ?? each(row.call)));
    }
  }
  return rows.map((r, i) => ({ name: r.name, latencyUs: lat[i]!.length ? median(lat[i]!) : null, tasksPerSec: median(tput[i]!) }));
}
