// Raw BullMQ baseline worker for bench/queue.bench.ts: JSON payload, hard-coded processor, no modulepickle.
// argv: <host> <port> <queue> <concurrency>
import { Worker } from 'bullmq';

const [host, port, queue, concurrency] = process.argv.slice(2);
const worker = new Worker(queue, async (job) => job.data.x + 1, {
  connection: { host, port: Number(port), maxRetriesPerRequest: null },
  concurrency: Number(concurrency),
});
await worker.waitUntilReady();
process.stdout.write(`READY ${process.pid}\n`);
process.on('SIGTERM', () => void worker.close().then(() => process.exit(0)));
