/**
 * Beam search as a pure algorithm over a scoring function, so it runs on top of the
 * in-flight-batching engine (the API layer scores all live beams of a step as one
 * batch of one-token requests; prefix caching shares their KV), as vLLM does.
 *
 * Semantics (those of Hugging Face transformers' beam search, scores from the raw
 * model distribution, no sampling):
 * - each step, every live beam proposes its 2W best next tokens; candidates are ranked
 *   by cumulative logprob (sum of log P(token | prefix) over generated tokens);
 * - a candidate that ends in EOS among the top W of a step becomes a finished
 *   hypothesis with score = cumLogprob / (generatedLength ** lengthPenalty), the EOS
 *   counted in the length; the rest fill the next W live beams;
 * - earlyStopping true: stop once W hypotheses are finished; false (default): stop once
 *   W are finished and no live beam's current score (same formula) beats the worst of
 *   them; "never": run to maxTokens;
 * - at maxTokens the live beams become hypotheses too; the best n are returned.
 */
export interface BeamSearchParams {
  beamWidth: number;
  maxTokens: number;
  /** Exponent on the generated length in the score (default 1; > 1 favours longer outputs). */
  lengthPenalty?: number;
  earlyStopping?: boolean | "never";
  /** Hypotheses returned, best first (default 1, at most beamWidth). */
  n?: number;
  eosIds: readonly number[];
  /** Treat EOS as an ordinary token. */
  ignoreEos?: boolean;
}

export interface BeamHypothesis {
  tokenIds: number[];
  cumLogprob: number;
  score: number;
  finishedByEos: boolean;
}

export interface Candidate {
  token: number;
  logprob: number;
}

/** For each beam (its generated tokens so far), its best next tokens, most likely first. */
export type BeamScorer = (beams: number[][], topN: number) => Promise<Candidate[][]>;

export async function beamSearch(score: BeamScorer, p: BeamSearchParams): Promise<BeamHypothesis[]> {
  const W = p.beamWidth;
  const lp = p.lengthPenalty ?? 1;
  const early = p.earlyStopping ?? false;
  const eos = new Set(p.ignoreEos ? [] : p.eosIds);
  const scoreOf = (cum: number, len: number) => cum / Math.pow(len, lp);
  const finished: BeamHypothesis[] = [];
  let live: { tokenIds: number[]; cumLogprob: number }[] = [{ tokenIds: [], cumLogprob: 0 }];

  for (let step = 0; step < p.maxTokens && live.length > 0; step++) {
    const proposals = await score(live.map((b) => b.tokenIds), 2 * W);
    const cands = live.flatMap((b, i) => proposals[i].map((c) => ({ parent: b, token: c.token, cum: b.cumLogprob + c.logprob })));
    cands.sort((a, b) => b.cum - a.cum);
    const next: typeof live = [];
    for (let rank = 0; rank < cands.length && next.length < W; rank++) {
      const c = cands[rank];
      const tokenIds = [...c.parent.tokenIds, c.token];
      if (eos.has(c.token)) {
        if (rank < W) finished.push({ tokenIds, cumLogprob: c.cum, score: scoreOf(c.cum, tokenIds.length), finishedByEos: true });
      } else {
        next.push({ tokenIds, cumLogprob: c.cum });
      }
    }
    live = next;
    if (done(finished, live, W, early, scoreOf)) break;
  }
  for (const b of live) finished.push({ ...b, score: scoreOf(b.cumLogprob, Math.max(1, b.tokenIds.length)), finishedByEos: false });
  finished.sort((a, b) => b.score - a.score);
  return finished.slice(0, Math.min(p.n ?? 1, W));
}

function done(
  finished: BeamHypothesis[],
  live: { tokenIds: number[]; cumLogprob: number }[],
  W: number,
  early: boolean | "never",
  scoreOf: (cum: number, len: number) => number,
): boolean {
  if (early === "never" || finished.length < W) return false;
  if (early === true) return true;
  const worst = [...finished].sort((a, b) => b.score - a.score)[W - 1].score;
  const bestLive = Math.max(...live.map((b) => scoreOf(b.cumLogprob, b.tokenIds.length)));
  return live.length === 0 || bestLive <= worst;
}
