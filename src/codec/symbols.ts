/** Well-known symbols (`Symbol.iterator`, ...) travel by name and load as the receiver's own. */
export const wellKnownSymbolNames = new Map<symbol, string>();
export const wellKnownSymbols = new Map<string, symbol>();
for (const name of Object.getOwnPropertyNames(Symbol)) {
  const s = (Symbol as unknown as Record<string, unknown>)[name];
  if (typeof s === 'symbol') {
    wellKnownSymbolNames.set(s, name);
    wellKnownSymbols.set(name, s);
  }
}
