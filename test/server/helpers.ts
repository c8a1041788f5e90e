/** Shared by the server tests: start a server on a free loopback port, post JSON, read SSE streams. */
import { request } from "node:http";
import { startServer, type RunningServer, type ServeOptions } from "../../src/server/server.js";

export async function startTestServer(opts: Partial<ServeOptions> = {}): Promise<RunningServer> {
  const s = await startServer({ model: "synthetic:tiny", port: 0, host: "127.0.0.1", maxSeqs: 16, ...opts });
  await s.ready;
  return s;
}

export interface JsonResponse {
  status: number;
  body: any;
  headers: Headers;
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: the test will say so
  }
  return { status: r.status, body: parsed, headers: r.headers };
}

/** Posts a streaming request and returns every `data:` payload, parsed (the final "[DONE]" kept as a string). */
export async function postSse(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; events: any[]; contentType: string | null }> {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  const text = await r.text();
  const events = text
    .split("\n\n")
    .map((b) => b.trim())
    .filter((b) => b.startsWith("data: "))
    .map((b) => b.slice(6))
    .map((d) => (d === "[DONE]" ? d : JSON.parse(d)));
  return { status: r.status, events, contentType: r.headers.get("content-type") };
}

/**
 * Starts a streaming request on a raw socket and destroys it after `afterChunks` SSE
 * chunks arrived: a client that goes away mid-stream. Resolves with the chunks seen.
 */
export function streamAndDisconnect(url: string, body: unknown, afterChunks: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: "POST", headers: { "content-type": "application/json" } }, (res) => {
      let seen = 0;
      res.on("data", (d: Buffer) => {
        seen += d.toString().split("data: ").length - 1;
        if (seen >= afterChunks) {
          req.destroy();
          resolve(seen);
        }
      });
      res.on("end", () => resolve(seen));
      res.on("error", () => resolve(seen));
    });
    req.on("error", (e) => (req.destroyed ? undefined : reject(e)));
    req.end(JSON.stringify(body));
  });
}

/** Polls `check` until it returns true (bounded), e.g. for the engine to notice an abort. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs = 5000, stepMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return check();
}

/** The text of each choice, in index order, from a list of SSE events (completions or chat). */
export function streamedTexts(events: any[]): string[] {
  const texts: string[] = [];
  for (const e of events) {
    if (e === "[DONE]" || !e.choices) continue;
    for (const c of e.choices) texts[c.index] = (texts[c.index] ?? "") + (c.text ?? c.delta?.content ?? "");
  }
  return texts;
}
