/**
 * Server-sent events as OpenAI streams them: `data: {json}\n\n` per chunk and a final
 * `data: [DONE]`. The reply is taken over from fastify (hijacked), so headers fastify
 * already set (CORS) are carried over by hand.
 */
import type { FastifyReply } from "fastify";

export class SseStream {
  private ended = false;

  constructor(private readonly reply: FastifyReply) {}

  /** Sends the 200 and the event-stream headers. */
  start(): void {
    const raw = this.reply.raw;
    this.reply.hijack();
    const headers: Record<string, string | number | string[]> = {};
    for (const [k, v] of Object.entries(this.reply.getHeaders())) if (v !== undefined) headers[k] = v;
    raw.writeHead(200, {
      ...headers,
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no", // ask proxies not to buffer the stream
    });
    raw.flushHeaders();
  }

  /** The client went away (or the stream ended): nothing more can be sent. */
  get closed(): boolean {
    return this.ended || this.reply.raw.destroyed || this.reply.raw.writableEnded;
  }

  send(data: unknown): void {
    if (!this.closed) this.reply.raw.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** Writes `data: [DONE]` and ends the response. */
  done(): void {
    if (this.closed) return;
    this.ended = true;
    this.reply.raw.end("data: [DONE]\n\n");
  }
}
