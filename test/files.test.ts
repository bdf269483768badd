// Model folders on disk: every file a folder names must resolve inside it. Links are followed and their
// targets checked, so the Hugging Face cache layout loads and links or index entries leading out do not.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readText } from "../src/files.js";
import { folderFiles, loadModelFromFolder } from "../src/node/index.js";
import { ORACLE } from "./helpers/oracle.js";

const tmp = mkdtempSync(join(tmpdir(), "openelm-files-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of the sharded oracle model whose index maps every tensor of shard 2 to `shard2`. */
function shardedWith(shard2: string): string {
  const dir = mkdtempSync(join(tmp, "sharded-"));
  cpSync(join(ORACLE, "elm-tiny-bf16-sharded"), dir, { recursive: true });
  const index = JSON.parse(readFileSync(join(dir, "model.safetensors.index.json"), "utf8"));
  for (const [t, f] of Object.entries(index.weight_map)) if (f === "model-00002-of-00002.safetensors") index.weight_map[t] = shard2;
  writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify(index));
  return dir;
}

describe("paths stay inside the model folder", () => {
  it("an index naming a shard outside the folder is refused, naming the entry", async () => {
    const dir = shardedWith("../model-00002-of-00002.safetensors");
    await expect(loadModelFromFolder(dir, { kernels: "typescript" })).rejects.toThrow(/weight_map\["transformer\.[^"]+"\] names "\.\.\/model-00002-of-00002\.safetensors", which leaves the folder/);
    await expect(loadModelFromFolder(shardedWith("/etc/passwd"), { kernels: "typescript" })).rejects.toThrow(/names "\/etc\/passwd", which is an absolute path/);
  });

  it("a link inside the folder that leads out of it is refused, and no byte of its target is quoted", async () => {
    const dir = shardedWith("model-00002-of-00002.safetensors");
    rmSync(join(dir, "model-00002-of-00002.safetensors"));
    symlinkSync("/etc/passwd", join(dir, "model-00002-of-00002.safetensors"));
    const error = await loadModelFromFolder(dir, { kernels: "typescript" }).then(() => undefined, (e: Error) => e);
    expect(error?.message).toMatch(/model-00002-of-00002\.safetensors in .* leads to \/etc\/passwd, outside the model folder/);
    expect(error?.message).not.toMatch(/root/);
    const files = await folderFiles(dir);
    await expect(files.open("model-00002-of-00002.safetensors")).rejects.toThrow(/outside the model folder/);
  });

  it("links within the folder are followed", async () => {
    const dir = shardedWith("model-00002-of-00002.safetensors");
    mkdirSync(join(dir, "data"));
    renameSync(join(dir, "model-00002-of-00002.safetensors"), join(dir, "data/shard2"));
    symlinkSync("data/shard2", join(dir, "model-00002-of-00002.safetensors"));
    const model = await loadModelFromFolder(dir, { kernels: "typescript" });
    expect(model.forward(model.newCache(), [1, 2, 3]).every(Number.isFinite)).toBe(true);
  });

  it("the Hugging Face cache layout (snapshots/REV/file → ../../blobs/HASH) loads; a link into another repository's blobs does not", async () => {
    const repo = join(tmp, "hub/models--apple--OpenELM-tiny"), snap = join(repo, "snapshots/0123abc");
    mkdirSync(join(repo, "blobs"), { recursive: true });
    mkdirSync(snap, { recursive: true });
    for (const [i, name] of ["config.json", "model.safetensors"].entries()) {
      cpSync(join(ORACLE, "elm-tiny-gqa", name), join(repo, "blobs", `hash${i}`));
      symlinkSync(`../../blobs/hash${i}`, join(snap, name));
    }
    const model = await loadModelFromFolder(snap, { kernels: "typescript" });
    expect(model.config.numLayers).toBe(4);

    const other = join(tmp, "hub/models--someone--else/blobs");
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, "secret"), "{}");
    symlinkSync("../../../models--someone--else/blobs/secret", join(snap, "tokenizer_config.json"));
    await expect(readText(await folderFiles(snap), "tokenizer_config.json")).rejects.toThrow(/leads to .*models--someone--else\/blobs\/secret, outside the model folder/);
  });

  it("small files are size-checked before they are read", async () => {
    const dir = mkdtempSync(join(tmp, "big-"));
    writeFileSync(join(dir, "config.json"), " ".repeat((1 << 20) + 1));
    await expect(loadModelFromFolder(dir)).rejects.toThrow("config.json: 1,048,577 bytes, more than the 1 MiB such a file may have");
  });
});
