/**
 * The HTTP side of `llmrt bench serve`: find the model, measure what a word costs in
 * tokens, and send one streaming request, timing each SSE chunk as it arrives.
 * Node's fetch (undici); every failure of a request is returned, never thrown.
 */
import { LlmrtError } from "../errors.js";

/** The server cannot be reached or answers in a way the benchmark cannot use. */
export class BenchServerError extends LlmrtError {
  constructor(readonly url: string, problem: string, hint = "start one with `llmrt serve`, or check --url") {
    super("bench_server", `${url}: ${problem}`, hint);
  }
}

/** The first model id of GET /v1/models; throws a BenchServerError when the server is not there. */
export async function firstModel(url: string, timeoutMs: number): Promise<string> {
  let r: Response;
  try {
    r = await fetch(`${url}/v1/models`, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    throw new BenchServerError(url, `cannot connect (${describe(e)})`);
  }
  if (!r.ok) throw new BenchServerError(url, `GET /v1/models answered HTTP ${r.status}`, "pass --model NAME if the server has no /v1/models");
  const body = (await r.json().catch(() => null)) as { data?: { id?: unknown }[] } | null;
  const id = body?.data?.[0]?.id;
  if (typeof id !== "string") throw new BenchServerError(url, "GET /v1/models listed no model", "pass --model NAME");
  return id;
}

/** Tokens per word of `sample` by the server's /tokenize (vLLM and llmrt have it); 1 when it has none. */
export async function tokensPerWord(url: string, model: string, sample: string, timeoutMs: number): Promise<number> {
  try {
    const r = await fetch(`${url}/tokenize`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, prompt: sample, add_special_tokens: false }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const count = r.ok ? ((await r.json()) as { count?: unknown }).count : undefined;
    return typeof count === "number" && count > 0 ? count / sample.split(" ").length : 1;
  } catch (e) {
    throw new BenchServerError(url, `cannot connect (${describe(e)})`);
  }
}

export interface StreamRequest {
  url: string;
  endpoint: "completions" | "chat";
  model: string;
  prompt: string;
  maxTokens: number;
  timeoutMs: number;
}

export interface StreamRecord {
  /** performance.now() when the request was sent, and of each content chunk. */
  sent: number;
  chunks: number[];
  /** From the final usage chunk when the server sends one, else the content chunks counted. */
  outputTokens: number;
  promptTokens: number | null;
  /** Why the request failed; null when it completed. */
  error: string | null;
}

/** Sends one streaming request and times its chunks; resolves (never rejects) with what happened. */
export async function streamRequest(q: StreamRequest): Promise<StreamRecord> {
  const rec: StreamRecord = { sent: performance.now(), chunks: [], outputTokens: 0, promptTokens: null, error: null };
  const common = { model: q.model, max_tokens: q.maxTokens, ignore_eos: true, temperature: 0, stream: true, stream_options: { include_usage: true } };
  const body = q.endpoint === "chat" ? { ...common, messages: [{ role: "user", content: q.prompt }] } : { ...common, prompt: q.prompt };
  const path = q.endpoint === "chat" ? "/v1/chat/completions" : "/v1/completions";
  const usage: { completion_tokens?: number; prompt_tokens?: number } = {};
  let done = false;
  try {
    const r = await fetch(q.url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: AbortSignal.timeout(q.timeoutMs) });
    if (!r.ok || !r.body) {
      rec.error = `HTTP ${r.status}: ${(await r.text()).slice(0, 200)}`;
      return rec;
    }
    let buf = "";
    for await (const part of r.body.pipeThrough(new TextDecoderStream())) {
      const now = performance.now();
      buf += part.replace(/\r\n/g, "\n");
      let k: number;
      while ((k = buf.indexOf("\n\n")) >= 0) {
        const data = buf.slice(0, k).split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
        buf = buf.slice(k + 2);
        if (data === "") continue;
        if (data === "[DONE]") {
          done = true;
          continue;
        }
        const chunk = JSON.parse(data) as { choices?: { delta?: { role?: string } }[]; usage?: typeof usage | null; error?: { message?: string } };
        if (chunk.error) throw new Error(`error event: ${chunk.error.message ?? JSON.stringify(chunk.error)}`);
        if (chunk.usage) Object.assign(usage, chunk.usage);
        // a chat stream opens with an empty assistant-role chunk: not a token
        if (chunk.choices?.length && chunk.choices[0].delta?.role === undefined) rec.chunks.push(now);
      }
    }
    if (!done) rec.error = "the stream ended without data: [DONE]";
  } catch (e) {
    rec.error = describe(e);
  }
  rec.outputTokens = usage.completion_tokens ?? rec.chunks.length;
  rec.promptTokens = usage.prompt_tokens ?? null;
  return rec;
}

/** An error in one line, with undici's cause (ECONNREFUSED, a reset) and timeouts named. */
function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  if (e.name === "TimeoutError") return "timed out";
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause ? `${e.message}: ${cause.code ?? cause.message}` : e.message;
}
