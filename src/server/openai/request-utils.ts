/** Small helpers every OpenAI route uses: body parsing, ids, timestamps. */
import { randomUUID } from "node:crypto";
import type { z } from "zod";
import { badRequest, fromZod } from "./errors.js";

/** Parses a JSON body with `schema`; a 400 naming the first bad field otherwise. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw badRequest("the request body must be a JSON object", null, "invalid_body");
  const r = schema.safeParse(body);
  if (!r.success) throw fromZod(r.error);
  return r.data;
}

export function requestId(prefix: string): string {
  return `${prefix}-${randomUUID().replaceAll("-", "")}`;
}

export const unixNow = () => Math.floor(Date.now() / 1000);
