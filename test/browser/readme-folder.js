import { openModel, TextGenerator } from "openelm";

// <input type="file" webkitdirectory>: the user picks the model folder
const input = document.querySelector("input[webkitdirectory]");
input.addEventListener("change", async () => {
  const { model, tokenizer } = await openModel(input.files);
  const { text } = await new TextGenerator(model, tokenizer).complete("Once upon a time", { maxNewTokens: 24 });
  document.querySelector("output").append(text);
});
