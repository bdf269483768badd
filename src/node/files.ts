// ModelFiles over a folder on disk (Node only). Every name must resolve inside the folder: links are
// followed and their targets checked, so a Hugging Face cache snapshot (links into ../../blobs/) loads,
// and an index naming ../../etc/passwd, or a link to it, does not.
import { open, realpath, rename, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, sep } from "node:path";
import { unsafeName, type ByteSource, type ModelFiles } from "../files.js";

export class FolderError extends Error {
  override name = "FolderError";
}

/** Folders a model folder's files may lead into: itself, and in the Hugging Face cache layout its blobs. */
async function allowedRoots(dir: string): Promise<string[]> {
  const real = await realpath(dir);
  if (basename(dirname(real)) !== "snapshots") return [real];
  const blobs = await realpath(join(real, "..", "..", "blobs")).catch(() => undefined);
  return blobs ? [real, blobs] : [real];
}

/** A model folder on disk as `ModelFiles`; names and links are checked to stay inside the folder. */
export async function folderFiles(dir: string): Promise<ModelFiles> {
  const s = await stat(dir).catch(() => undefined);
  if (!s) throw new FolderError(`model folder ${dir} does not exist`);
  if (!s.isDirectory()) throw new FolderError(`${dir} is not a folder (--model takes a Hugging Face model folder)`);
  const roots = await allowedRoots(dir);
  const inside = (p: string) => roots.some((r) => p === r || p.startsWith(r.endsWith(sep) ? r : r + sep));
  return {
    location: dir,
    async open(name): Promise<ByteSource | undefined> {
      const why = unsafeName(name);
      if (why) throw new FolderError(`${JSON.stringify(name)} ${why}: files are named relative to the model folder ${dir}`);
      const target = await realpath(join(dir, name)).catch(() => undefined);
      if (target === undefined) return undefined;
      if (!inside(target)) throw new FolderError(`${name} in ${dir} leads to ${target}, outside the model folder`);
      const st = await stat(target);
      return st.isFile() ? fileSource(target, name, st.size) : undefined;
    },
  };
}

/** A ByteSource over one file on disk, named `name` in messages. */
export async function fileSource(path: string, name = path, size?: number): Promise<ByteSource> {
  size ??= (await stat(path)).size;
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

/** Replace DIR/NAME whole: written beside it, then renamed, so that a stopped run never leaves half a file. */
export async function replaceFile(dir: string, name: string, data: string | Uint8Array): Promise<void> {
  await writeFile(join(dir, `${name}.part`), data);
  await rename(join(dir, `${name}.part`), join(dir, name));
}
