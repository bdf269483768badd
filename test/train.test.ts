// The backward pass (src/train/) against PyTorch autograd: for every checkpoint in ref/grads (made by
// ref/grad_reference.py in float64), the loss and every weight's gradient, with the max relative error per
// tensor asserted; and the clear errors of what it cannot train.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { fileSource } from "../src/node/files.js";
import { loadModelFromFolder } from "../src/node/index.js";
import { readTrace } from "../src/trace.js";
import { lossAndGradients } from "../src/train/gradients.js";
import { ROOT } from "./helpers/oracle.js";

const CASES = [
  ["elm-tiny-gqa", "ref/oracle/elm-tiny-gqa"], // GQA with 4 groups, QK-norm, tied head
  ["elm-tiny-untied-mha", "ref/oracle/elm-tiny-untied-mha"], // one kv head per query head, no QK-norm, separate lm_head
  ["elm-tiny-fp16", "ref/oracle/elm-tiny-fp16"], // stored in f16, trained in f32
  ["gelu-plain-untied", "ref/synthetic/gelu-plain-untied"], // GELU without GLU
  ["relu-glu-mqa", "ref/synthetic/relu-glu-mqa"], // ReLU with GLU, one kv head, RoPE base 1e5
] as const;

/** The ids and loss that ref/grad_reference.py wrote into the file's metadata. */
function metadata(path: string): { ids: number[]; loss: number } {
  const bytes = readFileSync(path), n = Number(bytes.readBigUInt64LE(0));
  const meta = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")).__metadata__ as { ids: string; loss: string };
  return { ids: meta.ids.split(",").map(Number), loss: Number(meta.loss) };
}

describe("backward pass against PyTorch autograd", () => {
  it.each(CASES)("%s: loss and every weight's gradient", async (name, dir) => {
    const path = join(ROOT, "ref/grads", `${name}.safetensors`);
    const { ids, loss } = metadata(path);
    const expected = await readTrace(await fileSource(path));
    const model = await loadModelFromFolder(join(ROOT, dir), { dtype: "f32" });
    try {
      const ours = lossAndGradients(model, ids);
      expect(Math.abs(ours.loss - loss) / loss).toBeLessThan(1e-6);
      expect([...ours.grads.keys()].sort()).toEqual(Object.keys(expected).sort());
      const rows = Object.entries(expected).map(([tensor, { data }]) => {
        const g = ours.grads.get(tensor)!;
        let err = 0, scale = 0;
        for (let i = 0; i < data.length; i++) {
          err = Math.max(err, Math.abs(g[i]! - data[i]!));
          scale = Math.max(scale, Math.abs(data[i]!));
        }
        return { tensor, maxAbs: scale, relError: err / scale };
      });
      console.log(`${name}: loss ${ours.loss.toFixed(6)} (PyTorch ${loss.toFixed(6)}); worst gradient ${rows.reduce((a, r) => (r.relError > a.relError ? r : a)).tensor} at ${Math.max(...rows.map((r) => r.relError)).toExponential(2)} of its largest value`);
      for (const r of rows) {
        expect(r.maxAbs, r.tensor).toBeGreaterThan(0); // every weight gets some gradient
        expect(r.relError, r.tensor).toBeLessThan(1e-5);
      }
    } finally {
      await model.kernels.close();
    }
  });

  it("says what it cannot train: 16-bit or quantized weights, and a sequence of one token", async () => {
    const model = await loadModelFromFolder(join(ROOT, "ref/oracle/elm-tiny-gqa"), { dtype: "bf16" });
    try {
      expect(() => lossAndGradients(model, [1, 5, 9])).toThrow(/training needs f32 weights, and this model holds bf16/);
      expect(() => lossAndGradients(model, [1])).toThrow(/a sequence of 1 token\(s\) predicts nothing/);
    } finally {
      await model.kernels.close();
    }
  });
});
