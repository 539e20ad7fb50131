// Runs inside a generated user project (bench/user-project.ts), under tsx or compiled by tsc, in a fresh process:
// the time of its first dumps of a closure over a local module (the module travels by reference), then of a second
// closure made at another location. Prints one JSON line. BENCH_SHIP=1 ships the project tree too.
const t0 = performance.now();
const { dumps } = await import('modulepickle');
const t1 = performance.now();
const { v } = await import('./lib/v.js');
const k = 3;
const options = process.env['BENCH_SHIP'] === '1' ? {} : { ship: false };
const t2 = performance.now();
await dumps((x: number) => v(x) * k, options);
const t3 = performance.now();
await dumps((x: number) => v(x) + k, options);
const t4 = performance.now();
console.log(JSON.stringify({ importMs: t1 - t0, firstMs: t3 - t2, secondMs: t4 - t3 }));
