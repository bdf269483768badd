// Every code block of README.md runs here, so that no example goes stale. The convention:
// - A block right after `<!-- same as PATH -->` must equal the repository's file PATH, which another test
//   runs (test/bundlers/*: test/bundlers.test.ts builds and runs them).
// - A block right after `<!-- file: NAME -->` is written to NAME in the scratch project, for the sh lines.
// - ```sh blocks: each line is a command that bash runs in a scratch project where openelm is installed
//   from the packed tarball (as `npm install openelm` installs it), `openelm/` is a clone of this repository,
//   the model names the README uses (DIR, OpenELM-270M, path/to/OpenELM-270M-Instruct, ...) are the demo
//   model, and the data files (*.jsonl, wiki.test.raw, *.gguf, yours.safetensors) are small real files.
//   Optional parts in [brackets] run included. Each line must exit 0. (`npx openelm` runs the installed bin.)
// - ```ts and ```js blocks run as ES modules in Node in that project (TypeScript through esbuild).
// - Hub ids (org/name) resolve through a mock hub on 127.0.0.1 (HF_ENDPOINT) serving the demo model, into a
//   cache in the scratch project (HF_HUB_CACHE); the sh lines run in order, so a later one finds what an
//   earlier one downloaded.
// - What cannot run is listed in NOT_RUN with the reason; a listed line that leaves the README fails here.
// The API reference (TypeDoc over the TSDoc comments) must build without a warning.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { transform } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "./helpers/oracle.js";
import { installedProject } from "./bundlers/project.js";
import { MockHub } from "./helpers/mock-hub.js";

interface Block {
  lang: string;
  code: string;
  /** The HTML comment on the line before the fence, if any. */
  note?: string;
  line: number;
}

/** The fenced code blocks of a Markdown text, with indentation (list items) removed. */
function codeBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n"), blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length, start = i, body: string[] = [];
    while (!/^\s*```\s*$/.test(lines[++i] ?? "```")) body.push(lines[i]!.slice(indent));
    const note = /^\s*<!--\s*(.*?)\s*-->\s*$/.exec(lines[start - 1] ?? "")?.[1];
    blocks.push({ lang: open[2]!, code: body.join("\n") + "\n", note, line: start + 1 });
  }
  return blocks;
}

const NOT_RUN: Record<string, string> = {
  'npm install && npx openelm generate --prompt "Once upon a time" --max-new-tokens 64': "the first command in a fresh clone: CI's clone builds on install, and test/package.test.ts runs openelm generate from the packed package",
  "npm ci && npm test": "the test suite itself (.ci/run)",
  "npx openelm web                                     # http://127.0.0.1:8080/ with the bundled demo model": "a server that runs until Ctrl-C: test/demo.test.ts and test/package.test.ts run it",
  "npx openelm serve --model apple/OpenELM-270M-Instruct --parallel 4   # http://127.0.0.1:8080/v1 until Ctrl-C": "a server that runs until Ctrl-C: test/server.test.ts runs openelm serve --port 0",
  "npx openelm web --model OpenELM-270M-Instruct --port 8000 --host 0.0.0.0": "a server that runs until Ctrl-C, on a fixed port: test/demo.test.ts runs it with --model",
};

const README = readFileSync(join(ROOT, "README.md"), "utf8");
const blocks = codeBlocks(README);
const shLines = blocks.filter((b) => b.lang === "sh").flatMap((b) => b.code.split("\n").filter((l) => l.trim() !== "").map((l) => ({ line: l, block: b })));
const modules = blocks.filter((b) => (b.lang === "ts" || b.lang === "js") && !b.note);
const DEMO = "node_modules/openelm/ref/trained/elm-sotu";
const MODEL_NAMES = ["DIR", "OpenELM-270M", "OpenELM-270M-Instruct", "OpenELM-3B", "OpenELM-3B-Instruct", "OpenELM-1_1B-Instruct", "path/to/OpenELM-270M-Instruct"];
const HELLASWAG = [
  { activity_label: "Baking cookies", ctx_a: "A woman puts a tray in the oven.", ctx_b: "she", endings: ["waits for them to bake.", "swims across the tray.", "sings to the oven [title] loudly.", "reads the oven."], label: "0" },
  { activity_label: "Running", ctx_a: "A man ties his shoes.", ctx_b: "he", endings: ["runs down the road.", "eats the shoes.", "paints the road.", "flies away."], label: 0 },
];

let scratch = "", hub: MockHub | undefined;
/** The hub the README's ids resolve through (set up in beforeAll). */
const hubEnv = () => ({ HF_ENDPOINT: hub!.url, HF_HUB_CACHE: join(scratch, "hf-cache"), HF_HUB_OFFLINE: "", HF_TOKEN: "" });
const outputs = new Map<string, string>();

// npx would run node_modules/.bin/openelm; this does so without npx's second of start-up per line
// (test/package.test.ts runs the real npx).
const NPX = 'npx() { if [ "$1" = openelm ]; then shift; node node_modules/.bin/openelm "$@"; else command npx "$@"; fi; }';

/** Run a program in the scratch project (not blocking: the mock hub answers from this process). */
function run(cmd: string, args: string[], input = ""): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const p = spawn(cmd, args, { cwd: scratch, timeout: 120_000, env: { ...process.env, ...hubEnv(), PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}` } });
    let stdout = "", stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (status) => done({ status, stdout, stderr }));
    p.stdin.end(input);
  });
}

/** bash in the scratch project, with Deno and Bun (this repository's dev dependencies) on the PATH. */
const bash = (command: string) => run("bash", ["-c", `${NPX}\n${command}`], "What is a llama?\n");

beforeAll(async () => {
  const demo = (name: string) => new Uint8Array(readFileSync(join(ROOT, "ref/trained/elm-sotu", name)));
  hub = await new MockHub({ "apple/OpenELM-270M-Instruct": { revisions: { main: { "config.json": demo("config.json"), "model.safetensors": demo("model.safetensors") } } } }).start();
  const project = installedProject();
  scratch = mkdtempSync(join(tmpdir(), "openelm-readme-"));
  writeFileSync(join(scratch, "package.json"), JSON.stringify({ name: "readme", private: true, type: "module" }));
  symlinkSync(join(project.dir, "node_modules"), join(scratch, "node_modules"));
  symlinkSync(ROOT, join(scratch, "openelm"));
  for (const name of MODEL_NAMES) {
    mkdirSync(dirname(join(scratch, name)), { recursive: true });
    symlinkSync(join(scratch, DEMO), join(scratch, name));
  }
  writeFileSync(join(scratch, "hellaswag-validation.jsonl"), HELLASWAG.map((d) => JSON.stringify(d)).join("\n") + "\n");
  writeFileSync(join(scratch, "wiki.test.raw"), README.slice(0, 3000));
  for (const b of blocks) {
    const file = /^file: (\S+)$/.exec(b.note ?? "")?.[1];
    if (file) writeFileSync(join(scratch, file), b.code);
  }
  for (const setup of [`npx openelm convert --model ${DEMO} --out OpenELM-270M-Instruct-Q4_K_M.gguf --type q4_k_m`, `npx openelm trace --model ${DEMO} --ids 1,5,9 --out yours.safetensors --taps "layers.*.q_rope,logits"`]) {
    const r = await bash(setup);
    expect(r.status, `${setup}: ${r.stderr}`).toBe(0);
  }
}, 300_000);

afterAll(async () => {
  await hub?.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe("README.md", () => {
  it("has the blocks this test expects: sh lines, modules, and files it names", () => {
    expect(shLines.length).toBeGreaterThan(20);
    expect(modules.length).toBeGreaterThanOrEqual(2);
    for (const line of Object.keys(NOT_RUN)) expect(shLines.map((l) => l.line), `NOT_RUN lists "${line}", no longer in README.md`).toContain(line);
    const known = blocks.filter((b) => b.note && !/^(same as|file:) /.test(b.note));
    expect(known.map((b) => `line ${b.line}: ${b.note}`)).toEqual([]);
  });

  it.each(blocks.filter((b) => b.note?.startsWith("same as ")).map((b) => [b.note!.slice(8), b] as const))("the block after <!-- same as %s --> is that file", (path, b) => {
    expect(b.code).toBe(readFileSync(join(ROOT, path), "utf8"));
  });

  it.each(shLines.filter((l) => !(l.line in NOT_RUN)).map((l) => [l.line] as const))("$ %s", async (line) => {
    const command = line.replace(/\s\[(--[^\]]+)\]/g, " $1");
    const r = await bash(command);
    expect(r.status, `${command}\n${r.stderr}`).toBe(0);
    outputs.set(line, r.stdout);
  });

  it("app.mjs gives the same text in Node, Deno and Bun, and in Deno through npm: specifiers", async () => {
    const hosts = ["node app.mjs", "deno run --allow-read app.mjs", "bun app.mjs"].map((cmd) => [...outputs].find(([line]) => line.startsWith(cmd))?.[1]);
    expect(hosts[0]!.length).toBeGreaterThan(10);
    expect(hosts).toEqual([hosts[0], hosts[0], hosts[0]]);
    writeFileSync(join(scratch, "npm-app.mjs"), readFileSync(join(scratch, "app.mjs"), "utf8").replaceAll('from "openelm', 'from "npm:openelm'));
    const r = await bash("deno run --allow-read npm-app.mjs");
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(hosts[0]);
  });

  it.each(modules.map((b) => [b.lang, b.line, b] as const))("the %s block at line %i runs in Node", async (_lang, _line, b) => {
    const file = join(scratch, `block-${b.line}.mjs`);
    writeFileSync(file, b.lang === "ts" ? (await transform(b.code, { loader: "ts", format: "esm" })).code : b.code);
    const r = await run(process.execPath, [file]);
    expect(r.status, r.stderr).toBe(0);
  });
});

it("the API reference builds from the TSDoc comments without a warning", () => {
  const r = spawnSync(process.execPath, [join(ROOT, "node_modules/typedoc/bin/typedoc"), "--emit", "none"], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
  expect(r.stdout + r.stderr).not.toMatch(/warning|error/i);
  expect(r.status).toBe(0);
});
