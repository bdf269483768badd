// JSON from files other people made (config.json, indexes, safetensors headers, tokenizer files): parse
// errors name the file and a position but never quote its bytes, and duplicate keys (which JSON.parse
// silently resolves to the last one) are refused where they would change what is loaded.

export class JsonError extends Error {
  override name = "JsonError";
}

/** Line and column (1-based) of character `offset` in `text`. */
function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset), line = before.split("\n").length;
  return `line ${line}, column ${offset - before.lastIndexOf("\n")}`;
}

/** Parse `text`, the contents of `file`; a syntax error says where, not what the text says there. */
export function parseJson(text: string, file: string, opts: { uniqueKeys?: boolean } = {}): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // V8 gives a position for most errors; its other messages quote the text, so they are not passed on
    const at = /at position (\d+)/.exec((e as Error).message);
    const where = at ? ` at ${lineColumn(text, Number(at[1]))}` : text.trim() === "" ? ": the file is empty" : "";
    throw new JsonError(`${file}: not valid JSON${where}`);
  }
  if (opts.uniqueKeys) checkUniqueKeys(text, file);
  return value;
}

/** `parseJson` for a file that must hold one JSON object. */
export function parseJsonObject(text: string, file: string, opts: { uniqueKeys?: boolean } = {}): Record<string, unknown> {
  const value = parseJson(text, file, opts);
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new JsonError(`${file}: expected a JSON object, found ${value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`}`);
  return value as Record<string, unknown>;
}

// In valid JSON every string is matched whole by this pattern (scanning left to right never starts inside
// one); a string followed by ":" is a key. Brackets open and close the objects whose keys must differ.
const TOKENS = /"(?:[^"\\]|\\.)*"(\s*:)?|[{}[\]]/g;

/** Throw if any object in the valid JSON `text` has a key twice (linear time). */
export function checkUniqueKeys(text: string, file: string): void {
  const stack: (Set<string> | null)[] = [];
  for (const m of text.matchAll(TOKENS)) {
    const t = m[0];
    if (t === "{") stack.push(new Set());
    else if (t === "[") stack.push(null);
    else if (t === "}" || t === "]") stack.pop();
    else if (m[1] !== undefined) {
      const keys = stack[stack.length - 1]!, key = JSON.parse(t.slice(0, t.lastIndexOf('"') + 1)) as string;
      if (keys.has(key)) throw new JsonError(`${file}: key ${JSON.stringify(key.slice(0, 200))} appears twice in one object (${lineColumn(text, m.index)})`);
      keys.add(key);
    }
  }
}
