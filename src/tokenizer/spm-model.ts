/**
 * SentencePiece's tokenizer.model (a ModelProto protobuf) read with a minimal wire
 * decoder: the pieces (text, score, type), the trainer's model type and special ids,
 * and the normalizer flags. Only BPE models are supported (Llama 2, Mistral v1);
 * the normalizer's precompiled charsmap is not applied (Llama's is "identity").
 */
import { readFileSync } from "node:fs";
import { TokenizerError } from "../errors.js";
import { SpmTokenizer } from "./spm.js";
import { TokenType } from "./vocab.js";

const HINT = "expected a SentencePiece ModelProto (tokenizer.model); a tokenizer.json or GGUF file works too";

/** Protobuf wire-format reader over one message's bytes. */
class Wire {
  pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly file: string,
  ) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw this.bad("truncated varint");
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
    throw this.bad("varint longer than 10 bytes");
  }

  /** An int32 field: negative values are sent as 10-byte two's-complement varints. */
  int32(): number {
    let v = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw this.bad("truncated varint");
      const b = this.buf[this.pos++];
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return Number(BigInt.asIntN(32, v));
      shift += 7n;
    }
    throw this.bad("varint longer than 10 bytes");
  }

  bytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.buf.length) throw this.bad(`length ${n} runs past the end`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  float(): number {
    if (this.pos + 4 > this.buf.length) throw this.bad("truncated float");
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) this.bytes();
    else if (wireType === 5) this.pos += 4;
    else throw this.bad(`unsupported wire type ${wireType}`);
  }

  /** Calls fn(field, wireType) for each field; fn returns false to have the field skipped. */
  fields(fn: (field: number, wireType: number) => boolean): void {
    while (!this.done) {
      const key = this.varint();
      const field = Math.floor(key / 8);
      const wt = key & 7;
      if (!fn(field, wt)) this.skip(wt);
    }
  }

  private bad(what: string): TokenizerError {
    return new TokenizerError(this.file, `malformed protobuf at byte ${this.pos}: ${what}`, HINT);
  }
}

export interface SpmModelProto {
  pieces: string[];
  scores: number[];
  types: number[];
  modelType: number;
  unkId: number;
  bosId: number;
  eosId: number;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  normalizerName: string;
}

export function parseSpmModelProto(buf: Uint8Array, file: string): SpmModelProto {
  const m: SpmModelProto = {
    pieces: [], scores: [], types: [],
    modelType: 1, unkId: 0, bosId: 1, eosId: 2, // proto defaults
    addDummyPrefix: true, removeExtraWhitespaces: true, normalizerName: "",
  };
  const dec = new TextDecoder("utf-8");
  const top = new Wire(buf, file);
  top.fields((f, wt) => {
    if (wt !== 2) return false;
    if (f === 1) {
      // SentencePiece { 1: piece, 2: score, 3: type }
      let piece = "";
      let score = 0;
      let type: number = TokenType.Normal;
      const w = new Wire(top.bytes(), file);
      w.fields((pf, pwt) => {
        if (pf === 1 && pwt === 2) piece = dec.decode(w.bytes());
        else if (pf === 2 && pwt === 5) score = w.float();
        else if (pf === 3 && pwt === 0) type = w.varint();
        else return false;
        return true;
      });
      m.pieces.push(piece);
      m.scores.push(score);
      m.types.push(type);
    } else if (f === 2) {
      // TrainerSpec { 3: model_type, 40: unk_id, 41: bos_id, 42: eos_id }
      const w = new Wire(top.bytes(), file);
      w.fields((tf, twt) => {
        if (twt !== 0) return false;
        if (tf === 3) m.modelType = w.varint();
        else if (tf === 40) m.unkId = w.int32();
        else if (tf === 41) m.bosId = w.int32();
        else if (tf === 42) m.eosId = w.int32();
        else return false;
        return true;
      });
    } else if (f === 3) {
      // NormalizerSpec { 1: name, 3: add_dummy_prefix, 4: remove_extra_whitespaces }
      const w = new Wire(top.bytes(), file);
      w.fields((nf, nwt) => {
        if (nf === 1 && nwt === 2) m.normalizerName = dec.decode(w.bytes());
        else if (nf === 3 && nwt === 0) m.addDummyPrefix = w.varint() !== 0;
        else if (nf === 4 && nwt === 0) m.removeExtraWhitespaces = w.varint() !== 0;
        else return false;
        return true;
      });
    } else return false;
    return true;
  });
  return m;
}

export function loadSpmModel(file: string): SpmTokenizer {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new TokenizerError(file, `cannot read: ${(e as Error).message}`, "check the path");
  }
  const m = parseSpmModelProto(buf, file);
  if (m.pieces.length === 0) throw new TokenizerError(file, "no pieces in the model", HINT);
  if (m.modelType !== 2) {
    const name = ["", "UNIGRAM", "BPE", "WORD", "CHAR"][m.modelType] ?? String(m.modelType);
    throw new TokenizerError(file, `SentencePiece model type ${name} is not supported (only BPE)`, "use the model's tokenizer.json instead");
  }
  const n = m.pieces.length;
  const id = (v: number) => (v >= 0 && v < n ? v : null);
  return new SpmTokenizer({
    source: file,
    tokens: m.pieces,
    types: Uint8Array.from(m.types),
    scores: Float32Array.from(m.scores),
    bosId: id(m.bosId),
    eosId: id(m.eosId),
    unkId: id(m.unkId),
    addBos: true,
    addSpacePrefix: m.addDummyPrefix,
    removeExtraWhitespaces: m.removeExtraWhitespaces,
    chatTemplate: null,
  });
}

/** Whether bytes start like a ModelProto: field 1 (pieces), length-delimited, holding a field-1 string. */
export function looksLikeSpmModel(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x0a && head.indexOf(0x0a, 1) > 0 && head.indexOf(0x0a, 1) < 6;
}
