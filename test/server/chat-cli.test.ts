/** llmrt chat in a pipe: replies stream for each line, /reset clears, /exit leaves with status 0. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

test("llmrt chat: two exchanges around a /reset, then /exit", () => {
  const r = spawnSync(process.execPath, ["--import", "tsx", MAIN, "chat", "--max-tokens", "12", "--temperature", "0", "--system", "Be brief."], {
    input: "hello there\n/reset\nsecond message\n/exit\nnot read\n",
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /random weights/);
  assert.match(r.stderr, /conversation cleared/);
  // a prompt before each of the four lines read; the line after /exit is never read
  assert.equal(r.stdout.split("> ").length - 1, 4, JSON.stringify(r.stdout));
  const replies = r.stdout.split("> ").map((s) => s.trim()).filter((s) => s.length > 0);
  assert.ok(replies.length >= 1 && replies.every((t) => t.length <= 12), JSON.stringify(r.stdout));
});
