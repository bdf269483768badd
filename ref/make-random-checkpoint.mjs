// Writes an OpenELM checkpoint folder with random weights and the exact shapes of a released size (or of
// any config.json), to test loading and memory at real sizes without the real weights.
// Usage: node ref/make-random-checkpoint.mjs 270M|450M|1_1B|3B|path/to/config.json OUT_DIR [f32|f16|bf16]
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { PRESETS, parseConfig } from "../dist/config.js";
import { expectedTensors } from "../dist/weights.js";
import { convert, BYTES } from "../dist/dtype.js";
import { seededRandom } from "../dist/generation/sampler.js";

const [shape, out, dtype = "f32"] = process.argv.slice(2);
if (!shape || !out || !BYTES[dtype]) throw new Error("usage: node ref/make-random-checkpoint.mjs SHAPE OUT_DIR [f32|f16|bf16]");
const raw = PRESETS[shape] ?? JSON.parse(readFileSync(shape, "utf8"));
const config = parseConfig(raw);
const tensors = [...expectedTensors(config)];

const header = {};
let offset = 0;
for (const [name, dims] of tensors) {
  const bytes = dims.reduce((a, b) => a * b, 1) * BYTES[dtype];
  header[name] = { dtype: dtype.toUpperCase(), shape: dims, data_offsets: [offset, offset + bytes] };
  offset += bytes;
}
let json = JSON.stringify({ __metadata__: { format: "pt" }, ...header });
json += " ".repeat((8 - ((8 + json.length) % 8)) % 8);
mkdirSync(out, { recursive: true });
const fd = openSync(join(out, "model.safetensors"), "w");
const len = Buffer.alloc(8);
len.writeBigUInt64LE(BigInt(json.length));
writeSync(fd, len);
writeSync(fd, json);

// Uniform values scaled like a trained model's (std about 0.02 for matrices, around 1 for norms).
const random = seededRandom(42);
const chunk = new Float32Array(1 << 20), converted = new Uint8Array(chunk.length * BYTES[dtype]);
for (const [, dims] of tensors) {
  const count = dims.reduce((a, b) => a * b, 1), isNorm = dims.length === 1;
  for (let i = 0; i < count; i += chunk.length) {
    const n = Math.min(chunk.length, count - i);
    for (let j = 0; j < n; j++) chunk[j] = isNorm ? 0.5 + random() : (random() - 0.5) * 0.07;
    convert(new Uint8Array(chunk.buffer, 0, n * 4), "f32", converted, dtype, n);
    writeSync(fd, converted, 0, n * BYTES[dtype]);
  }
}
closeSync(fd);
writeFileSync(join(out, "config.json"), JSON.stringify({ ...raw, torch_dtype: { f32: "float32", f16: "float16", bf16: "bfloat16" }[dtype] }, null, 2));
console.log(`wrote ${out}: ${config.numLayers} layers, ${(offset / 2 ** 30).toFixed(2)} GiB of ${dtype} weights`);
