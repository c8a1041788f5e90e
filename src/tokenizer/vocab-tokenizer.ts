/**
 * The part of the SentencePiece and byte-level BPE tokenizers that does not depend on
 * the merge algorithm: lookups, special-token handling, BOS, and byte-exact decoding.
 */
import { TokenizerError } from "../errors.js";
import type { DecodeOptions, EncodeOptions, Tokenizer } from "./types.js";
import { endOfGenerationIds, sortSpecials, splitOnSpecialTokens, TokenType, type Fragment, type SpecialToken } from "./vocab.js";

export interface VocabSpec {
  /** The file the vocabulary came from (error messages name it). */
  source: string;
  /** Token texts as stored: SentencePiece pieces use "▁" for space, byte-level BPE its byte alphabet. */
  tokens: string[];
  /** One TokenType per token. */
  types: Uint8Array;
  bosId: number | null;
  eosId: number | null;
  unkId: number | null;
  addBos: boolean;
  chatTemplate: string | null;
  /** More end-of-generation ids (e.g. generation_config.json's list). */
  extraEosIds?: readonly number[];
  /** Per-token whitespace stripping around special-token matches (HF lstrip/rstrip). */
  strip?: ReadonlyMap<number, { lstrip?: boolean; rstrip?: boolean }>;
}

const utf8 = new TextDecoder("utf-8");

/** Where a decode stands: whether a visible token has been seen yet (for the dummy-prefix rule). */
export interface DecodeState {
  atStart: boolean;
}

/** A tokenizer whose decode is a byte stream, token by token (what the incremental detokenizer prefers). */
export interface ByteStepDecoder {
  decodeStep(id: number, state: DecodeState, skipSpecial?: boolean): Uint8Array | null;
}

export abstract class VocabTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosIds: readonly number[];
  readonly addBos: boolean;
  readonly chatTemplate: string | null;
  readonly source: string;
  protected readonly tokens: string[];
  protected readonly types: Uint8Array;
  protected readonly unkId: number | null;
  protected readonly toId: Map<string, number>;
  /** Always split out (user-defined tokens), and split out only when parseSpecial. */
  private readonly specialsAlways: SpecialToken[];
  private readonly specialsParse: SpecialToken[];
  /** Bytes each token contributes to decoded text, built on first use. */
  private readonly bytesCache: (Uint8Array | undefined)[];

  constructor(spec: VocabSpec) {
    if (spec.types.length !== spec.tokens.length) {
      throw new TokenizerError(spec.source, `${spec.tokens.length} tokens but ${spec.types.length} token types`, "the vocabulary file is inconsistent; re-export it");
    }
    this.source = spec.source;
    this.tokens = spec.tokens;
    this.types = spec.types;
    this.vocabSize = spec.tokens.length;
    this.bosId = spec.bosId;
    this.unkId = spec.unkId;
    this.addBos = spec.addBos;
    this.chatTemplate = spec.chatTemplate;
    this.toId = new Map();
    // First id wins on duplicate texts (some vocabularies repeat a piece).
    for (let i = 0; i < spec.tokens.length; i++) if (!this.toId.has(spec.tokens[i])) this.toId.set(spec.tokens[i], i);
    this.eosIds = endOfGenerationIds(spec.eosId, (t) => this.toId.get(t), spec.extraEosIds);
    const always: SpecialToken[] = [];
    const parse: SpecialToken[] = [];
    for (let i = 0; i < spec.tokens.length; i++) {
      const ty = spec.types[i];
      if (ty !== TokenType.UserDefined && ty !== TokenType.Control && ty !== TokenType.Unknown) continue;
      const st: SpecialToken = { id: i, text: spec.tokens[i], ...spec.strip?.get(i) };
      parse.push(st);
      if (ty === TokenType.UserDefined) always.push(st);
    }
    this.specialsAlways = sortSpecials(always);
    this.specialsParse = sortSpecials(parse);
    this.bytesCache = new Array(spec.tokens.length);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if ((opts.addBos ?? this.addBos) && this.bosId !== null) out.push(this.bosId);
    const frags = splitOnSpecialTokens(text, opts.parseSpecial ? this.specialsParse : this.specialsAlways);
    this.encodeFragments(frags, out);
    return out;
  }

  /** Appends the ids of text fragments (strings) and pre-matched tokens (numbers) to out. */
  protected abstract encodeFragments(frags: Fragment[], out: number[]): void;

  /** The bytes a normal (or byte) token stands for. */
  protected abstract normalBytes(id: number): Uint8Array;

  /** Whether a leading space of the first visible token is dropped on decode (SentencePiece dummy prefix). */
  protected abstract get stripsDummyPrefix(): boolean;

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const skip = opts.skipSpecial ?? true;
    const state: DecodeState = { atStart: true };
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const id of ids) {
      const b = this.decodeStep(id, state, skip);
      if (b === null) continue;
      parts.push(b);
      total += b.length;
    }
    const all = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return utf8.decode(all);
  }

  /**
   * The bytes token `id` adds to the decoded text, given what came before (state), or
   * null for nothing. decode() is these bytes concatenated and read as UTF-8, so a
   * streaming UTF-8 decoder over them gives exactly decode()'s text.
   */
  decodeStep(id: number, state: DecodeState, skipSpecial = true): Uint8Array | null {
    let b = this.tokenBytes(id, skipSpecial);
    if (b === null) return null;
    const ty = this.types[id];
    if (state.atStart && this.stripsDummyPrefix && ty === TokenType.Normal && b.length > 0 && b[0] === 0x20) b = b.subarray(1);
    // A control token shown as text does not end the "sequence start" (SentencePiece renders it empty).
    if (ty !== TokenType.Control) state.atStart = false;
    return b;
  }

  /** Bytes of one token as decode renders it, or null when it renders as nothing. */
  tokenBytes(id: number, skipSpecial = true): Uint8Array | null {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) return null;
    const ty = this.types[id];
    if (ty === TokenType.Control || ty === TokenType.Unknown || ty === TokenType.Unused) {
      if (!skipSpecial) return Buffer.from(this.tokens[id], "utf8");
      // SentencePiece shows <unk> as " ⁇ " so the loss is visible.
      if (ty === TokenType.Unknown && id === this.unkId) return UNK_SURFACE;
      return null;
    }
    let b = this.bytesCache[id];
    if (b === undefined) {
      b = ty === TokenType.UserDefined ? Buffer.from(this.tokens[id], "utf8") : this.normalBytes(id);
      this.bytesCache[id] = b;
    }
    return b;
  }

  idToPiece(id: number): string | undefined {
    return this.tokens[id];
  }

  pieceToId(piece: string): number | undefined {
    return this.toId.get(piece);
  }

  tokenType(id: number): TokenType | undefined {
    return id >= 0 && id < this.vocabSize ? (this.types[id] as TokenType) : undefined;
  }

  isSpecial(id: number): boolean {
    const ty = this.types[id];
    return ty === TokenType.Control || ty === TokenType.Unknown;
  }
}

const UNK_SURFACE = Buffer.from(" \u2047 ", "utf8");
