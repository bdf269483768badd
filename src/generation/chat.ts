// Chat prompts. OpenELM-Instruct was tuned with the template of CoreNet's
// projects/openelm/instruction_tuning/openelm-instruct.yaml: each message as "<|role|>\n" + content + "</s>",
// then "<|assistant|>" as the generation prompt. It is rendered with @huggingface/jinja, whose defaults
// (trim_blocks, lstrip_blocks) are the settings transformers renders chat templates with. A
// chat_template in the model folder's tokenizer_config.json takes precedence.
//
// A template from a model folder is code from a stranger: it runs with a budget of evaluation steps,
// range() lengths and characters produced, so a template looping range(1e8) fails in milliseconds.
import { Environment, Interpreter, Template } from "@huggingface/jinja";

/** One turn of a conversation, as chat templates take it. */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** The template string exactly as openelm-instruct.yaml gives it. */
export const OPENELM_INSTRUCT_TEMPLATE =
  "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}\n" +
  "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

export class TemplateError extends Error {
  override name = "TemplateError";
}

/** What one rendering may cost: evaluation steps, and characters of the strings it makes (summed). */
export const TEMPLATE_BUDGET = { steps: 100_000, chars: 1 << 26, range: 1 << 20 };

// The package's declarations of its runtime do not resolve under NodeNext, so its shape is stated here.
type RuntimeValue = { value: unknown };
const JinjaInterpreter = Interpreter as unknown as new (env: unknown) => {
  evaluate(statement: unknown, environment: unknown): RuntimeValue;
  run(program: unknown): RuntimeValue;
};

/** An interpreter that counts its work and stops a template that exceeds the budget. */
class BoundedInterpreter extends JinjaInterpreter {
  private steps = 0;
  private chars = 0;

  override evaluate(statement: unknown, environment: unknown): RuntimeValue {
    if (++this.steps > TEMPLATE_BUDGET.steps) throw new TemplateError(`it ran more than ${TEMPLATE_BUDGET.steps.toLocaleString("en-US")} steps`);
    const value = super.evaluate(statement, environment);
    if (typeof value.value === "string" && (this.chars += value.value.length) > TEMPLATE_BUDGET.chars)
      throw new TemplateError(`it produced more than ${TEMPLATE_BUDGET.chars >> 20} MiB of text`);
    return value;
  }
}

/** Python's range(), refusing lengths beyond the budget before building the list. */
function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (![start, stop, step].every(Number.isInteger) || step === 0) throw new TemplateError("range() takes integers and a non-zero step");
  const length = Math.max(0, Math.ceil((stop - start) / step));
  if (length > TEMPLATE_BUDGET.range) throw new TemplateError(`range() of ${length.toLocaleString("en-US")} numbers is beyond the ${TEMPLATE_BUDGET.range.toLocaleString("en-US")} a chat template may make`);
  return Array.from({ length }, (_, i) => start + i * step);
}

const compiled = new Map<string, Template>();

/** Parse a chat template; `where` names its origin in errors (e.g. "tokenizer_config.json field chat_template"). */
export function compileTemplate(source: string, where = "chat template"): Template {
  let template = compiled.get(source);
  if (template) return template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new TemplateError(`${where}: ${(e as Error).message.slice(0, 300)}`);
  }
  compiled.set(source, template);
  return template;
}

/** Render a conversation with a chat template (default: OpenELM-Instruct's), within TEMPLATE_BUDGET. */
export function renderChat(messages: ChatMessage[], opts: { template?: string; addGenerationPrompt?: boolean; bosToken?: string; eosToken?: string } = {}): string {
  const where = opts.template === undefined ? "the OpenELM-Instruct chat template" : "the model's chat template";
  const template = compileTemplate(opts.template ?? OPENELM_INSTRUCT_TEMPLATE, where);
  const env = new Environment();
  const globals: Record<string, unknown> = {
    true: true, false: false, none: null, True: true, False: false, None: null,
    range,
    raise_exception: (message: unknown) => {
      throw new TemplateError(`raised: ${String(message).slice(0, 300)}`);
    },
    messages,
    add_generation_prompt: opts.addGenerationPrompt ?? true,
    bos_token: opts.bosToken ?? "<s>",
    eos_token: opts.eosToken ?? "</s>",
  };
  for (const [name, value] of Object.entries(globals)) env.set(name, value);
  try {
    return new BoundedInterpreter(env).run(template.parsed).value as string;
  } catch (e) {
    const message = (e as Error).message.slice(0, 300);
    throw new TemplateError(`${where} failed: ${e instanceof RangeError ? "it recursed too deeply or made too large a value" : message}`);
  }
}
