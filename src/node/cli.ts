#!/usr/bin/env node
// The openelm command line. The forms `logits`, `generate --ids ... --json` and `info` are the
// conformance interface other ports drive; keep them stable.
import { readFileSync } from "node:fs";
import { UsageError, MODEL_HELP } from "./commands/args.js";
import * as bench from "./commands/bench.js";
import * as conformance from "./commands/conformance.js";
import * as conversion from "./commands/convert.js";
import * as evaluation from "./commands/eval.js";
import * as generation from "./commands/generate.js";
import * as oracle from "./commands/oracle.js";
import * as server from "./commands/serve.js";
import * as training from "./commands/train.js";
import * as finetuning from "./commands/finetune.js";
import * as webDemo from "./commands/web.js";

/** Each command resolves to its exit code (nothing: 0). */
const COMMANDS: Record<string, (args: string[]) => Promise<number | void>> = {
  generate: generation.generate,
  chat: generation.chat,
  logits: conformance.logits,
  info: conformance.info,
  perplexity: evaluation.perplexity,
  eval: evaluation.evalTask,
  bench: bench.bench,
  trace: oracle.trace,
  compare: oracle.compare,
  conformance: oracle.conformance,
  convert: conversion.convert,
  web: webDemo.web,
  serve: server.serve,
  train: training.train,
  finetune: finetuning.finetune,
};
const HELP = { ...generation.HELP, ...conformance.HELP, ...evaluation.HELP, ...bench.HELP, ...oracle.HELP, ...conversion.HELP, ...webDemo.HELP, ...server.HELP, ...training.HELP, ...finetuning.HELP };
const USAGE = `usage: openelm <command> [options]     (openelm <command> --help for its options; openelm --version)

${Object.values(HELP).join("\n\n")}

${MODEL_HELP}`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "--version" || command === "-v") {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    console.log(`openelm ${pkg.version}`);
    return 0;
  }
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (!run) throw new UsageError(`unknown command "${command}" (commands: ${Object.keys(COMMANDS).join(", ")})`);
  return (await run(rest)) ?? 0;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    const err = e as Error;
    process.stderr.write(`openelm: ${err instanceof UsageError ? "usage" : "error"}: ${err.message ?? String(e)}\n`);
    if (process.env.OPENELM_DEBUG) process.stderr.write(`${err.stack}\n`);
    process.exitCode = err instanceof oracle.CompareError ? err.code : err instanceof UsageError ? 2 : 1;
  },
);
