/**
 * Default handling of worker output: each line goes to this process's stdout or stderr, prefixed with the worker id.
 * Partial lines are held until their newline (or until 100 ms pass) so that lines of two workers never interleave.
 */

/** Where a worker's output goes: `stream` 1 is stdout, 2 is stderr. */
export type LogHandler = (worker: string, stream: 1 | 2, text: string) => void;

/** A log handler that writes `[worker id] line` to `out` (stream 1) and `err` (stream 2). */
export function prefixLogs(out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): LogHandler {
  const partial = new Map<string, { text: string; timer: NodeJS.Timeout }>();
  const emit = (key: string, stream: 1 | 2, worker: string, text: string): void => {
    (stream === 2 ? err : out).write(text.replace(/^(?=.)/gm, `[worker ${worker}] `));
    void key;
  };
  return (worker, stream, text) => {
    const key = `${worker}\u0000${stream}`;
    const held = partial.get(key);
    if (held) {
      clearTimeout(held.timer);
      partial.delete(key);
      text = held.text + text;
    }
    const cut = text.lastIndexOf('\n') + 1;
    if (cut > 0) emit(key, stream, worker, text.slice(0, cut));
    const rest = text.slice(cut);
    if (rest) {
      const timer = setTimeout(() => {
        partial.delete(key);
        emit(key, stream, worker, `${rest}\n`);
      }, 100);
      timer.unref();
      partial.set(key, { text: rest, timer });
    }
  };
}
