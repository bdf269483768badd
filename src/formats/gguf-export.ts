// Writing an OpenELM checkpoint as a GGUF file that llama.cpp loads: the converter's metadata and tensor
// names (gguf-model.ts), the tokenizer as tokenizer.ggml.* (gguf-tokenizer.ts), the matrices in one storage
// type and the norm weights in F32 (as llama.cpp keeps them). The file is produced in pieces, tensor by
// tensor, so a model of any size is converted in little memory.
import type { OpenELMConfig } from "../config.js";
import { WEIGHT_TYPES, isQuantized, rowBytes, type DType, type WeightType } from "../dtype.js";
import { convertRows } from "./blocks.js";
import { encodeGGUFHeader, type TensorToWrite } from "./gguf.js";
import { ggufMetadata, ggufTensors } from "./gguf-model.js";
import { ggufTokenizer } from "./gguf-tokenizer.js";
import type { TensorEntry } from "./safetensors.js";
import { expectedTensors, placement } from "../weights.js";

/** llama.cpp's llama_ftype of each storage choice (all K-quant matrices in one type: its _S variants). */
const FILE_TYPE: Record<WeightType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, q4_k: 14, q4_k_m: 15, q5_k: 16, q6_k: 18, bf16: 32 };

/** What `ggufFile` writes besides the tensors: the weights' type, the tokenizer, the chat template and a model name. */
export interface ExportOptions {
  type: WeightType;
  /** The model's tokenizer.json (Llama-2 BPE). */
  tokenizer: Record<string, unknown>;
  chatTemplate?: string;
  name?: string;
}

/** The bytes of a GGUF file of the checkpoint, in order: the header, then every tensor padded to 32 bytes. */
export async function* ggufFile(config: OpenELMConfig, tensors: Map<string, TensorEntry>, opts: ExportOptions): AsyncGenerator<Uint8Array> {
  const fileType = FILE_TYPE[opts.type];
  if (fileType === undefined) throw new RangeError(`--type ${opts.type}: GGUF export writes ${WEIGHT_TYPES.join(", ")}`);
  const typeOf = placement(config, opts.type);
  // every tensor the config implies, in the converter's order, each with the type it is written in
  const plan = [...expectedTensors(config).keys()].map((name) => {
    const entry = tensors.get(name);
    if (!entry) throw new RangeError(`the checkpoint has no ${name}`);
    const k = entry.shape[entry.shape.length - 1]!;
    const type: DType = entry.shape.length === 1 ? "f32" : typeOf(name, entry.shape);
    if (rowBytes(type, k) === undefined) throw new RangeError(`tensor ${entry.name} has rows of ${k} values, not a whole number of ${type} blocks; export as f16 or bf16`);
    if (isQuantized(entry.dtype) && entry.dtype !== type) throw new RangeError(`tensor ${entry.name} is ${entry.dtype}; converting it to ${type} would quantize twice`);
    return { entry, type, parts: ggufTensors(entry.name, entry.shape, type) };
  });
  const written: TensorToWrite[] = plan.flatMap((p) => p.parts);
  const metadata = [...ggufMetadata(config, fileType, opts.name ?? "OpenELM"), ...ggufTokenizer(opts.tokenizer, { bos: config.bosTokenId, eos: config.eosTokenId }, config.vocabSize, opts.chatTemplate)];
  const { header, offsets } = encodeGGUFHeader(metadata, written, 32);
  yield header;
  let at = header.length, i = 0;
  for (const { entry, type, parts } of plan) {
    const k = entry.shape[entry.shape.length - 1]!, rows = entry.shape.length === 1 ? 1 : entry.shape[0]!;
    const inRow = rowBytes(entry.dtype, k)!, outRow = rowBytes(type, k)!, per = Math.max(1, Math.floor((4 << 20) / Math.max(inRow, outRow)));
    const rowsPerPart = rows / parts.length;
    for (const part of parts) {
      // padding up to this tensor's offset, then its rows converted a few at a time
      if (offsets[i]! > at) yield new Uint8Array(offsets[i]! - at);
      const first = (i - written.indexOf(parts[0]!)) * rowsPerPart;
      for (let r = 0; r < rowsPerPart; r += per) {
        const n = Math.min(per, rowsPerPart - r), src = new Uint8Array(n * inRow), dst = new Uint8Array(n * outRow);
        await entry.read((first + r) * inRow, src);
        convertRows(src, entry.dtype, dst, type, n, k);
        yield dst;
      }
      at = offsets[i]! + part.bytes;
      i++;
    }
  }
}
