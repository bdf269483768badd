// ModelFiles over a folder on disk (Node only).
import { open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { ByteSource, ModelFiles } from "../files.js";

export class FolderError extends Error {
  override name = "FolderError";
}

export async function folderFiles(dir: string): Promise<ModelFiles> {
  const s = await stat(dir).catch(() => undefined);
  if (!s) throw new FolderError(`model folder ${dir} does not exist`);
  if (!s.isDirectory()) throw new FolderError(`${dir} is not a folder (--model takes a Hugging Face model folder)`);
  const exists = (p: string) => stat(p).then((st) => st.isFile(), () => false);
  return {
    location: dir,
    async text(name) {
      const p = join(dir, name);
      return (await exists(p)) ? readFile(p, "utf8") : undefined;
    },
    async open(name): Promise<ByteSource | undefined> {
      const p = join(dir, name);
      return (await exists(p)) ? fileSource(p, name) : undefined;
    },
  };
}

/** A ByteSource over one file on disk, named `name` in messages. */
export async function fileSource(path: string, name = path): Promise<ByteSource> {
  const size = (await stat(path)).size;
  return {
    name,
    size,
    async read(offset, into) {
      const fh = await open(path, "r");
      try {
        // Large reads go in pieces: one read call moves at most about 2 GiB.
        for (let done = 0; done < into.byteLength; ) {
          const n = Math.min(into.byteLength - done, 1 << 30);
          const { bytesRead } = await fh.read(into, done, n, offset + done);
          if (bytesRead === 0) throw new FolderError(`${name}: truncated: wanted ${into.byteLength} bytes at offset ${offset}, the file has ${size}`);
          done += bytesRead;
        }
      } finally {
        await fh.close();
      }
    },
  };
}
