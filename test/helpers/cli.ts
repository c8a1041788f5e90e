/** Runs the llmrt CLI from source (through tsx) and captures its output. */
import { spawnSync } from "node:child_process";
import { Command } from "commander";
import { registerBuild } from "../../src/cli/build.js";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli/main.ts"), ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs `llmrt build ...args` in-process (errors throw, no exit); returns what it wrote to stderr. */
export async function runBuild(...args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerBuild(program);
  const lines: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    await program.parseAsync(["node", "llmrt", "build", ...args]);
  } finally {
    console.error = orig;
  }
  return lines.join("\n");
}
