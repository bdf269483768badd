// Model files the user hands a page: a File or Blob, the files of a picked or dropped folder, or a
// directory handle. Each read slices the Blob, which works past 2 GB and keeps no copy of the file.
import { FileError, unsafeName, type ByteSource, type ModelFiles } from "../files.js";

/** Bytes read from a Blob at a time: a read of a whole large tensor takes no more memory than this besides its target. */
const PIECE = 16 << 20;

/** A ByteSource over a File or Blob, read by slices (works past 2 GB). */
export function blobSource(blob: Blob, name: string): ByteSource {
  return {
    name,
    size: blob.size,
    async read(offset, into) {
      const end = offset + into.byteLength;
      if (!Number.isSafeInteger(offset) || offset < 0 || end > blob.size)
        throw new FileError(`${name}: truncated: wanted ${into.byteLength} bytes at offset ${offset}, the file has ${blob.size}`);
      for (let at = offset; at < end; ) {
        const n = Math.min(PIECE, end - at);
        let bytes: ArrayBuffer;
        try {
          bytes = await blob.slice(at, at + n).arrayBuffer();
        } catch (e) {
          // browsers refuse to read a File that changed on disk after it was chosen
          throw new FileError(`${name}: cannot read bytes ${at}-${at + n - 1}: ${(e as Error).message} (was the file changed or moved?)`);
        }
        if (bytes.byteLength !== n) throw new FileError(`${name}: bytes ${at}-${at + n - 1} gave ${bytes.byteLength} bytes (was the file changed?)`);
        into.set(new Uint8Array(bytes), at - offset);
        at += n;
      }
    },
  };
}

const checked = (name: string, where: string) => {
  const why = unsafeName(name);
  if (why) throw new FileError(`${JSON.stringify(name)} ${why}: files are named relative to the model folder ${where}`);
};

/**
 * The files of a picked (`<input type=file webkitdirectory>`) or dropped folder. A file is named by its
 * path inside the folder: webkitRelativePath without its first segment (the folder), else its name.
 */
export function fileListFiles(files: FileList | Iterable<File>, location?: string): ModelFiles {
  const byName = new Map<string, File>();
  let folder: string | undefined;
  for (const f of Array.from(files as ArrayLike<File>)) {
    const path = f.webkitRelativePath ?? "", cut = path.indexOf("/");
    const name = cut < 0 ? f.name : path.slice(cut + 1);
    folder ??= cut < 0 ? undefined : path.slice(0, cut);
    if (byName.has(name)) throw new FileError(`two of the chosen files are named ${name}: choose one model folder`);
    byName.set(name, f);
  }
  const where = location ?? folder ?? "the chosen files";
  return {
    location: where,
    async open(name) {
      checked(name, where);
      const f = byName.get(name);
      return f && blobSource(f, name);
    },
  };
}

/** A model folder given as a directory handle (showDirectoryPicker, a dropped folder's getAsFileSystemHandle, OPFS). */
export function directoryFiles(dir: FileSystemDirectoryHandle): ModelFiles {
  return {
    location: dir.name,
    async open(name) {
      checked(name, dir.name);
      const parts = name.split("/");
      let file: File;
      try {
        let d = dir;
        for (const p of parts.slice(0, -1)) d = await d.getDirectoryHandle(p);
        file = await (await d.getFileHandle(parts[parts.length - 1]!)).getFile();
      } catch (e) {
        const why = (e as Error).name;
        if (why === "NotFoundError" || why === "TypeMismatchError") return undefined; // no such file, or a folder of that name
        throw new FileError(`${dir.name}/${name}: ${(e as Error).message}`);
      }
      return blobSource(file, name);
    },
  };
}
