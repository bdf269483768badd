// Chat prompts. OpenELM-Instruct was tuned with the template of CoreNet's
// projects/openelm/instruction_tuning/openelm-instruct.yaml: each message as "<|role|>\n" + content + "</s>",
// then "<|assistant|>" as the generation prompt. It is rendered with @huggingface/jinja, whose defaults
// (trim_blocks, lstrip_blocks) are the settings transformers renders chat templates with. A
// chat_template in the model folder's tokenizer_config.json takes precedence.
import { Template } from "@huggingface/jinja";

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

const compiled = new Map<string, Template>();

/** Render a conversation with a chat template (default: OpenELM-Instruct's). */
export function renderChat(messages: ChatMessage[], opts: { template?: string; addGenerationPrompt?: boolean; bosToken?: string; eosToken?: string } = {}): string {
  const source = opts.template ?? OPENELM_INSTRUCT_TEMPLATE;
  let template = compiled.get(source);
  if (!template) compiled.set(source, (template = new Template(source)));
  return template.render({
    messages,
    add_generation_prompt: opts.addGenerationPrompt ?? true,
    bos_token: opts.bosToken ?? "<s>",
    eos_token: opts.eosToken ?? "</s>",
  });
}
