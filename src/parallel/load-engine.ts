/**
 * One way to load any engine dir: a sharded one starts its ranks (ShardedEngine), a
 * single-rank one loads in this thread (Engine.load). What LLM.load calls.
 */
import { Engine, type LoadEngineOptions } from "../engine/engine.js";
import { readManifest } from "../engine/format.js";
import { ShardedEngine, type ShardedLoadOptions } from "./sharded-engine.js";

export async function loadAnyEngine(dir: string, opts: LoadEngineOptions & ShardedLoadOptions = {}): Promise<Engine> {
  return readManifest(dir).parallel ? ShardedEngine.start(dir, opts) : Engine.load(dir, opts);
}
