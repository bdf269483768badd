// Chat data for fine-tuning: conversations from a JSONL file in the OpenAI chat format, checked field by
// field, rendered with the chat template into token ids with a mask of the tokens the model learns to
// produce (each assistant reply and the end-of-sequence token after it). Core code (no Node built-ins).
import { renderChat, type ChatMessage } from "../generation/chat.js";
import type { Tokenizer } from "../tokenizer.js";

/** A chat file or conversation that cannot be used, with the file, line and field it concerns. */
export class ChatDataError extends Error {
  override name = "ChatDataError";
  /** Set when the only fault is that no learnt token falls within maxTokens (a caller may skip such examples). */
  constructor(message: string, readonly truncated = false) {
    super(message);
  }
}

/** A message of a training conversation: OpenAI's fine-tuning format may mark an assistant reply "weight": 0, not to be learnt. */
export interface TrainingMessage extends ChatMessage {
  weight?: 0 | 1;
}

/** What a chat file may hold, so that a hostile one cannot exhaust memory: lines, and UTF-8 bytes per line. */
export const CHAT_FILE_LIMITS = { lines: 1_000_000, lineBytes: 1 << 20 };

const ROLES: readonly string[] = ["system", "user", "assistant"];
const utf8 = new TextEncoder();

/** A JSON value named briefly in an error: a string quoted (its first 40 characters), anything else by kind. */
function shown(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (value === null || typeof value !== "object") return String(value);
  return Array.isArray(value) ? "an array" : "an object";
}

/** Whether `line` is over CHAT_FILE_LIMITS.lineBytes in UTF-8 (at most 3 bytes per UTF-16 unit: encoded only when it could be). */
function tooLong(line: string): boolean {
  const limit = CHAT_FILE_LIMITS.lineBytes;
  return line.length > limit || (line.length * 3 > limit && utf8.encode(line).length > limit);
}

/** The messages of one line of a chat file; `where` names it ("FILE line N") in errors. */
function parseLine(line: string, where: string): TrainingMessage[] {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    // V8 says what is wrong, then may quote the line: keep what is wrong and the column
    const message = (e as Error).message, at = /at position (\d+)/.exec(message);
    const reason = message.split(/,| in JSON| at position/)[0]!.slice(0, 80);
    throw new ChatDataError(`${where}: not valid JSON (${reason}${at ? ` at column ${Number(at[1]) + 1}` : ""})`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new ChatDataError(`${where}: expected a JSON object with "messages", got ${shown(value)}`);
  const messages = (value as { messages?: unknown }).messages;
  if (!Array.isArray(messages)) throw new ChatDataError(`${where}: "messages" must be an array of {"role", "content"} objects, got ${shown(messages)}`);
  if (messages.length === 0) throw new ChatDataError(`${where}: "messages" is empty`);
  const conversation = messages.map((message: unknown, i): TrainingMessage => {
    if (message === null || typeof message !== "object" || Array.isArray(message))
      throw new ChatDataError(`${where}: "messages[${i}]" must be an object with "role" and "content", got ${shown(message)}`);
    const { role, content, weight } = message as { role?: unknown; content?: unknown; weight?: unknown };
    if (typeof role !== "string" || !ROLES.includes(role))
      throw new ChatDataError(`${where}: "messages[${i}].role" must be "system", "user" or "assistant", got ${shown(role)}`);
    if (typeof content !== "string") throw new ChatDataError(`${where}: "messages[${i}].content" must be a string, got ${shown(content)}`);
    if (weight === undefined) return { role: role as ChatMessage["role"], content };
    if (weight !== 0 && weight !== 1) throw new ChatDataError(`${where}: "messages[${i}].weight" must be 0 or 1, got ${shown(weight)}`);
    if (role !== "assistant") throw new ChatDataError(`${where}: "messages[${i}].weight" is for assistant messages, and this one is ${role}'s`);
    return { role, content, weight };
  });
  if (!conversation.some((m) => m.role === "assistant")) throw new ChatDataError(`${where}: "messages" has no assistant message, so there is nothing to learn from it`);
  if (!conversation.some((m) => m.role === "assistant" && m.weight !== 0)) throw new ChatDataError(`${where}: every assistant message has "weight": 0, so there is nothing to learn from it`);
  return conversation;
}

/**
 * The conversations of a chat file (`text`, the contents of `file`): one per non-blank line, each line a
 * JSON object whose "messages" is an array of {"role": "system" | "user" | "assistant", "content": string},
 * with at least one assistant message to learn. An assistant message may carry OpenAI's "weight": 0 (kept
 * in the context, not learnt) or 1. Other fields, on a line or a message, are ignored; so are blank
 * lines and a BOM. Anything else is a ChatDataError naming the file, the line and the field. A file with
 * no conversation gives []. At most CHAT_FILE_LIMITS.lines lines of CHAT_FILE_LIMITS.lineBytes each.
 */
export function parseChatJsonl(text: string, file: string): TrainingMessage[][] {
  const conversations: TrainingMessage[][] = [];
  const { lines, lineBytes } = CHAT_FILE_LIMITS;
  let start = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (let n = 1; start < text.length; n++) {
    if (n > lines) throw new ChatDataError(`${file}: more than ${lines.toLocaleString("en-US")} lines, the most a chat file may have (split it)`);
    const newline = text.indexOf("\n", start), end = newline < 0 ? text.length : newline;
    const line = text.slice(start, end);
    start = end + 1;
    if (tooLong(line)) throw new ChatDataError(`${file} line ${n}: longer than ${lineBytes >> 20} MiB, the most a line of a chat file may have`);
    if (line.trim() !== "") conversations.push(parseLine(line, `${file} line ${n}`));
  }
  return conversations;
}

/** Token ids of a conversation and which of them the model learns to predict. */
export interface ChatExample {
  ids: number[];
  /** mask[j] (j ≥ 1): whether predicting ids[j] from ids[0 .. j − 1] counts in the loss; mask[0] is false. */
  mask: boolean[];
}

/** The end-of-sequence token as renderChat gives it to the template (its default eos_token). */
const EOS = "</s>";

/**
 * A conversation as a training example: rendered with the chat template (default OpenELM-Instruct's,
 * without a generation prompt) and tokenized, BOS first, with the mask true on exactly the tokens of each
 * assistant reply (but those marked "weight": 0), from the end of its generation prompt ("<|assistant|>\n") through the template's last
 * "</s>" in that turn: what the model must produce when prompted with the conversation before it. What
 * the template puts after that "</s>" (a newline) is never generated, so it is not learnt.
 *
 * The turns are found by rendering prefixes of the conversation, and tokenized one after another: after a
 * newline with Tokenizer.encodeContinuation, otherwise (after "</s>", a special token that splits the
 * text) with encode(…, false). The ids are then checked against tokenizing the rendered text in one go,
 * so they are always those; a template and tokenizer that merge a token across a turn boundary (the
 * bundled Llama-2 tokenizer with the OpenELM template never does) give a ChatDataError.
 *
 * `maxTokens` keeps the first maxTokens ids and mask entries (messages past them are not rendered).
 * Errors name the message ("messages[2]: …"); the caller adds the file and line. An example without any
 * learnt token (after truncation) is a ChatDataError, for the caller to skip or report; a template that
 * fails (e.g. raise_exception) throws its TemplateError.
 */
export function renderExample(messages: TrainingMessage[], tokenizer: Tokenizer, opts: { template?: string; maxTokens?: number } = {}): ChatExample {
  const maxTokens = opts.maxTokens ?? Infinity;
  if (!(maxTokens === Infinity || (Number.isInteger(maxTokens) && maxTokens >= 1))) throw new RangeError(`maxTokens must be an integer ≥ 1, got ${maxTokens}`);
  const render = (count: number, addGenerationPrompt: boolean) => renderChat(messages.slice(0, count), { template: opts.template, addGenerationPrompt });
  const ids: number[] = [], mask: boolean[] = [];
  let text = "";
  /** Append the tokens of `piece`, the text that follows `text`, all learnt or none. */
  const push = (piece: string, learnt: boolean) => {
    if (piece === "") return;
    const pieceIds = text === "" ? tokenizer.encode(piece) : text.endsWith("\n") ? tokenizer.encodeContinuation(piece) : tokenizer.encode(piece, false);
    for (const id of pieceIds) ids.push(id), mask.push(learnt);
    text += piece;
  };
  const notIncremental = (i: number) =>
    new ChatDataError(`messages[${i}]: the chat template does not render conversations incrementally (the rendering up to this message does not extend the one before it), so the turns cannot be told apart`);

  let rendered = 0;
  for (; rendered < messages.length && ids.length < maxTokens; rendered++) {
    const i = rendered, next = render(i + 1, false);
    if (!next.startsWith(text)) throw notIncremental(i);
    if (messages[i]!.role !== "assistant") {
      push(next.slice(text.length), false);
      continue;
    }
    const prompted = render(i, true);
    if (!prompted.startsWith(text) || !next.startsWith(prompted)) throw notIncremental(i);
    // a reply always follows a prompt, so the first piece is never learnt and mask[0] (BOS) is false
    if (prompted === text) throw new ChatDataError(`messages[${i}]: the chat template puts no generation prompt before this assistant message (it needs a system or user message before it)`);
    const reply = next.slice(prompted.length), eos = reply.lastIndexOf(EOS), end = eos < 0 ? reply.length : eos + EOS.length;
    push(prompted.slice(text.length), false);
    push(reply.slice(0, end), messages[i]!.weight !== 0);
    push(reply.slice(end), false);
  }

  const whole = tokenizer.encode(text), differ = whole.findIndex((id, j) => id !== ids[j]);
  if (differ >= 0 || whole.length !== ids.length)
    throw new ChatDataError(`the conversation's turns tokenized one by one differ from the whole text tokenized at once (from token ${differ >= 0 ? differ : Math.min(whole.length, ids.length)}): the chat template joins turns where the tokenizer merges across`);
  const example = { ids: ids.slice(0, maxTokens), mask: mask.slice(0, maxTokens) };
  if (!example.mask.includes(true)) {
    const truncated = rendered < messages.length || ids.length > maxTokens;
    throw new ChatDataError(`no assistant token${truncated ? ` within the first ${maxTokens} tokens (maxTokens)` : ""}, so there is nothing to learn from the conversation`, truncated);
  }
  return example;
}
