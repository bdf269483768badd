// `openelm convert`: a model folder (or a GGUF file) written as a GGUF file that llama.cpp runs.
import { createWriteStream } from "node:fs";
import { once } from "node:events";
import { WEIGHT_TYPES, type WeightType } from "../../dtype.js";
import { ggufFile } from "../../formats/gguf-export.js";
import { readCheckpointAt } from "../index.js";
import { DEMO_MODEL, UsageError, adapterFolder, parse, progressBar } from "./args.js";
import { mergeAdapter, readAdapter } from "../../formats/peft.js";

export const HELP = {
  convert: `openelm convert [--model DIR|FILE.gguf] --out FILE.gguf [--type f32|f16|bf16|q8_0|q4_0|q4_k|q5_k|q6_k|q4_k_m] [--adapter DIR]
  Write the model as GGUF in llama.cpp's openelm layout (metadata, tensor names, the tokenizer and chat
  template), every matrix in --type (default: f16; q8_0 and q4_0 quantize as llama.cpp's reference
  quantizers do; q4_k_m is llama-quantize's mix of Q4_K, Q5_K and Q6_K, with simpler scale choices),
  norm weights in f32. llama.cpp (llama-cli -m FILE.gguf) runs the result. --adapter merges a LoRA adapter
  (peft's layout) into the weights first.`,
};

export async function convert(args: string[]) {
  const v = parse(args, { out: { type: "string", short: "o" }, type: { type: "string" }, adapter: { type: "string" } });
  if (v.help) return console.log(HELP.convert);
  if (!v.out) throw new UsageError("--out FILE.gguf is required");
  const type = (v.type ?? "f16") as WeightType;
  if (!WEIGHT_TYPES.includes(type)) throw new UsageError(`--type: "${v.type}" is not one of ${WEIGHT_TYPES.join(", ")}`);
  const source = v.model ?? DEMO_MODEL;
  const { config, tensors: stored, tokenizer, chatTemplate } = await readCheckpointAt(source);
  const tensors = v.adapter === undefined ? stored : mergeAdapter(stored, await readAdapter(await adapterFolder(v.adapter), config), () => "f32");
  const out = createWriteStream(v.out);
  const failed = once(out, "error").then(([e]) => {
    throw new UsageError(`cannot write ${v.out}: ${(e as Error).message}`);
  });
  const total = [...tensors.values()].reduce((a, t) => a + t.bytes, 0), progress = progressBar("converting", (b) => `${(b / 2 ** 20).toFixed(0)} MiB`);
  let written = 0, read = 0;
  const write = async () => {
    for await (const chunk of ggufFile(config, tensors, { type, tokenizer, chatTemplate, name: source.split("/").filter(Boolean).pop() })) {
      written += chunk.length;
      read = Math.min(total, read + chunk.length);
      if (!out.write(chunk)) await once(out, "drain");
      progress?.(read, total);
    }
    out.end();
    await once(out, "finish");
  };
  await Promise.race([write(), failed]);
  console.log(`wrote ${v.out}: ${(written / 2 ** 20).toFixed(1)} MiB, ${config.numLayers} layers, matrices ${type}`);
}
