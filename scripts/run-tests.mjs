#!/usr/bin/env node
// Runs every test/**/*.test.ts with Node's test runner (through tsx), so CI reads
// Node's own summary. Extra arguments filter test files by substring.
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { spawnSync } from "node:child_process";

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith(".test.ts") ? [p] : [];
  });
}

const filters = process.argv.slice(2);
const files = walk("test")
  .map((p) => relative(".", p))
  .filter((p) => filters.length === 0 || filters.some((f) => p.includes(f)))
  .sort();
if (files.length === 0) {
  console.error("no test files matched", filters);
  process.exit(1);
}
// engines the tests build go to a cache of this run's own, never the user's
const cache = mkdtempSync(join(tmpdir(), "llmrt-test-engines-"));
const res = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=2", "--test-reporter=spec", ...files],
  { stdio: "inherit", env: { LLMRT_CACHE: cache, ...process.env } },
);
rmSync(cache, { recursive: true, force: true });
process.exit(res.status ?? 1);
