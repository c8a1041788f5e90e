/**
 * Splits streamed model output into plain text and OpenAI `tool_calls` deltas.
 *
 * Everything emitted is decided by the text received so far: a tail that could still
 * turn into a marker (or a call's opening) is held back, like a stop string, so the
 * deltas concatenate to the same result however the text was chunked, and
 * parseToolCalls (one push of the whole text) is the non-streamed answer.
 * A call is announced (id, type, name) once its name is complete; its arguments then
 * stream as raw JSON text. An object without a name is given back as plain text.
 */
import { randomBytes } from "node:crypto";
import { CallScanner } from "./call-scanner.js";
import type { ToolCallDelta, ToolCallFormat, ToolStreamDelta } from "./types.js";

type Phase = "start" | "content" | "open" | "call" | "close" | "listOpen" | "listItem" | "listSep" | "semi";

const MARKER: Record<ToolCallFormat, string> = { hermes: "<tool_call>", mistral: "[TOOL_CALLS]", llama3_json: "<|python_tag|>" };
const CLOSE_TAG = "</tool_call>";
/** Calls that may open the message with no marker (templates whose marker is a control token the detokenizer drops). */
const BARE_START: Partial<Record<ToolCallFormat, RegExp[]>> = {
  mistral: [/^\[\s*\{\s*"name"/],
  llama3_json: [/^\{\s*"name"/, /^\{\s*"type"/],
};

export interface ToolStreamOptions {
  /** Id for the call at `index` (default: newToolCallId(format)). */
  makeId?: (index: number) => string;
}

const isWs = (c: string) => c === " " || c === "\n" || c === "\r" || c === "\t";

export function randomCallId(): string {
  return "call_" + randomBytes(18).toString("base64url").slice(0, 24);
}

/** A fresh id in the style the format's chat template accepts (Mistral's insists on 9 letters or digits). */
export function newToolCallId(format: ToolCallFormat): string {
  if (format !== "mistral") return randomCallId();
  const abc = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  return Array.from(randomBytes(9), (b) => abc[b % abc.length]).join("");
}

interface OpenCall {
  scanner: CallScanner;
  /** Where the call's text began (its marker, or the object), for giving it back as text. */
  rawStart: number;
  index: number; // -1 until announced
  sentArgs: number;
}

export class ToolCallStreamParser {
  private readonly buf = { text: "" };
  private pos = 0;
  private phase: Phase = "start";
  /** Whitespace held back: dropped if a call follows, emitted if text does. */
  private pendingWs = "";
  private markerStart = 0;
  /** Whitespace dropped before the marker, restored if no call follows after all. */
  private wsBeforeMarker = "";
  private call: OpenCall | null = null;
  private numCalls = 0;
  private out: ToolStreamDelta = { content: "", toolCalls: [] };
  private readonly makeId: (index: number) => string;

  constructor(
    readonly format: ToolCallFormat,
    opts: ToolStreamOptions = {},
  ) {
    this.makeId = opts.makeId ?? (() => newToolCallId(format));
  }

  /** Feeds the next piece of model output. */
  push(delta: string): ToolStreamDelta {
    this.buf.text += delta;
    return this.run(false);
  }

  /** The output ended: releases anything held back (an unfinished call keeps what it had). */
  finish(): ToolStreamDelta {
    return this.run(true);
  }

  private run(final: boolean): ToolStreamDelta {
    this.out = { content: "", toolCalls: [] };
    while (this.step(final));
    if (final && this.call !== null) this.endCall(true);
    return this.out;
  }

  /** One move of the state machine; false when it must wait for more text. */
  private step(final: boolean): boolean {
    const s = this.buf.text;
    switch (this.phase) {
      case "start": {
        let i = this.pos;
        while (i < s.length && isWs(s[i])) i++;
        this.pendingWs += s.slice(this.pos, i);
        this.pos = i;
        const rest = s.slice(i);
        const bare = BARE_START[this.format] ?? [];
        if (bare.some((re) => re.test(rest))) return this.enter(this.format === "mistral" ? "listOpen" : "open", i);
        if (!final && (rest.length === 0 || bare.some((re) => couldMatch(re, rest)))) return false;
        this.pendingWs = ""; // the message's leading whitespace
        this.phase = "content";
        return true;
      }
      case "content": {
        const marker = MARKER[this.format];
        const at = s.indexOf(marker, this.pos);
        if (at >= 0) {
          this.text(s.slice(this.pos, at));
          this.pos = at + marker.length;
          return this.enter(this.format === "mistral" ? "listOpen" : "open", at);
        }
        const hold = final ? 0 : heldTail(s, this.pos, marker);
        this.text(s.slice(this.pos, s.length - hold));
        this.pos = s.length - hold;
        return false;
      }
      case "open":
      case "listItem": {
        if (!this.skipWs()) return this.waitOrGiveBack(final);
        if (s[this.pos] === "{") {
          this.call = { scanner: new CallScanner(this.buf, this.pos), rawStart: this.phase === "open" ? this.markerStart : this.pos, index: -1, sentArgs: 0 };
          this.phase = "call";
          return true;
        }
        if (this.phase === "listItem" && s[this.pos] === "]") return this.after(1, "content");
        return this.giveBack();
      }
      case "call": {
        const c = this.call!;
        c.scanner.scan();
        this.announce(c);
        if (!c.scanner.done) return false;
        this.endCall(false);
        this.pos = c.scanner.end;
        this.markerStart = this.pos;
        this.wsBeforeMarker = "";
        this.phase = this.format === "hermes" ? "close" : this.format === "mistral" ? "listSep" : "semi";
        return true;
      }
      case "close": {
        if (!this.skipWs()) return !final ? false : this.after(0, "content");
        const rest = s.slice(this.pos);
        if (rest.startsWith(CLOSE_TAG)) return this.after(CLOSE_TAG.length, "content");
        if (!final && CLOSE_TAG.startsWith(rest)) return false;
        return this.after(0, "content");
      }
      case "listOpen": {
        if (!this.skipWs()) return this.waitOrGiveBack(final);
        if (s[this.pos] === "[") return this.after(1, "listItem");
        return this.giveBack();
      }
      case "listSep":
      case "semi": {
        if (!this.skipWs()) return !final ? false : this.after(0, "content");
        const c = s[this.pos];
        if (this.phase === "listSep" && c === ",") return this.after(1, "listItem");
        if (this.phase === "listSep" && c === "]") return this.after(1, "content");
        if (this.phase === "semi" && c === ";") return this.after(1, "open");
        return this.after(0, "content");
      }
    }
  }

  /** A marker (or a bare opening) at `at` starts tool calls; held whitespace before it is dropped. */
  private enter(phase: Phase, at: number): boolean {
    this.wsBeforeMarker = this.pendingWs;
    this.pendingWs = "";
    this.markerStart = at;
    this.phase = phase;
    return true;
  }

  private after(n: number, phase: Phase): boolean {
    this.pos += n;
    this.phase = phase;
    return true;
  }

  /** Moves past whitespace; false if the text ran out. */
  private skipWs(): boolean {
    const s = this.buf.text;
    while (this.pos < s.length && isWs(s[this.pos])) this.pos++;
    return this.pos < s.length;
  }

  private waitOrGiveBack(final: boolean): boolean {
    return final ? this.giveBack() : false;
  }

  /** What followed a marker was no call: the marker and what came since are plain text. */
  private giveBack(): boolean {
    this.pendingWs = this.wsBeforeMarker;
    this.text(this.buf.text.slice(this.markerStart, this.pos));
    this.phase = "content";
    return true;
  }

  /** Announces the call once its name is known, and sends the arguments that arrived. */
  private announce(c: OpenCall): void {
    if (c.scanner.name === null) return;
    if (c.index < 0) {
      c.index = this.numCalls++;
      this.delta(c.index, { id: this.makeId(c.index), type: "function", name: c.scanner.name });
    }
    const args = c.scanner.argumentsSoFar();
    if (args.length > c.sentArgs) {
      this.delta(c.index, { arguments: args.slice(c.sentArgs) });
      c.sentArgs = args.length;
    }
  }

  /** The call's object closed (or the output ended inside it). */
  private endCall(cut: boolean): void {
    const c = this.call!;
    this.call = null;
    if (c.scanner.name !== null) {
      this.announce(c);
      return;
    }
    // no name: not a tool call after all
    this.pendingWs = this.wsBeforeMarker;
    this.text(this.buf.text.slice(c.rawStart, cut ? this.buf.text.length : c.scanner.end));
    if (cut) this.pos = this.buf.text.length;
  }

  private delta(index: number, d: { id?: string; type?: "function"; name?: string; arguments?: string }): void {
    let t = this.out.toolCalls.find((x) => x.index === index);
    if (t === undefined) {
      t = { index, function: {} } as ToolCallDelta;
      this.out.toolCalls.push(t);
    }
    if (d.id !== undefined) (t.id = d.id), (t.type = d.type);
    if (d.name !== undefined) t.function.name = d.name;
    if (d.arguments !== undefined) t.function.arguments = (t.function.arguments ?? "") + d.arguments;
  }

  /** Plain text, with trailing whitespace held back. */
  private text(t: string): void {
    if (t === "") return;
    const all = this.pendingWs + t;
    let e = all.length;
    while (e > 0 && isWs(all[e - 1])) e--;
    this.pendingWs = all.slice(e);
    this.out.content += all.slice(0, e);
  }
}

/** Length of the longest tail of s (from `from`) that is a proper prefix of marker. */
function heldTail(s: string, from: number, marker: string): number {
  for (let k = Math.min(marker.length - 1, s.length - from); k > 0; k--) if (marker.startsWith(s.slice(s.length - k))) return k;
  return 0;
}

/** Whether some continuation of `text` could match `re` (anchored at the start): tries the regex's own literal shapes. */
function couldMatch(re: RegExp, text: string): boolean {
  // The bare-start patterns are "[", "{", spaces and a quoted key: text could grow into a
  // match iff stripping its spaces leaves a prefix of the compact form.
  const compact = re.source.replace(/^\^/, "").replace(/\\s\*/g, "").replace(/\\/g, "");
  return compact.startsWith(text.replace(/\s+/g, ""));
}
