// Deno and Bun (dev dependencies from npm) run openelm through its public entry points: every oracle
// case's greedy ids are CoreNet's, and a seeded sampled generation streams the same chunks as in Node.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MODELS, ROOT, greedyAgreement, oracleCases } from "./helpers/oracle.js";

interface HostRun {
  kernels: string;
  greedy: Record<string, number[][]>;
  chunks: { text: string; ids: number[] }[];
}

const SCRIPT = join(ROOT, "test/hosts/run.mjs"), BIN = join(ROOT, "node_modules/.bin");
const HOSTS: Record<string, string[]> = {
  node: [process.execPath, SCRIPT],
  deno: [join(BIN, "deno"), "run", "--allow-read", "--allow-env", "--allow-sys", SCRIPT],
  bun: [join(BIN, "bun"), SCRIPT],
};

function run(host: string): HostRun {
  const [cmd, ...args] = HOSTS[host]!;
  const p = spawnSync(cmd!, args, { cwd: ROOT, encoding: "utf8", timeout: 120_000, maxBuffer: 1 << 24 });
  expect(p.stderr, `${host} stderr`).toBe("");
  expect(p.status, `${host} exit status`).toBe(0);
  return JSON.parse(p.stdout) as HostRun;
}

describe("JS hosts", () => {
  const node = run("node");

  it.each(["deno", "bun"])("%s: the reference greedy ids for every oracle case, with threads and SIMD, and Node's streamed chunks", (host) => {
    const r = run(host);
    expect(r.kernels).toBe(node.kernels); // the same kernel build, two threads
    for (const name of MODELS)
      oracleCases(name).forEach((c, i) => {
        const ours = r.greedy[name]![i]!;
        expect(ours).toHaveLength(c.greedy.length);
        expect(greedyAgreement(ours, c.greedy, c.gaps).firstMismatch, `${host} ${name} case ${i}`).toBe(-1);
      });
    expect(r.greedy).toEqual(node.greedy);
    expect(r.chunks.length).toBeGreaterThan(1);
    expect(r.chunks).toEqual(node.chunks);
  }, 180_000);
});
