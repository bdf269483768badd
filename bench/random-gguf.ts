// A released shape with random weights as a GGUF file, for benchmarks that run other processes on a file
// (speed does not depend on the values). Written once per shape and type, kept in the temp folder.
import { createWriteStream, existsSync, mkdirSync, renameSync } from "node:fs";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PRESETS, ggufFile, parseConfig, randomCheckpoint, type WeightType } from "openelm";
import { bundledTokenizer } from "openelm/node";

const CACHE = join(tmpdir(), "openelm-bench-peers");

/** The path of OpenELM-`shape` with random weights stored as `type`, written if it is not there yet. */
export async function randomGGUF(shape: string, type: WeightType): Promise<string> {
  const path = join(CACHE, `${shape}-${type}.gguf`);
  if (existsSync(path)) return path;
  mkdirSync(CACHE, { recursive: true });
  process.stderr.write(`writing ${path} ... `);
  const config = parseConfig(PRESETS[shape]!), out = createWriteStream(`${path}.part`);
  for await (const chunk of ggufFile(config, randomCheckpoint(config), { type, tokenizer: (await bundledTokenizer()) as Record<string, unknown>, name: `OpenELM-${shape} (random weights)` }))
    if (!out.write(chunk)) await once(out, "drain");
  out.end();
  await once(out, "finish");
  renameSync(`${path}.part`, path);
  process.stderr.write("done\n");
  return path;
}
