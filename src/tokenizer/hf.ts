/**
 * Hugging Face tokenizers: tokenizer.json through @huggingface/tokenizers, plus what
 * the neighbouring files say about BOS/EOS, add_bos_token and the chat template
 * (tokenizer_config.json, special_tokens_map.json, generation_config.json,
 * chat_template.jinja / chat_template.json).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { Tokenizer as HfLib } from "@huggingface/tokenizers";
import { TokenizerError } from "../errors.js";
import type { DecodeOptions, EncodeOptions, Tokenizer } from "./types.js";
import { endOfGenerationIds } from "./vocab.js";

type Json = Record<string, unknown>;

export interface HfTokenizerFiles {
  /** Parsed tokenizer.json. */
  tokenizer: Json;
  /** Parsed tokenizer_config.json, if any. */
  config?: Json;
  /** Parsed special_tokens_map.json, if any. */
  specialTokensMap?: Json;
  /** Parsed generation_config.json, if any (its eos_token_id list ends generation too). */
  generationConfig?: Json;
  /** A chat template from chat_template.jinja / chat_template.json, overriding the config's. */
  chatTemplate?: string;
  /** Where tokenizer.json came from, for messages. */
  source: string;
}

export class HfTokenizer implements Tokenizer {
  readonly kind = "hf" as const;
  readonly source: string;
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosIds: readonly number[];
  readonly addBos: boolean;
  readonly chatTemplate: string | null;
  private readonly lib: HfLib;
  /** Same tokenizer without its special added tokens, so their text encodes as plain text (parseSpecial false). */
  private plainLib: HfLib | null | undefined;
  private readonly json: Json;
  private readonly libConfig: Json;
  private readonly specialIds: Set<number>;

  constructor(files: HfTokenizerFiles) {
    const { tokenizer, source } = files;
    const config = files.config ?? {};
    this.source = source;
    this.json = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...tokenizer };
    // We never want decode to rewrite spacing (" ." -> "."): streamed text must equal the full decode.
    this.libConfig = { ...config, clean_up_tokenization_spaces: false };
    try {
      this.lib = new HfLib(this.json, this.libConfig);
    } catch (e) {
      throw new TokenizerError(source, `@huggingface/tokenizers cannot build this tokenizer: ${(e as Error).message}`, "check that tokenizer.json is complete; its model type must be BPE, WordPiece or Unigram");
    }
    this.vocabSize = (this.lib.model as unknown as { vocab: unknown[] }).vocab.length;
    this.specialIds = new Set();
    for (const [id, t] of this.lib.get_added_tokens_decoder()) if (t.special) this.specialIds.add(id);

    const tokenText = (v: unknown): string | undefined =>
      typeof v === "string" ? v : typeof v === "object" && v !== null && typeof (v as Json).content === "string" ? ((v as Json).content as string) : undefined;
    const idOf = (key: string): number | null => {
      const text = tokenText(config[key]) ?? tokenText(files.specialTokensMap?.[key]);
      const id = text === undefined ? undefined : this.lib.token_to_id(text);
      return id ?? null;
    };
    const gen = files.generationConfig ?? {};
    const genIds = (v: unknown): number[] => (Array.isArray(v) ? v : typeof v === "number" ? [v] : []).filter((x): x is number => typeof x === "number");
    this.bosId = idOf("bos_token") ?? genIds(gen.bos_token_id)[0] ?? null;
    this.eosIds = endOfGenerationIds(idOf("eos_token"), (t) => this.lib.token_to_id(t), genIds(gen.eos_token_id));
    this.addBos = typeof config.add_bos_token === "boolean" ? config.add_bos_token : this.postProcessorAddsBos();
    this.chatTemplate = files.chatTemplate ?? pickTemplate(config.chat_template);
  }

  /** Without add_bos_token in the config, the post-processor tells (Llama 3's TemplateProcessing adds it). */
  private postProcessorAddsBos(): boolean {
    if (this.bosId === null) return false;
    try {
      const withSpecial = this.lib.encode("a", { add_special_tokens: true }).ids;
      return withSpecial[0] === this.bosId;
    } catch {
      return false;
    }
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const lib = opts.parseSpecial ? this.lib : this.plain();
    const ids = text.length === 0 ? [] : lib.encode(text, { add_special_tokens: false }).ids;
    if ((opts.addBos ?? this.addBos) && this.bosId !== null) ids.unshift(this.bosId);
    return ids;
  }

  private plain(): HfLib {
    if (this.plainLib === undefined) {
      const added = (this.json.added_tokens as { special?: boolean }[]) ?? [];
      const kept = added.filter((t) => !t.special);
      this.plainLib = kept.length === added.length ? null : this.withAddedTokens(kept);
    }
    return this.plainLib ?? this.lib;
  }

  /**
   * A copy of the library tokenizer that matches only the given added tokens. Building a
   * second full tokenizer costs as much as the first (about 1 s for a 128k vocabulary),
   * so when the pinned library's fields are as expected we borrow the added-token
   * splitters of a tokenizer built around an empty model and share everything else.
   */
  private withAddedTokens(kept: unknown[]): HfLib {
    type Internals = { splitter_unnormalized?: unknown; splitter_normalized?: unknown; added_tokens_map?: unknown };
    const full = this.lib as unknown as Internals;
    if (full.splitter_unnormalized !== undefined && full.splitter_normalized !== undefined && full.added_tokens_map instanceof Map) {
      try {
        const emptyModel = { type: "BPE", vocab: {}, merges: [], unk_token: null };
        const small = new HfLib({ ...this.json, model: emptyModel, added_tokens: kept }, this.libConfig) as unknown as Internals;
        const copy = Object.assign(Object.create(Object.getPrototypeOf(this.lib)) as object, this.lib) as Internals;
        copy.splitter_unnormalized = small.splitter_unnormalized;
        copy.splitter_normalized = small.splitter_normalized;
        copy.added_tokens_map = small.added_tokens_map;
        return copy as unknown as HfLib;
      } catch {
        // fall through to a full build
      }
    }
    return new HfLib({ ...this.json, added_tokens: kept }, this.libConfig);
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const valid = ids.filter((id) => Number.isInteger(id) && id >= 0 && id < this.vocabSize);
    if (valid.length === 0) return "";
    return this.lib.decode(valid, { skip_special_tokens: opts.skipSpecial ?? true, clean_up_tokenization_spaces: false });
  }

  idToPiece(id: number): string | undefined {
    return this.lib.id_to_token(id);
  }

  pieceToId(piece: string): number | undefined {
    return this.lib.token_to_id(piece);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }
}

/** tokenizer_config.json's chat_template: a string, or a list of {name, template} (take "default"). */
function pickTemplate(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (Array.isArray(v)) {
    const named = v.filter((x): x is { name: string; template: string } => typeof x?.template === "string");
    return (named.find((x) => x.name === "default") ?? named[0])?.template ?? null;
  }
  return null;
}

function readJson(file: string, required: true): Json;
function readJson(file: string, required: false): Json | undefined;
function readJson(file: string, required: boolean): Json | undefined {
  if (!existsSync(file)) {
    if (required) throw new TokenizerError(file, "file not found", "point at a directory holding tokenizer.json, or at the file itself");
    return undefined;
  }
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new TokenizerError(file, `cannot read: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(file, `not valid JSON: ${(e as Error).message}`, "the file may be truncated or a Git LFS pointer; download it again");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new TokenizerError(file, "expected a JSON object at the top level");
  return v as Json;
}

/** Loads tokenizer.json (a path to it, or to its directory) and its neighbours. */
export function loadHfTokenizer(path: string): HfTokenizer {
  const isDir = existsSync(path) && statSync(path).isDirectory();
  const dir = isDir ? path : dirname(path);
  const tokFile = isDir ? join(dir, "tokenizer.json") : path;
  const tokenizer = readJson(tokFile, true);
  if (typeof tokenizer.model !== "object" || tokenizer.model === null) {
    throw new TokenizerError(tokFile, `no "model" object: this is not a Hugging Face tokenizer.json`, "expected a Hugging Face tokenizer.json (an object with \"model\", \"added_tokens\", ...); vocab.json/merges.txt pairs are not supported");
  }
  const config = readJson(join(dir, "tokenizer_config.json"), false);
  const specialTokensMap = readJson(join(dir, "special_tokens_map.json"), false);
  const generationConfig = readJson(join(dir, "generation_config.json"), false);
  let chatTemplate: string | undefined;
  const jinja = join(dir, "chat_template.jinja");
  if (existsSync(jinja)) chatTemplate = readFileSync(jinja, "utf8");
  else {
    const tplJson = readJson(join(dir, "chat_template.json"), false);
    if (typeof tplJson?.chat_template === "string") chatTemplate = tplJson.chat_template;
  }
  return new HfTokenizer({ tokenizer, config, specialTokensMap, generationConfig, chatTemplate, source: tokFile });
}
