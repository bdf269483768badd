// `openelm convert`: a model folder (or a GGUF file) written as a GGUF file that llama.cpp runs, or a model
// folder written again as a Hugging Face folder in another float type (with --adapter: an adapter merged in,
// as peft's merge_and_unload does).
import { createWriteStream } from "node:fs";
import { copyFile, mkdir, open, readFile, stat, writeFile } from "node:fs/promises";
import { once } from "node:events";
import { join } from "node:path";
import { FLOAT_TYPES, WEIGHT_TYPES, tensorBytes, type FloatType, type WeightType } from "../../dtype.js";
import { convertRows } from "../../formats/blocks.js";
import { safetensorsHeader } from "../../formats/safetensors.js";
import { ggufFile } from "../../formats/gguf-export.js";
import { readCheckpointAt } from "../index.js";
import { DEMO_MODEL, UsageError, adapterFolder, parse, progressBar } from "./args.js";
import { mergeAdapter, readAdapter } from "../../formats/peft.js";

export const HELP = {
  convert: `openelm convert [--model DIR|FILE.gguf] --out FILE.gguf [--type f32|f16|bf16|q8_0|q4_0|q4_k|q5_k|q6_k|q4_k_m] [--adapter DIR]
  openelm convert --model DIR --format safetensors --out DIR [--type f32|f16|bf16] [--adapter DIR]
  Write the model as GGUF in llama.cpp's openelm layout (metadata, tensor names, the tokenizer and chat
  template), every matrix in --type (default: f16; q8_0 and q4_0 quantize as llama.cpp's reference
  quantizers do; q4_k_m is llama-quantize's mix of Q4_K, Q5_K and Q6_K, with simpler scale choices),
  norm weights in f32. llama.cpp (llama-cli -m FILE.gguf) runs the result. --adapter merges a LoRA adapter
  (peft's layout) into the weights first. --format safetensors writes a Hugging Face folder instead
  (config.json, model.safetensors with the matrices in --type, default bf16, norm weights in f32, and the
  folder's tokenizer files), e.g. to store a checkpoint smaller or to merge an adapter for good.`,
};

export async function convert(args: string[]) {
  const v = parse(args, { out: { type: "string", short: "o" }, type: { type: "string" }, adapter: { type: "string" }, format: { type: "string" } });
  if (v.help) return console.log(HELP.convert);
  if (v.format !== undefined && v.format !== "gguf" && v.format !== "safetensors") throw new UsageError(`--format: "${v.format}" is not gguf or safetensors`);
  if (!v.out) throw new UsageError(`--out ${v.format === "safetensors" ? "DIR" : "FILE.gguf"} is required`);
  if (v.format === "safetensors") return toFolder(v.model ?? DEMO_MODEL, v.out, v.type ?? "bf16", v.adapter);
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

/** A Hugging Face folder in float type `type`: config.json (torch_dtype updated), model.safetensors, tokenizer files copied. */
async function toFolder(source: string, out: string, type: string, adapter?: string) {
  if (!(FLOAT_TYPES as readonly string[]).includes(type)) throw new UsageError(`--type: a safetensors folder holds ${FLOAT_TYPES.join(", ")}, not "${type}"`);
  if (!(await stat(join(source, "config.json")).then((s) => s.isFile(), () => false))) throw new UsageError(`--format safetensors converts a Hugging Face folder, and ${source} has no config.json`);
  const { config, tensors: stored } = await readCheckpointAt(source);
  const tensors = adapter === undefined ? stored : mergeAdapter(stored, await readAdapter(await adapterFolder(adapter), config), () => "f32");
  // the header first (every size is known from the shapes), then one tensor at a time: memory holds one tensor, not the model
  const plan = [...tensors].sort(([a], [b]) => a.localeCompare(b)).map(([name, e]) => {
    const dtype: FloatType = e.shape.length > 1 ? (type as FloatType) : "f32";
    return { name, e, dtype, shape: e.shape, bytes: tensorBytes(dtype, e.shape) };
  });
  await mkdir(out, { recursive: true });
  const raw = JSON.parse(await readFile(join(source, "config.json"), "utf8")) as Record<string, unknown>;
  await writeFile(join(out, "config.json"), JSON.stringify({ ...raw, torch_dtype: { f32: "float32", f16: "float16", bf16: "bfloat16" }[type as FloatType] }, null, 2) + "\n");
  const file = await open(join(out, "model.safetensors"), "w");
  let size = 0;
  try {
    const head = safetensorsHeader(plan, { format: "pt" });
    await file.write(head);
    size += head.byteLength;
    for (const { e, dtype, shape, bytes } of plan) {
      const k = shape[shape.length - 1]!, rows = shape.reduce((a, b) => a * b, 1) / k, src = new Uint8Array(e.bytes), data = new Uint8Array(bytes);
      await e.read(0, src);
      convertRows(src, e.dtype, data, dtype, rows, k);
      await file.write(data);
      size += bytes;
    }
  } finally {
    await file.close();
  }
  for (const f of ["tokenizer.json", "tokenizer_config.json", "generation_config.json"])
    if (await stat(join(source, f)).then((s) => s.isFile(), () => false)) await copyFile(join(source, f), join(out, f));
  console.log(`wrote ${out}: model.safetensors ${(size / 2 ** 20).toFixed(1)} MiB, ${config.numLayers} layers, matrices ${type}${adapter ? `, adapter ${adapter} merged` : ""}`);
}
