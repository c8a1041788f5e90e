/**
 * Speculative decoding settings, parsed from the CLI / API spelling:
 *   "ngram,k=4,n=3"        prompt lookup: propose the k tokens that followed the last
 *                          earlier occurrence of the sequence's last n (down to 1) tokens
 *   "draft:PATH,k=4"       a small draft model proposes k tokens autoregressively
 */
import { OptionError } from "../../errors.js";

export type SpeculativeConfig =
  | { method: "ngram"; k: number; n: number }
  | { method: "draft"; model: string; k: number };

export function parseSpeculative(spec: string, option = "--speculative"): SpeculativeConfig {
  const [head, ...rest] = spec.split(",");
  const kv = new Map<string, string>();
  for (const part of rest) {
    const [key, value] = part.split("=");
    if (!key || value === undefined) throw new OptionError(option, `"${part}" is not key=value`, 'e.g. "ngram,k=4,n=3" or "draft:path/to/model,k=4"');
    kv.set(key.trim(), value.trim());
  }
  const int = (key: string, dflt: number, max: number): number => {
    const raw = kv.get(key);
    kv.delete(key);
    if (raw === undefined) return dflt;
    const v = Number(raw);
    if (!Number.isInteger(v) || v < 1 || v > max) throw new OptionError(option, `${key}=${raw}: expected an integer in [1, ${max}]`);
    return v;
  };
  let cfg: SpeculativeConfig;
  if (head === "ngram") cfg = { method: "ngram", k: int("k", 4, 16), n: int("n", 3, 16) };
  else if (head.startsWith("draft:") && head.length > 6) cfg = { method: "draft", model: head.slice(6), k: int("k", 4, 16) };
  else throw new OptionError(option, `unknown method "${head}"`, 'use "ngram[,k=K][,n=N]" or "draft:PATH[,k=K]"');
  if (kv.size > 0) throw new OptionError(option, `unknown setting(s) ${[...kv.keys()].join(", ")} for ${cfg.method}`);
  return cfg;
}
