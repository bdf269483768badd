import { openModel, TextGenerator } from "openelm";

// A Hugging Face-layout folder: on the Hub, https://huggingface.co/ORG/MODEL/resolve/main/
const { model, tokenizer } = await openModel("models/OpenELM-270M-Instruct/", {
  onDownload: (p) => console.log(`${p.file}: ${p.loaded} of ${p.total} bytes${p.fromCache ? " (cached)" : ""}`),
});
const output = document.querySelector("output");
for await (const chunk of new TextGenerator(model, tokenizer).generate("Once upon a time", { maxNewTokens: 24 })) output.append(chunk.text);
