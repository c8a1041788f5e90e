#!/usr/bin/env node
/** The llmrt command line. Each subcommand lives in a file of its own. */
import { Command } from "commander";
import { LlmrtError } from "../errors.js";
import { registerBench } from "./bench.js";
import { registerBuild } from "./build.js";
import { registerGenerate } from "./generate.js";
import { registerInspect } from "./inspect.js";
import { registerServe } from "./serve.js";
import { registerChat } from "./chat.js";
import { registerEval } from "./eval.js";

const program = new Command()
  .name("llmrt")
  .description("LLM inference optimizer and runtime for Node.js")
  .version("0.1.0")
  .showHelpAfterError();

registerGenerate(program);
registerBuild(program);
registerInspect(program);
registerServe(program);
registerChat(program);
registerBench(program);
registerEval(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  // typed errors are the user's to fix: print the message and hint, not a stack
  if (e instanceof LlmrtError) console.error(`llmrt: ${e.message}`);
  else console.error(e);
  process.exitCode = 1;
});
