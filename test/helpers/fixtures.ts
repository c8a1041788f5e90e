/**
 * The one way tests find ../shared (models and goldens). LLMRT_SHARED overrides the
 * location. Where a fixture is missing, a user's run skips the test with a message
 * naming it; under CI=true a missing fixture fails the test instead.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestContext } from "node:test";

/** The repository root: the nearest folder above this file holding package.json. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

export const SHARED_DIR = resolve(process.env.LLMRT_SHARED ?? join(repoRoot(), "..", "shared"));

export function sharedPath(rel: string): string {
  return join(SHARED_DIR, rel);
}

/**
 * Returns the absolute path of a fixture under ../shared, or null after marking the test
 * skipped (outside CI). Under CI=true a missing fixture throws, so the test fails.
 */
export function fixture(t: TestContext, rel: string): string | null {
  const p = sharedPath(rel);
  if (existsSync(p)) return p;
  const msg = `missing fixture ${p} (set LLMRT_SHARED to the folder holding models/ and golden/)`;
  if (process.env.CI === "true") throw new Error(msg);
  t.skip(msg);
  return null;
}

/** Like fixture() but for several at once; null if any is missing. */
export function fixtures(t: TestContext, ...rels: string[]): string[] | null {
  const out: string[] = [];
  for (const r of rels) {
    const p = fixture(t, r);
    if (p === null) return null;
    out.push(p);
  }
  return out;
}
