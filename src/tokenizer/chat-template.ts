/**
 * Chat templates (Jinja, from tokenizer_config.json or GGUF tokenizer.chat_template)
 * rendered with @huggingface/jinja, the way transformers' apply_chat_template does.
 */
import { Template } from "@huggingface/jinja";
import { LlmrtError } from "../errors.js";
import type { Tokenizer } from "./types.js";

/** A template failed to parse, or refused the conversation (its raise_exception). */
export class ChatTemplateError extends LlmrtError {
  constructor(problem: string, hint?: string) {
    super("chat_template", problem, hint);
  }
}

export interface ChatMessage {
  role: string;
  /** Text, or a list of content parts ({type: "text", text}) as OpenAI sends them. */
  content: string | null | ReadonlyArray<Record<string, unknown>>;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** End with the opening of an assistant turn so the model answers. Default true. */
  addGenerationPrompt?: boolean;
  bosToken?: string;
  eosToken?: string;
  /** Tool (function) definitions, passed to the template as `tools`. */
  tools?: readonly unknown[];
  /** More variables for the template (e.g. enable_thinking, date_string). */
  extra?: Record<string, unknown>;
}

const parsed = new Map<string, Template>();

/** Parses once per distinct template text. */
function compile(template: string): Template {
  let t = parsed.get(template);
  if (t === undefined) {
    try {
      t = new Template(template);
    } catch (e) {
      throw new ChatTemplateError(`chat template does not parse: ${(e as Error).message}`, "fix the template or pass another one (e.g. from the model's tokenizer_config.json)");
    }
    if (parsed.size > 32) parsed.clear();
    parsed.set(template, t);
  }
  return t;
}

export function applyChatTemplate(template: string, messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
  const t = compile(template);
  const vars: Record<string, unknown> = {
    ...opts.extra,
    messages,
    add_generation_prompt: opts.addGenerationPrompt ?? true,
    bos_token: opts.bosToken ?? "",
    eos_token: opts.eosToken ?? "",
  };
  if (opts.tools !== undefined) vars.tools = opts.tools;
  try {
    return t.render(vars);
  } catch (e) {
    const msg = (e as Error).message;
    // The library's raise_exception throws a plain Error with the template's text; recognise it by that text.
    if (raisedMessages(template).some((m) => msg === m)) {
      throw new ChatTemplateError(`the chat template rejected the conversation: ${msg}`, "change the messages (roles, order) to what the model's template accepts");
    }
    throw new ChatTemplateError(`rendering the chat template failed: ${msg}`, "check the messages' fields; the template may expect others");
  }
}

/** The literal messages of raise_exception('...') calls in a template. */
function raisedMessages(template: string): string[] {
  return [...template.matchAll(/raise_exception\(\s*(['"])((?:\\.|(?!\1).)*)\1\s*\)/g)].map((m) => m[2].replace(/\\(.)/g, "$1"));
}

/** applyChatTemplate with the tokenizer's own template and BOS/EOS texts. */
export function applyTokenizerChatTemplate(tokenizer: Tokenizer, messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
  if (tokenizer.chatTemplate === null) {
    throw new ChatTemplateError("this model's tokenizer has no chat template", "pass a chat template explicitly, or use plain completion");
  }
  const piece = (id: number | null | undefined) => (id === null || id === undefined ? undefined : tokenizer.idToPiece(id));
  return applyChatTemplate(tokenizer.chatTemplate, messages, {
    bosToken: piece(tokenizer.bosId),
    eosToken: piece(tokenizer.eosIds[0]),
    ...opts,
  });
}

/**
 * Token ids of a rendered chat prompt: special-token text is parsed, and BOS is added
 * only when the tokenizer wants it and the template did not already write it.
 */
export function encodeChatPrompt(tokenizer: Tokenizer, rendered: string): number[] {
  const bosText = tokenizer.bosId === null ? undefined : tokenizer.idToPiece(tokenizer.bosId);
  const templateHasBos = bosText !== undefined && bosText.length > 0 && rendered.startsWith(bosText);
  return tokenizer.encode(rendered, { parseSpecial: true, addBos: tokenizer.addBos && !templateHasBos });
}
