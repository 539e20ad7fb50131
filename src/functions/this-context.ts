/**
 * Where an arrow function's `this` comes from. V8 shows no `this` in a closure's scopes, so an arrow inside a class
 * field initializer (`handler = () => this.x`) looks module-level. Parsing the defining script tells them apart:
 * the arrow is module-level only when no non-arrow function, class field or static block encloses it.
 */
import { readFileSync } from 'node:fs';
import { parse, type Node as AcornNode } from 'acorn';
import { ancestor } from 'acorn-walk';
import { urlToPath } from '../modules/locate.ts';
import { scriptSource, type FunctionLocation } from './inspector.ts';

const programs = new Map<string, AcornNode | null>();
const answers = new Map<string, boolean | undefined>();

function programOf(loc: FunctionLocation): AcornNode | null {
  let p = programs.get(loc.scriptId);
  if (p !== undefined) return p;
  let text: string | undefined;
  const file = urlToPath(loc.url);
  if (file && /\.[cm]?js$/.test(file)) {
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      text = undefined;
    }
  }
  text ??= scriptSource(loc.scriptId);
  p = null;
  for (const sourceType of ['module', 'script'] as const) {
    try {
      p = parse(text, { ecmaVersion: 'latest', sourceType, allowHashBang: true, allowReturnOutsideFunction: true, allowAwaitOutsideFunction: true });
      break;
    } catch {
      p = null;
    }
  }
  programs.set(loc.scriptId, p);
  return p;
}

function offsetOf(line: number, column: number, source: string): number {
  let off = 0;
  for (let l = 0; l < line; l++) {
    const nl = source.indexOf('\n', off);
    if (nl < 0) return -1;
    off = nl + 1;
  }
  return off + column;
}

/**
 * Whether the arrow function at `loc` is lexically at module level (its `this` is the module's).
 * `undefined` when the script cannot be parsed.
 */
export function arrowAtModuleLevel(loc: FunctionLocation): boolean | undefined {
  const key = `${loc.scriptId}:${loc.line}:${loc.column}`;
  if (answers.has(key)) return answers.get(key);
  let answer: boolean | undefined;
  const program = programOf(loc);
  if (program) {
    const file = urlToPath(loc.url);
    let source: string;
    try {
      source = file && /\.[cm]?js$/.test(file) ? readFileSync(file, 'utf8') : scriptSource(loc.scriptId);
    } catch {
      source = scriptSource(loc.scriptId);
    }
    const at = offsetOf(loc.line, loc.column, source);
    ancestor(program, {
      ArrowFunctionExpression(node, _state, ancestors) {
        const n = node as AcornNode & { body: AcornNode };
        if (answer !== undefined || at < n.start || at > n.body.start) return;
        answer = !ancestors.slice(0, -1).some((a) =>
          a.type === 'FunctionExpression' || a.type === 'FunctionDeclaration' || a.type === 'PropertyDefinition' || a.type === 'StaticBlock');
      },
    });
  }
  answers.set(key, answer);
  return answer;
}
