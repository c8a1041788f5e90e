/** The tokenizer module's public surface. */
export type { DecodeOptions, EncodeOptions, Tokenizer } from "./types.js";
export { loadTokenizer, loadTokenizerSync, detectTokenizerFile, type TokenizerFileKind } from "./load.js";
export { IncrementalDetokenizer } from "./detokenizer.js";
export {
  applyChatTemplate,
  applyTokenizerChatTemplate,
  encodeChatPrompt,
  ChatTemplateError,
  type ChatMessage,
  type ChatTemplateOptions,
} from "./chat-template.js";
export { HfTokenizer, loadHfTokenizer } from "./hf.js";
export { SpmTokenizer } from "./spm.js";
export { BpeTokenizer } from "./bpe.js";
export { loadGgufTokenizer, tokenizerFromGguf, type GgufMetaLike } from "./gguf.js";
export { loadLlama2cTokenizer, parseLlama2cTokenizer } from "./llama2c.js";
export { loadSpmModel } from "./spm-model.js";
export { TokenType } from "./vocab.js";
