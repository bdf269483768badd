// The core must run in any JS host: nothing outside src/node/ may import a Node built-in.
import { readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { expect, it } from "vitest";
import { ROOT } from "./helpers/oracle.js";

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === "node" ? [] : sources(join(dir, e.name))) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []);
}

it("src/ outside src/node/ imports no Node built-ins and no Node globals", () => {
  const files = sources(join(ROOT, "src"));
  expect(files.length).toBeGreaterThan(10);
  for (const f of files) {
    const text = readFileSync(f, "utf8");
    const imports = [...text.matchAll(/from\s+"([^"]+)"/g)].map((m) => m[1]!);
    for (const spec of imports) expect(spec.startsWith(".") || spec.startsWith("@huggingface/"), `${relative(ROOT, f)} imports ${spec}`).toBe(true);
    expect(/(?<![.\w])(process\.|Buffer[.(]|require\(|__dirname)/.test(text), `${relative(ROOT, f)} uses a Node global`).toBe(false);
  }
});
