/**
 * Error classes. Every error carries a stable `code` (`ERR_MP_...`); one subclass per family.
 * `instanceof` works across copies of the package through a `Symbol.for` brand (as undici does).
 */

const brand = Symbol.for('modulepickle.error');

/** One step into an object graph: a property key, an index, or a labelled step such as `{ label: " -> closure 'db'" }`. */
export type PathSegment = string | number | symbol | { readonly label: string };
/** Path into an object graph, e.g. `root.users[3].conn`. */
export type GraphPath = ReadonlyArray<PathSegment>;

/** Formats a graph path as `root.a[3][Symbol(x)]`. */
export function formatPath(path: GraphPath): string {
  let out = 'root';
  // Very deep paths keep their first and last steps.
  const shown = path.length > 24 ? [...path.slice(0, 4), { label: `…(${path.length - 16} more)…` }, ...path.slice(-12)] : path;
  for (const seg of shown) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'symbol') out += `[${String(seg)}]`;
    else if (typeof seg === 'object') out += seg.label;
    else if (/^[A-Za-z_$][\w$]*$/.test(seg)) out += `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** Base class of every modulepickle error. */
export class ModulePickleError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, brand, { value: true });
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this === ModulePickleError) {
      return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true;
    }
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
  override get name(): string {
    return this.constructor.name;
  }
}

/** A value cannot be pickled. `path` locates it in the graph. */
export class EncodeError extends ModulePickleError {
  readonly path: PathSegment[];
  readonly detail: string;
  constructor(code: string, detail: string, path: PathSegment[] = [], options?: { cause?: unknown }) {
    super(code, detail, options);
    this.detail = detail;
    this.path = path;
    this.refreshMessage();
  }
  /** Rebuilds `message` after a caller prepended path segments. */
  refreshMessage(): void {
    this.message = `${this.detail} (at ${formatPath(this.path)})`;
  }
}

/** Bytes cannot be turned back into a value. `offset` is the byte position where decoding failed. */
export class DecodeError extends ModulePickleError {
  readonly offset: number | undefined;
  constructor(code: string, message: string, offset?: number, options?: { cause?: unknown }) {
    super(code, offset === undefined ? message : `${message} (at byte ${offset})`, options);
    this.offset = offset;
  }
}

/** Local files cannot be shipped or materialized. `file` names the file involved. */
export class ShipError extends ModulePickleError {
  readonly file: string | undefined;
  constructor(code: string, message: string, file?: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.file = file;
  }
}

/** An exception raised by user code on a worker, rethrown locally. */
export class RemoteError extends ModulePickleError {
  remoteName = 'Error';
  remoteStack = '';
}

/** A worker failed (crashed, exited, timed out, refused a job, or spoke a wrong protocol). */
export class WorkerError extends ModulePickleError {
  readonly worker: string | undefined;
  constructor(code: string, message: string, worker?: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.worker = worker;
  }
}
