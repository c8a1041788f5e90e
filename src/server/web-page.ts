/**
 * The chat page's HTML. tsc does not copy it into dist, so it is looked for next to
 * this module (dist, when the build copies web/) and then in the source tree.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const CANDIDATES = ["./web/index.html", "../../../src/server/web/index.html"];

let cached: string | null = null;

export function chatPageHtml(): string {
  if (cached !== null) return cached;
  for (const rel of CANDIDATES) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return (cached = readFileSync(path, "utf8"));
  }
  return "<!doctype html><title>llmrt</title><p>The chat page is missing from this install (src/server/web/index.html). The API works: POST /v1/chat/completions.</p>";
}
