// The zero-shot tasks of the OpenELM paper, as lm-evaluation-harness builds them: each document becomes
// (context, continuation) pairs, one per answer choice, scored by log-likelihood. Documents are JSONL
// lines in the public field layout of each task's Hugging Face dataset.

/** One document's requests: choice i is scored as log P(continuations[i] | contexts[i]). */
export interface Request {
  contexts: string[];
  continuations: string[];
  /** The choice strings whose length acc_norm divides by (the harness's doc_to_choice). */
  choices: string[];
  gold: number;
}

type Doc = Record<string, unknown>;

export class TaskDataError extends Error {
  override name = "TaskDataError";
}

/** A benchmark task: how its documents look and how each becomes a request. */
export interface Task {
  /** Fields a document must have, with a check of each. */
  fields: Record<string, (v: unknown) => boolean>;
  /** The request a checked document asks for. */
  build(doc: Record<string, unknown>): Request;
  /** What the dataset is, for the README and error messages. */
  source: string;
}

const str = (v: unknown) => typeof v === "string";
const strList = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every(str);
const intLike = (v: unknown) => (typeof v === "number" && Number.isInteger(v)) || (typeof v === "string" && /^\d+$/.test(v)) || typeof v === "boolean";

/** Every choice continues the one context after a space (the harness's default target_delimiter). */
function multipleChoice(context: string, choices: string[], gold: number): Request {
  return { contexts: choices.map(() => context), continuations: choices.map((c) => " " + c), choices, gold };
}

/** HellaSwag's cleanup of WikiHow and ActivityNet text (the harness's hellaswag/utils.py preprocess). */
export function hellaswagPreprocess(text: string): string {
  return text.trim().replaceAll(" [title]", ". ").replace(/\[.*?\]/g, "").replaceAll("  ", " ");
}

/** Python's str.capitalize: first character upper case, the rest lower case. */
const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1).toLowerCase();

const arc = (name: string): Task => ({
  source: `allenai/ai2_arc (${name}): question, choices {text, label}, answerKey`,
  fields: { question: str, choices: (v) => typeof v === "object" && v !== null && strList((v as Doc).text) && strList((v as Doc).label), answerKey: str },
  build(doc) {
    const choices = doc.choices as { text: string[]; label: string[] };
    if (choices.text.length !== choices.label.length)
      throw new TaskDataError(`field "choices" has ${choices.text.length} texts but ${choices.label.length} labels`);
    const gold = choices.label.indexOf(doc.answerKey as string);
    if (gold < 0) throw new TaskDataError(`field "answerKey" is ${JSON.stringify(doc.answerKey)}, not one of choices.label ${JSON.stringify(choices.label)}`);
    return multipleChoice(`Question: ${doc.question}\nAnswer:`, choices.text, gold);
  },
});

/** The zero-shot tasks by name, with lm-evaluation-harness's prompts and choices. */
export const TASKS: Record<string, Task> = {
  arc_easy: arc("ARC-Easy"),
  arc_challenge: arc("ARC-Challenge"),
  boolq: {
    source: "super_glue/boolq: passage, question, label (0 = no, 1 = yes)",
    fields: { passage: str, question: str, label: intLike },
    build: (doc) => multipleChoice(`${doc.passage}\nQuestion: ${doc.question}?\nAnswer:`, ["no", "yes"], Number(doc.label)),
  },
  hellaswag: {
    source: "Rowan/hellaswag: activity_label, ctx_a, ctx_b, endings, label",
    fields: { activity_label: str, ctx_a: str, ctx_b: str, endings: strList, label: intLike },
    build(doc) {
      const ctx = `${doc.ctx_a} ${capitalize(doc.ctx_b as string)}`;
      return multipleChoice(hellaswagPreprocess(`${doc.activity_label}: ${ctx}`), (doc.endings as string[]).map(hellaswagPreprocess), Number(doc.label));
    },
  },
  piqa: {
    source: "ybisk/piqa: goal, sol1, sol2, label",
    fields: { goal: str, sol1: str, sol2: str, label: intLike },
    build: (doc) => multipleChoice(`Question: ${doc.goal}\nAnswer:`, [doc.sol1 as string, doc.sol2 as string], Number(doc.label)),
  },
  sciq: {
    source: "allenai/sciq: support, question, distractor1, distractor2, distractor3, correct_answer",
    fields: { support: str, question: str, distractor1: str, distractor2: str, distractor3: str, correct_answer: str },
    build: (doc) => multipleChoice(`${(doc.support as string).trimStart()}\nQuestion: ${doc.question}\nAnswer:`,
      [doc.distractor1, doc.distractor2, doc.distractor3, doc.correct_answer] as string[], 3),
  },
  winogrande: {
    // Partial scoring: each option fills the blank in the context; only the rest of the sentence is scored.
    source: "allenai/winogrande: sentence (with one _), option1, option2, answer (\"1\" or \"2\")",
    fields: { sentence: (v) => str(v) && (v as string).includes("_"), option1: str, option2: str, answer: (v) => v === "1" || v === "2" || v === 1 || v === 2 },
    build(doc) {
      const sentence = doc.sentence as string, blank = sentence.indexOf("_");
      const contexts = [doc.option1, doc.option2].map((o) => sentence.slice(0, blank) + o);
      const target = " " + sentence.slice(blank + 1).trim();
      return { contexts, continuations: [target, target], choices: contexts, gold: Number(doc.answer) - 1 };
    },
  },
};

/** One JSONL line of a task as its request, or undefined for a blank line; `where` names the line in errors. */
export function parseDocument(task: string, line: string, where: string): Request | undefined {
  const t = TASKS[task];
  if (!t) throw new TaskDataError(`unknown task "${task}" (tasks: ${Object.keys(TASKS).join(", ")})`);
  if (!line.trim()) return undefined;
  let doc: Doc;
  try {
    doc = JSON.parse(line);
  } catch {
    throw new TaskDataError(`${where}: not valid JSON`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new TaskDataError(`${where}: not a JSON object`);
  for (const [field, ok] of Object.entries(t.fields)) {
    if (!(field in doc)) throw new TaskDataError(`${where}: missing field "${field}" (${task} documents have: ${t.source})`);
    if (!ok(doc[field])) throw new TaskDataError(`${where}: field "${field}" has an unexpected value ${JSON.stringify(doc[field])?.slice(0, 80)} (${t.source})`);
  }
  try {
    const r = t.build(doc);
    if (!(r.gold >= 0 && r.gold < r.choices.length)) throw new TaskDataError(`the answer index ${r.gold} is not one of the ${r.choices.length} choices`);
    return r;
  } catch (e) {
    throw new TaskDataError(`${where}: ${(e as Error).message}`);
  }
}

/** Parse a whole JSONL text into requests; a bad line or field is named. */
export function readTask(task: string, jsonl: string, file = "data"): Request[] {
  const requests = jsonl.split("\n").flatMap((line, i) => parseDocument(task, line, `${file} line ${i + 1}`) ?? []);
  if (requests.length === 0) throw new TaskDataError(`${file}: no documents`);
  return requests;
}
