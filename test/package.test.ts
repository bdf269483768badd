// The npm package as a user meets it: the packed tarball is lean (the built code, the demo model, the
// chat template, LICENSE, README), installs into an empty project without building anything, and its
// command line and entry points give what the repository gives.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "./helpers/oracle.js";
import { installedProject, type InstalledProject } from "./bundlers/project.js";

let project: InstalledProject;
beforeAll(() => {
  project = installedProject();
}, 300_000);

const run = (cmd: string, args: string[], cwd: string) => spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 120_000 });
const npx = (...args: string[]) => run("npx", ["--no-install", "openelm", ...args], project.dir);
const repoCli = (...args: string[]) => run(process.execPath, [join(ROOT, "dist/node/cli.js"), ...args], ROOT);

/** Files under `dir`, relative to the repository. */
const filesUnder = (dir: string): string[] =>
  readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));

describe("the tarball", () => {
  it("holds the built code, the demo model, the chat template, LICENSE and README, and nothing else", () => {
    const paths = project.pack.files.map((f) => f.path).sort();
    const built = filesUnder("dist").filter((p) => !/\.map$|^dist\/(bench|docs)\//.test(p));
    expect(paths).toEqual([...built, "LICENSE", "README.md", "package.json", "ref/openelm-instruct-chat-template.json",
      "ref/trained/elm-sotu/config.json", "ref/trained/elm-sotu/generation_config.json", "ref/trained/elm-sotu/model.safetensors"].sort());
    for (const p of ["dist/kernels-simd.wasm", "dist/kernels-relaxed.wasm", "dist/kernels-simd-shared.wasm", "dist/kernels-relaxed-shared.wasm",
      "dist/kernels/web-worker.js", "dist/node/worker.js", "dist/node/cli.js", "dist/tokenizer.json", "dist/index.d.ts"]) expect(paths).toContain(p);
    expect(project.pack.size).toBeLessThan(9e6); // 7.4 MB today: most of it the demo model's 10 MB of bf16 weights, which compress little
  });

  it("installs from the tarball without building anything: no install script runs, no compiler is fetched", () => {
    const modules = join(project.dir, "node_modules");
    expect(existsSync(join(modules, "openelm/dist/index.js"))).toBe(true);
    for (const absent of ["assemblyscript", "typescript", "vitest", "openelm/src", "openelm/kernels"]) expect(existsSync(join(modules, absent)), absent).toBe(false);
    // npm prints "> openelm@0.1.0 SCRIPT" for every lifecycle script it runs in the foreground
    expect(project.installLog).not.toMatch(/> openelm@/);
    expect(project.installSeconds).toBeLessThan(120);
  });
});

describe("installed in an empty project", () => {
  it("npx openelm generate gives the repository's text and ids with the bundled demo model", () => {
    const args = ["generate", "--prompt", "Once upon a time", "--max-new-tokens", "8", "--temperature", "0"];
    const ours = npx(...args), repo = repoCli(...args);
    expect(ours.status, ours.stderr).toBe(0);
    expect(ours.stdout).toBe(repo.stdout);
    expect(ours.stdout.startsWith("Once upon a time")).toBe(true);
    const json = npx(...args, "--json"), repoJson = repoCli(...args, "--json");
    expect(JSON.parse(json.stdout).ids).toEqual(JSON.parse(repoJson.stdout).ids);
    expect(JSON.parse(json.stdout).ids).toHaveLength(8);
  });

  it("npx openelm --version prints the package's version", () => {
    const r = npx("--version");
    expect(r.stdout.trim()).toBe(`openelm ${(JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version}`);
  });

  it("import('openelm'), import('openelm/node') and import('openelm/server') load the demo model and decode as the repository does", () => {
    const script = join(project.dir, "decode.mjs");
    writeFileSync(script, `
      import { decode, TextGenerator } from "openelm";
      import { loadModelFromFolder, loadTokenizerFromFolder } from "openelm/node";
      import { openaiApp, Scheduler } from "openelm/server";
      import { fileURLToPath } from "node:url";
      const dir = fileURLToPath(new URL("./node_modules/openelm/ref/trained/elm-sotu", import.meta.url));
      const model = await loadModelFromFolder(dir, { threads: 2 }), tokenizer = await loadTokenizerFromFolder(dir);
      const ids = [...decode(model, model.newCache(), tokenizer.encode("Once upon a time"), { maxNewTokens: 8 })];
      const text = (await new TextGenerator(model, tokenizer).complete("Once upon a time", { maxNewTokens: 8 })).text;
      const resolved = ["openelm/tokenizer.json", "openelm/chat-template.json"].map((s) => import.meta.resolve(s));
      const scheduler = new Scheduler(model, tokenizer), app = openaiApp(scheduler, { modelId: "demo" });
      const models = await (await app.request("/v1/models")).json();
      console.log(JSON.stringify({ ids, text, kernels: model.kernels.name, resolved, models: models.data.map((m) => m.id) }));
      scheduler.close();
      await model.close();
    `);
    const r = run(process.execPath, [script], project.dir);
    expect(r.stderr).toBe("");
    const out = JSON.parse(r.stdout) as { ids: number[]; text: string; kernels: string; resolved: string[]; models: string[] };
    // plain greedy, as the code above decodes (the CLI would otherwise take the model's generation_config.json)
    const repo = JSON.parse(repoCli("generate", "--prompt", "Once upon a time", "--max-new-tokens", "8", "--temperature", "0", "--repetition-penalty", "1", "--threads", "2", "--json").stdout);
    expect(out.ids).toEqual(repo.ids);
    expect(out.text).toBe(repo.text);
    expect(out.kernels).toBe("wasm-relaxed-shared ×2 threads");
    expect(out.models).toEqual(["demo"]); // openelm/server answers
    for (const url of out.resolved) expect(existsSync(new URL(url)), url).toBe(true);
  });

  it("npx openelm web serves the demo page and the demo model from the installed package", async () => {
    // its own process group, so that the stop reaches the server through npx and its shell
    const server = spawn("npx", ["--no-install", "openelm", "web", "--port", "0"], { cwd: project.dir, stdio: ["ignore", "pipe", "inherit"], detached: true });
    const exited = new Promise((r) => server.on("exit", r));
    try {
      const base = await new Promise<string>((resolve, reject) => {
        server.stdout.on("data", (d: Buffer) => /http:\/\/\S+\//.test(String(d)) && resolve(/http:\/\/\S+\//.exec(String(d))![0]));
        server.on("exit", (code) => reject(new Error(`openelm web exited with ${code}`)));
      });
      const page = await fetch(base);
      expect(page.status).toBe(200);
      expect(await page.text()).toMatch(/<script type="module"/);
      const config = await fetch(new URL("models/demo/config.json", base));
      expect(await config.json()).toMatchObject({ num_transformer_layers: 6, vocab_size: 32000 });
    } finally {
      process.kill(-server.pid!, "SIGINT");
      await exited;
    }
  });

  it("openelm conformance asks for the repository's reference data, which the package does not hold, and uses it with --ref", () => {
    const out = mkdtempSync(join(tmpdir(), "openelm-pack-"));
    const missing = npx("conformance", "--out", out);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/openelm: usage: .*ref has no oracle: the conformance data is in the openelm repository's ref\/ folder, not in the npm package; clone the repository and pass --ref path\/to\/openelm\/ref/);
    const r = npx("conformance", "--out", out, "--ref", join(ROOT, "ref"));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*: 5 models, \d+ cases/);
    expect(existsSync(join(out, "models/elm-tiny-gqa/trace-0.safetensors"))).toBe(true);
    expect(existsSync(join(out, "README.md"))).toBe(true);
    rmSync(out, { recursive: true });
  });
});
