/** What the runtime needs of any tokenizer, whatever file it came from. */
export interface EncodeOptions {
  /** Prepend BOS. Default: the tokenizer's own `addBos`. */
  addBos?: boolean;
  /** Treat special-token text in the input (e.g. "<s>", "<|im_start|>") as those tokens. Default false. */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Leave out control/special tokens (BOS, EOS, ...). Default true. */
  skipSpecial?: boolean;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosIds: readonly number[];
  /** Whether a prompt gets BOS by default (the model's tokenizer config says; Llama family: yes). */
  readonly addBos: boolean;
  /** Jinja chat template, when the tokenizer files carry one. */
  readonly chatTemplate: string | null;
  encode(text: string, opts?: EncodeOptions): number[];
  /**
   * Text of a token sequence. Like SentencePiece, a sequence-leading dummy-prefix space
   * is dropped, so decode(prompt ++ out).slice(decode(prompt).length) is the continuation.
   */
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  /** The token's piece as stored in the vocabulary (for debugging and logit bias by text). */
  idToPiece(id: number): string | undefined;
  isSpecial(id: number): boolean;
}
