#!/usr/bin/env node
/**
 * The `modulepickle` command (the package's `bin`).
 *   modulepickle worker --stdio [--cache-dir DIR]   serve tasks on stdin/stdout (docker, ssh, kubectl exec)
 *   modulepickle inspect <file|-> [--json]          show what a payload holds
 *   modulepickle inspect <dir> [--json]             show what would ship from a project folder, and what never does
 * Exit codes: 0 success, 1 failure (the error's code is printed), 2 usage error.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ModulePickleError } from '../errors.ts';

/** Exit codes of the CLI. */
export const ExitCode = { ok: 0, failure: 1, usage: 2 } as const;

const MAIN_HELP = `Usage: modulepickle <command> [options]

Commands:
  worker --stdio       Serve modulepickle tasks over stdin/stdout (for createStdioExecutor).
  worker --redis URL --queue NAME
                       Take jobs from a BullMQ queue (for createQueueExecutor); see 'worker --redis --help'.
  inspect <file|->     Show what a payload holds: sections, functions, modules, shipped files.
  inspect <dir>        Show what would ship from a project folder, and what never ships and why.

Options:
  -h, --help           Show help (also: modulepickle <command> --help).
  -v, --version        Print the version.

Exit codes: 0 success, 1 failure, 2 usage error.`;

const WORKER_HELP = `Usage: modulepickle worker --stdio [--cache-dir DIR]

Runs a worker that reads tasks on stdin and writes results on stdout, speaking the modulepickle
protocol. Start it through any command that forwards stdin/stdout, then point an executor at it:

  createStdioExecutor({ command: ['ssh', '-T', 'host', 'npx', 'modulepickle', 'worker', '--stdio'] })
  createStdioExecutor({ command: ['docker', 'run', '-i', 'img', 'npx', 'modulepickle', 'worker', '--stdio'] })

Output of user code (console.log, process.stdout.write) is forwarded to the caller, prefixed by worker.
The worker exits when stdin closes.

Options:
  --stdio              Required: use stdin/stdout as the channel.
  --cache-dir DIR      Where shipped code is cached (default: $MODULEPICKLE_CACHE, else the user cache folder).
  -h, --help           Show this help.`;

const INSPECT_HELP = `Usage: modulepickle inspect <file|-> [--json]
       modulepickle inspect <dir> [--json] [--cache-dir DIR]

Decodes a payload without running it and prints what it holds: the header, each section, every
function and class (by value or by reference, and why), module references (builtin, package@version,
local path), the manifest of shipped files (count, total size, largest entries) and blob sizes.
Use '-' to read the payload from stdin.

Given a folder, walks its project tree as a call from there would and prints what ships, the folders
that never ship on this machine (modulepickle's cache folders, by real path, and any folder with a
CACHEDIR.TAG) and every path left out with the reason. Nothing is hashed or run.

Options:
  --json               Print the report as JSON.
  --cache-dir DIR      (folders) The cacheDir option the calls use, if any.
  -h, --help           Show this help.`;

class UsageError extends Error {}

/** Runs the CLI with `argv` (without node and script); resolves with the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
      console.log(command === undefined ? MAIN_HELP : helpFor(rest[0]) ?? MAIN_HELP);
      return command === undefined ? ExitCode.usage : ExitCode.ok;
    }
    if (command === '-v' || command === '--version') {
      console.log(version());
      return ExitCode.ok;
    }
    if (command === 'worker') {
      // The queue worker lives in its own module: `modulepickle worker --redis URL --queue NAME`.
      if (rest.some((a) => a === '--redis' || a.startsWith('--redis='))) return await (await import('./worker-redis.ts')).redisWorker(rest);
      return await worker(rest);
    }
    if (command === 'inspect') return await inspect(rest);
    throw new UsageError(`unknown command '${command}'`);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`modulepickle: ${err.message}\nRun 'modulepickle --help' for usage.`);
      return ExitCode.usage;
    }
    const code = err instanceof ModulePickleError ? ` [${err.code}]` : '';
    console.error(`modulepickle: error${code}: ${err instanceof Error ? err.message : String(err)}`);
    return ExitCode.failure;
  }
}

function helpFor(command: string | undefined): string | undefined {
  return command === 'worker' ? WORKER_HELP : command === 'inspect' ? INSPECT_HELP : undefined;
}

function parseFlags(args: readonly string[], spec: Record<string, 'bool' | 'value'>): { flags: Map<string, string | true>; positional: string[] } {
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-h') {
      flags.set('--help', true);
      continue;
    }
    if (!a.startsWith('--') || a === '-') {
      positional.push(a);
      continue;
    }
    const [name, inline] = a.split('=', 2) as [string, string | undefined];
    const kind = spec[name];
    if (!kind) throw new UsageError(`unknown option '${name}'`);
    if (kind === 'bool') flags.set(name, true);
    else {
      const v = inline ?? args[++i];
      if (v === undefined) throw new UsageError(`option '${name}' needs a value`);
      flags.set(name, v);
    }
  }
  return { flags, positional };
}

async function worker(args: readonly string[]): Promise<number> {
  const { flags, positional } = parseFlags(args, { '--stdio': 'bool', '--cache-dir': 'value', '--help': 'bool' });
  if (flags.has('--help')) {
    console.log(WORKER_HELP);
    return ExitCode.ok;
  }
  if (positional.length > 0) throw new UsageError(`unexpected argument '${positional[0]}'`);
  if (!flags.has('--stdio')) throw new UsageError("worker needs a transport: 'modulepickle worker --stdio'");
  await import('../index.ts'); // registers every layer into the default registry
  const { startWorker } = await import('../executors/worker-loop.ts');
  process.setSourceMapsEnabled(true);
  const dir = flags.get('--cache-dir');
  startWorker({ cacheDir: typeof dir === 'string' ? dir : undefined });
  return new Promise<number>(() => {}); // the loop exits the process itself
}

async function inspect(args: readonly string[]): Promise<number> {
  const { flags, positional } = parseFlags(args, { '--json': 'bool', '--help': 'bool', '--cache-dir': 'value' });
  if (flags.has('--help')) {
    console.log(INSPECT_HELP);
    return ExitCode.ok;
  }
  if (positional.length !== 1) throw new UsageError("inspect needs exactly one payload file, or '-' for stdin");
  const file = positional[0]!;
  if (file !== '-' && isFolder(file)) {
    const { inspectTree, formatTreeReport } = await import('./inspect.ts');
    const cacheDir = flags.get('--cache-dir');
    const report = await inspectTree(file, { cacheDir: typeof cacheDir === 'string' ? cacheDir : undefined });
    console.log(flags.has('--json') ? JSON.stringify(report, null, 2) : formatTreeReport(report));
    return ExitCode.ok;
  }
  const bytes = file === '-' ? await readStdin() : readFileOr(file);
  const { inspectPayload, formatReport } = await import('./inspect.ts');
  const report = await inspectPayload(bytes);
  console.log(flags.has('--json') ? JSON.stringify(report, null, 2) : formatReport(report, file === '-' ? '<stdin>' : file));
  return ExitCode.ok;
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function readFileOr(file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ModulePickleError('ERR_MP_CLI_READ', `cannot read '${file}': ${(err as Error).message}`);
  }
}

async function readStdin(): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for await (const chunk of process.stdin) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

// Run when executed as the bin (not when imported by tests).
if (isMain()) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}

function isMain(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
