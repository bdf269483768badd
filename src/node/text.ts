// Text files of any size, read as a stream in bounded memory: for perplexity, pieces cut where the
// tokenizer never merges across (after a newline; in a longer line, before a space between words), so
// that encoding the pieces one after another (Tokenizer.encodeContinuation) gives the ids of the whole
// text (only a stretch of 4 × `pieceBytes` without a newline or a single space between words is cut
// anywhere); for task data, lines.
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";

export class TextFileError extends Error {
  override name = "TextFileError";
}

interface Progress {
  bytesRead: number;
  size: number;
}

/** The file as UTF-8 text in chunks of about `chunkBytes`; the last chunk is flagged. */
async function* decodedChunks(path: string, chunkBytes: number): AsyncGenerator<Progress & { text: string; last: boolean }> {
  const size = await stat(path).then((s) => s.size, (e: NodeJS.ErrnoException) => {
    throw new TextFileError(`cannot read ${path}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
  });
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let bytesRead = 0;
  const decode = (chunk?: Buffer) => {
    try {
      return chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
    } catch {
      throw new TextFileError(`${path}: not UTF-8 text (near byte ${bytesRead})`);
    }
  };
  for await (const chunk of createReadStream(path, { highWaterMark: chunkBytes })) {
    bytesRead += (chunk as Buffer).length;
    yield { text: decode(chunk as Buffer), bytesRead, size, last: false };
  }
  yield { text: decode(), bytesRead, size, last: true };
}

/** Where to end a piece of `text`: after its last newline, else before its last space between words, else nowhere (-1). */
function cutPoint(text: string): number {
  const newline = text.lastIndexOf("\n");
  if (newline >= 0) return newline + 1;
  for (let i = text.length - 2; i > 0; i--) if (text[i] === " " && text[i - 1] !== " " && text[i + 1] !== " ") return i;
  return -1;
}

/** The file's text in pieces of about `pieceBytes` (at most 5 ×), with progress. */
export async function* textPieces(path: string, pieceBytes = 1 << 20): AsyncGenerator<Progress & { text: string }> {
  let carry = "";
  for await (const { text, bytesRead, size, last } of decodedChunks(path, pieceBytes)) {
    carry += text;
    const cut = last ? carry.length : cutPoint(carry);
    if (cut < 0 && carry.length < 4 * pieceBytes) continue; // wait for a place to cut
    const end = cut < 0 ? carry.length : cut;
    yield { text: carry.slice(0, end), bytesRead, size };
    carry = carry.slice(end);
  }
}

/** The file's lines (numbered from 1, without their newline), each at most `maxLineBytes` long. */
export async function* textLines(path: string, maxLineBytes = 16 << 20): AsyncGenerator<Progress & { line: string; number: number }> {
  let carry = "", number = 0;
  for await (const { text, bytesRead, size, last } of decodedChunks(path, 1 << 20)) {
    const lines = (carry + text).split("\n");
    carry = last ? "" : lines.pop()!;
    if (carry.length > maxLineBytes) throw new TextFileError(`${path} line ${number + lines.length + 1}: longer than ${maxLineBytes >> 20} MiB`);
    for (const line of lines) yield { line: line.endsWith("\r") ? line.slice(0, -1) : line, number: ++number, bytesRead, size };
  }
}
