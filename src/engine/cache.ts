/**
 * The engine cache: a checkpoint is built once per (checkpoint identity, build options)
 * into $LLMRT_CACHE/<key> (default ~/.cache/llmrt/engines/<key>) and reused. Identity is
 * the resolved paths, sizes and modification times of the checkpoint's files, never a
 * hash of their bytes. Builds go to a temporary dir renamed into place, so a crashed or
 * concurrent build never leaves a half-written engine under the key.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { Checkpoint } from "../checkpoint/types.js";
import { buildEngineDir, type BuildHooks } from "./build.js";
import { ENGINE_FILE, ENGINE_FORMAT_VERSION, readManifest, type EngineManifest } from "./format.js";
import { resolveBuildOptions, type BuildOptions, type BuildRequest } from "./options.js";

export function engineCacheRoot(): string {
  return process.env.LLMRT_CACHE ?? join(homedir(), ".cache", "llmrt", "engines");
}

interface FileStamp {
  path: string;
  size: number;
  mtimeMs: number;
}

function stamp(path: string): FileStamp {
  const s = statSync(path);
  return { path: resolve(path), size: s.size, mtimeMs: s.mtimeMs };
}

/** What identifies a checkpoint's content cheaply: its files' paths, sizes and mtimes. */
export function checkpointIdentity(ckpt: Checkpoint): unknown {
  if (ckpt.format === "synthetic") return { synthetic: ckpt.path, config: ckpt.config }; // weights are a function of both
  const p = resolve(ckpt.path);
  const files = statSync(p).isDirectory()
    ? readdirSync(p).map((n) => join(p, n)).filter((f) => statSync(f).isFile())
    : [p, ...(ckpt.tokenizer.kind === "llama2c" || ckpt.tokenizer.kind === "gguf" ? [ckpt.tokenizer.file] : [])];
  const tok = ckpt.tokenizer;
  if (tok.kind === "hf" && resolve(tok.dir) !== p && existsSync(tok.dir)) {
    const d = resolve(tok.dir);
    files.push(...readdirSync(d).map((n) => join(d, n)).filter((f) => statSync(f).isFile()));
  }
  return { format: ckpt.format, files: [...new Set(files)].sort().map(stamp) };
}

/** `options` resolved (dtype "auto" made concrete), so that asking for auto and for what it resolves to share one entry. */
export function engineCacheKey(ckpt: Checkpoint, options: BuildOptions): string {
  const id = JSON.stringify({ v: ENGINE_FORMAT_VERSION, ckpt: checkpointIdentity(ckpt), options });
  return createHash("sha256").update(id).digest("hex").slice(0, 20);
}

export interface CachedEngine {
  dir: string;
  manifest: EngineManifest;
  /** True when this call built it. */
  built: boolean;
}

/** The cached engine for ckpt + options, built first when missing or unreadable. */
export function ensureCachedEngine(ckpt: Checkpoint, opts: BuildRequest, hooks: BuildHooks = {}, root = engineCacheRoot()): CachedEngine {
  const options = resolveBuildOptions(ckpt.config, opts, ckpt);
  const dir = join(root, engineCacheKey(ckpt, options));
  if (existsSync(join(dir, ENGINE_FILE))) {
    try {
      return { dir, manifest: readManifest(dir), built: false };
    } catch {
      rmSync(dir, { recursive: true, force: true }); // unreadable: rebuild below
    }
  }
  mkdirSync(dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  try {
    const manifest = buildEngineDir(ckpt, tmp, options, hooks);
    try {
      renameSync(tmp, dir);
    } catch (e) {
      // another process finished the same build first: use theirs
      if (!existsSync(join(dir, ENGINE_FILE))) throw e;
      return { dir, manifest: readManifest(dir), built: false };
    }
    return { dir, manifest, built: true };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
