/**
 * Which code versions (ship builds) a task needs in Redis before its job is added. The payloads say it themselves:
 * each `ship` section carries the manifest of one version (whose id is the sha256 of its text), or its id alone. The builds come from
 * the pickler's build reports (`ship.onBuild`), kept by id; a function's versions are cached by its content hash,
 * and argument payloads are looked at only when their header says they carry code.
 */
import { createHash } from 'node:crypto';
import { HEADER_HAS_CODE } from '../../codec/tags.ts';
import { WorkerError } from '../../errors.ts';
import { walkPayload } from '../payload-walk.ts';
import type { ShipBuild } from '../pickler.ts';
import { argsPayload, type EncodedTask } from '../task.ts';

/** Builds reported by the pickler, and the versions each payload references. */
export class CodeVersions {
  readonly #builds = new Map<string, ShipBuild>();
  readonly #byFunction = new Map<string, readonly string[]>();
  constructor(
    readonly maxBuilds = 64,
    readonly maxFunctions = 1024,
  ) {}

  /** Records a build (pass it as the pickler's `ship.onBuild`). */
  readonly onBuild = (build: ShipBuild): void => {
    this.#builds.delete(build.id);
    this.#builds.set(build.id, build);
    if (this.#builds.size > this.maxBuilds) this.#builds.delete(this.#builds.keys().next().value!);
  };

  /** Version ids the task's function and arguments reference. */
  idsOf(task: EncodedTask): string[] {
    let fn = this.#byFunction.get(task.fnKey);
    if (!fn) {
      fn = manifestIds(task.fnBytes);
      this.#byFunction.set(task.fnKey, fn);
      if (this.#byFunction.size > this.maxFunctions) this.#byFunction.delete(this.#byFunction.keys().next().value!);
    }
    const args = manifestIds(argsPayload(task));
    return args.length === 0 ? [...fn] : [...new Set([...fn, ...args])];
  }

  /** The build of a version id, if this process still has it. */
  build(id: string): ShipBuild | undefined {
    return this.#builds.get(id);
  }
}

/** Manifest ids of the `ship` sections of a payload (none when its header says it carries no code). */
export function manifestIds(payload: Uint8Array): string[] {
  if (payload.length < 5 || (payload[4]! & HEADER_HAS_CODE) === 0) return [];
  let sections;
  try {
    sections = walkPayload(payload).sections;
  } catch (err) {
    throw new WorkerError('ERR_MP_BAD_PAYLOAD', `a payload made by this process could not be read back: ${(err as Error).message}`, undefined, { cause: err });
  }
  const ids: string[] = [];
  for (const s of sections) {
    if (s.name !== 'ship') continue;
    // The section carries the manifest text, or (ship.manifest 'id') names the version by its id alone.
    const d = s.data as { manifest?: unknown; id?: unknown } | null;
    if (typeof d?.manifest === 'string') ids.push(createHash('sha256').update(d.manifest).digest('hex'));
    else if (typeof d?.id === 'string') ids.push(d.id);
  }
  return ids;
}
