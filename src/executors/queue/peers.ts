/**
 * BullMQ and ioredis are loaded on first use, so that importing modulepickle (in every pool worker, in programs that
 * never use the queue) does not load them, and they can stay optional peer dependencies.
 */
import { WorkerError } from '../../errors.ts';

type Bullmq = typeof import('bullmq');
type Ioredis = { Redis: typeof import('ioredis').Redis };

let bullmq: Promise<Bullmq> | undefined;
let ioredis: Promise<Ioredis> | undefined;

function missing(name: string, err: unknown): WorkerError {
  return new WorkerError('ERR_MP_MISSING_PEER', `the queue executor needs the '${name}' package: npm install bullmq ioredis`, undefined, { cause: err });
}

/** The `bullmq` module. @throws ERR_MP_MISSING_PEER */
export function loadBullmq(): Promise<Bullmq> {
  bullmq ??= import('bullmq').catch((err: unknown) => {
    bullmq = undefined;
    throw missing('bullmq', err);
  });
  return bullmq;
}

/** The `ioredis` module. @throws ERR_MP_MISSING_PEER */
export function loadIoredis(): Promise<Ioredis> {
  ioredis ??= import('ioredis').then((m): Ioredis => ({ Redis: m.Redis }), (err: unknown) => {
    ioredis = undefined;
    throw missing('ioredis', err);
  });
  return ioredis;
}
