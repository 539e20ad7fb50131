/**
 * Edits of a by-value function's source text (heritage, `import()`, `import.meta`, private-state hooks), applied in
 * one pass; the places where the defining module's URL was written are returned, so the receiver can point them
 * at its own copy of that module (the shipped tree) without parsing the code again.
 */

/** Replace `[start, end)` of the source with `text`; `urlAt` is where in `text` the module URL literal starts. */
export interface SourceEdit {
  readonly start: number;
  readonly end: number;
  readonly text: string;
  readonly urlAt?: number;
}

/** The edited text and the offsets in it of every module URL literal. */
export function applyEdits(source: string, edits: readonly SourceEdit[]): { text: string; urlSpans: number[] } {
  // Insertions before replacements at the same place; an edit inside one already applied is covered by it.
  const sorted = [...edits].sort((a, b) => a.start - b.start || a.end - a.start - (b.end - b.start));
  let text = '';
  let last = 0;
  const urlSpans: number[] = [];
  for (const e of sorted) {
    if (e.start < last) continue;
    text += source.slice(last, e.start);
    if (e.urlAt !== undefined) urlSpans.push(text.length + e.urlAt);
    text += e.text;
    last = e.end;
  }
  return { text: text + source.slice(last), urlSpans };
}

/** Points the module URL literals at `spans` (as made by `applyEdits` for `from`) at `to`; unchanged if any differs. */
export function retargetUrls(text: string, spans: readonly number[], from: string, to: string): string {
  const a = JSON.stringify(from);
  const b = JSON.stringify(to);
  if (a === b || !spans.every((p) => Number.isInteger(p) && text.startsWith(a, p))) return text;
  let out = text;
  for (const p of [...spans].sort((x, y) => y - x)) out = out.slice(0, p) + b + out.slice(p + a.length);
  return out;
}
