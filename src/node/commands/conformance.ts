// The conformance commands other ports are held against (keep their forms stable), and `info`.
import { writeFile } from "node:fs/promises";
import { parameterCount } from "../../config.js";
import { encodeNpy } from "../../formats/npy.js";
import { DEMO_MODEL, MODEL_HELP, UsageError, loadModel, parse, parseIds } from "./args.js";

export const HELP = {
  logits: `openelm logits --model DIR --ids 1,5,9 --out FILE.npy
  Write the logits at every position of one full forward pass as float32 .npy, shape (ids, vocab).`,
  info: `openelm info [--model DIR]
  Print the derived architecture: per-layer heads and FFN widths, parameters, dtype, memory.`,
};

export async function logits(args: string[]) {
  const v = parse(args, { ids: { type: "string" }, out: { type: "string" } });
  if (v.help) return console.log(HELP.logits + "\n\n" + MODEL_HELP);
  const ids = parseIds(v.ids);
  if (!v.out) throw new UsageError("--out FILE.npy is required");
  const model = await loadModel(v);
  const out = model.forward(model.newCache(), ids, { allPositions: true });
  await writeFile(v.out, encodeNpy(out, [ids.length, model.config.vocabSize]));
}

export async function info(args: string[]) {
  const v = parse(args, {});
  if (v.help) return console.log(HELP.info + "\n\n" + MODEL_HELP);
  const model = await loadModel(v);
  const c = model.config, w = model.weights;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const dtypes = [...new Set([w.tokenEmbeddings, ...w.layers.flatMap((l) => [l.qkvProj, l.outProj, l.proj1, l.proj2])].map((t) => t.dtype))];
  const lines = [
    `model        ${v.model ?? DEMO_MODEL}`,
    `layers       ${c.numLayers}   model_dim ${c.modelDim}   head_dim ${c.headDim}   vocab ${c.vocabSize}   context ${c.maxContextLength}`,
    `attention    ${c.numGqaGroups === 1 ? "multi-head" : `grouped-query, ${c.numGqaGroups} query heads per kv head`}; QK-norm ${c.normalizeQk ? "yes" : "no"}; RoPE base ${c.ropeFreqConstant}`,
    `ffn          ${c.ffnWithGlu ? "gated (GLU)" : "plain"} ${c.activation}; embeddings ${c.shareInputOutput ? "shared with the output head" : "separate lm_head"}`,
    `parameters   ${parameterCount(c).toLocaleString("en-US")}`,
    `weights      ${dtypes.join(", ")} (norms f32)   kernels ${model.kernels.name}`,
    `memory       ${mib(model.arena.used)} in the arena (weights, activations, RoPE tables)`,
    ``,
    `layer  q_heads  kv_heads  ffn_mult  ffn_dim`,
    ...c.numQueryHeads.map((q, l) =>
      `${String(l).padStart(5)}  ${String(q).padStart(7)}  ${String(c.numKvHeads[l]).padStart(8)}  ${c.ffnMultipliers[l]!.toFixed(2).padStart(8)}  ${String(c.ffnDims[l]).padStart(7)}`),
  ];
  console.log(lines.join("\n"));
}

