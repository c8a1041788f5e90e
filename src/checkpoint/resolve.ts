/**
 * `--model` resolution: a local path is used as-is; a Hub id (`org/name`,
 * `org/name@rev`, `org/name[@rev]/path/in/repo`) is fetched into the HF cache,
 * only the files inference needs, and the local snapshot path is returned.
 */
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { CheckpointError, OptionError, UnsupportedModelError } from "../errors.js";
import {
  COMMIT_RE,
  downloadToCache,
  type DownloadOptions,
  type HubFile,
  type HubSettings,
  HubNetworkError,
  HubNotFoundError,
  HubOfflineError,
  hubSettings,
  listRepoFiles,
  pathInfos,
  readRef,
  resolveCommit,
  snapshotDir,
  writeRef,
} from "./hub.js";

/** What inference reads from a Hugging Face model repo (repo root only: `*` stops at `/`). */
export const INFERENCE_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
  "chat_template.jinja", // newer repos keep the chat template here, not in tokenizer_config.json
  "*.safetensors",
  "*.safetensors.index.json",
];

export interface ResolveOptions extends DownloadOptions {
  /** Cache root; default HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Globs (`*`, `?`, `**`) over repo paths; default INFERENCE_FILES. */
  allowPatterns?: string[];
  /** Default HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Default HF_TOKEN. */
  token?: string;
  /** Default HF_HUB_OFFLINE. */
  offline?: boolean;
}

export type ModelSpec = { kind: "local"; path: string } | { kind: "hub"; repo: string; revision?: string; file?: string };

const NAME = "[A-Za-z0-9][A-Za-z0-9._-]*";
// A revision stops at the next "/", except the Hub's PR refs which contain two.
const HUB_ID = new RegExp(`^(${NAME}/${NAME})(?:@(refs/pr/\\d+|[^/]+))?(?:/(.+))?$`);
const LOOKS_LOCAL = /^(\.\.?([/\\]|$)|[/\\~]|[A-Za-z]:[/\\])|\\/;

// A pasted page or file URL: huggingface.co/org/name[/blob|resolve|tree/<rev>[/path]].
const HUB_URL = /^(?:https?:\/\/)?(?:huggingface\.co|hf\.co)\/([^/]+\/[^/?#]+)(?:\/(?:blob|resolve|tree)\/([^/?#]+)(?:\/([^?#]*))?)?\/?(?:[?#].*)?$/;

/** Local if it looks like a path or exists; else a Hub id (or Hub URL) if it parses as one; else local (and missing). */
export function parseModelSpec(spec: string): ModelSpec {
  const path = spec === "~" || spec.startsWith("~/") ? join(homedir(), spec.slice(1)) : spec;
  if (LOOKS_LOCAL.test(spec) || existsSync(path)) return { kind: "local", path };
  const u = HUB_URL.exec(spec);
  if (u) spec = `${u[1]}${u[2] ? `@${decodeURIComponent(u[2])}` : ""}${u[3] ? `/${u[3]}` : ""}`;
  const m = HUB_ID.exec(spec.replace(/\/+$/, ""));
  const file = m?.[3];
  if (!m || (file && file.split("/").some((p) => p === "" || p === "." || p === ".."))) return { kind: "local", path };
  return { kind: "hub", repo: m[1], revision: m[2], file };
}

/**
 * Returns a local path for `spec`: the path itself, the snapshot directory of a Hub
 * repo, or the file for a single-file spec (the first part of a split GGUF).
 */
export async function resolveModel(spec: string, opts: ResolveOptions = {}): Promise<string> {
  const m = parseModelSpec(spec);
  if (m.kind === "local") {
    if (existsSync(m.path)) return m.path;
    throw new CheckpointError(
      m.path,
      "no such file or directory",
      "pass an existing path, or a Hugging Face Hub id: org/name, org/name@revision or org/name/file.gguf",
    );
  }
  const s = hubSettings({ cacheDir: opts.cacheDir, endpoint: opts.endpoint, token: opts.token, offline: opts.offline });
  const revision = m.revision ?? "main";
  // Offline, or a file pinned to a commit: the cache answers without asking the Hub.
  if (s.offline || (m.file && COMMIT_RE.test(revision))) {
    const hit = await fromCache(s, m.repo, revision, m.file);
    if (hit) return hit;
    if (s.offline) throw new HubOfflineError(`${m.repo}@${revision}${m.file ? `/${m.file}` : ""}`, s.cacheDir);
  }
  let commit: string;
  try {
    commit = await resolveCommit(s, m.repo, revision);
  } catch (e) {
    const hit = e instanceof HubNetworkError ? await fromCache(s, m.repo, revision, m.file) : null;
    if (!hit) throw e;
    const net = e as HubNetworkError;
    process.emitWarning(`${net.url}: ${net.problem}; using the cached ${hit}`, { code: "LLMRT_HUB_FALLBACK" });
    return hit;
  }
  await writeRef(s, m.repo, revision, commit);
  const ctx: Ctx = { s, repo: m.repo, commit, opts };
  return m.file ? fetchPath(ctx, m.file) : fetchRepo(ctx, "");
}

interface Ctx {
  s: HubSettings;
  repo: string;
  commit: string;
  opts: ResolveOptions;
}

/** A whole repo, or a folder of it: the files inference needs. */
async function fetchRepo(ctx: Ctx, base: string): Promise<string> {
  const { s, repo, commit, opts } = ctx;
  const all = await listRepoFiles(s, repo, commit, base || undefined);
  const rel = (f: HubFile) => (base ? f.path.slice(base.length + 1) : f.path);
  const where = `${repo}@${commit.slice(0, 10)}${base ? `/${base}` : ""}`;
  const patterns = (opts.allowPatterns ?? INFERENCE_FILES).map(globToRegExp);
  let chosen = all.filter((f) => patterns.some((p) => p.test(rel(f))));
  if (!opts.allowPatterns) {
    if (!chosen.some((f) => rel(f) === "config.json")) return fetchOnlyGguf(ctx, all, where);
    chosen = await keepIndexedShards(ctx, chosen, rel);
    if (!chosen.some((f) => f.path.endsWith(".safetensors"))) {
      const others = all.filter((f) => /\.(bin|pt|pth|ckpt|h5|msgpack)$/.test(f.path)).map(rel);
      throw new UnsupportedModelError(
        `${where} has config.json but no *.safetensors weights${others.length ? ` (it has ${others.slice(0, 3).join(", ")})` : ""}`,
        "llmrt reads safetensors and GGUF: look for a safetensors or GGUF upload of this model",
      );
    }
  } else if (chosen.length === 0) {
    throw new OptionError("allowPatterns", `no file of ${where} matches ${opts.allowPatterns.join(", ")}`);
  }
  await downloadAll(ctx, chosen);
  const dir = join(snapshotDir(s, repo, commit), base);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** A repo with no config.json is usable if it holds exactly one GGUF model. */
async function fetchOnlyGguf(ctx: Ctx, all: HubFile[], where: string): Promise<string> {
  const firsts = all.filter((f) => f.path.endsWith(".gguf") && !/-(?!00001)\d{5}-of-\d{5}\.gguf$/.test(f.path));
  if (firsts.length === 1) return fetchPath(ctx, firsts[0].path);
  if (firsts.length === 0) {
    throw new UnsupportedModelError(`${where} has neither config.json nor a .gguf file`, "check the repo id; llmrt reads Hugging Face safetensors repos and GGUF files");
  }
  const names = firsts.slice(0, 8).map((f) => `${ctx.repo}/${f.path}`);
  throw new OptionError("model", `${where} holds ${firsts.length} GGUF files and no config.json`, `name one: ${names.join(", ")}${firsts.length > 8 ? ", ..." : ""}`);
}

/** With a shard index, fetch only the shards it names (repos often also carry a consolidated copy). */
async function keepIndexedShards(ctx: Ctx, chosen: HubFile[], rel: (f: HubFile) => string): Promise<HubFile[]> {
  const indexes = chosen.filter((f) => rel(f).endsWith(".safetensors.index.json"));
  const index = indexes.find((f) => rel(f) === "model.safetensors.index.json") ?? indexes[0];
  if (!index) return chosen;
  const local = await downloadToCache(ctx.s, ctx.repo, ctx.commit, index, ctx.opts);
  let shards: Set<string>;
  try {
    const map = (JSON.parse(await readFile(local, "utf8")) as { weight_map?: Record<string, string> }).weight_map;
    shards = new Set(Object.values(map ?? {}));
  } catch (e) {
    throw new CheckpointError(local, `not valid JSON: ${(e as Error).message}`);
  }
  const kept = chosen.filter((f) => (f.path.endsWith(".safetensors") ? shards.has(rel(f)) : f === index || !indexes.includes(f)));
  const missing = [...shards].filter((n) => !kept.some((f) => rel(f) === n));
  if (missing.length) throw new CheckpointError(local, `weight_map names ${missing.join(", ")}, which the repo does not have`);
  return kept;
}

/** A file (every part of a split GGUF) or a folder inside the repo. */
async function fetchPath(ctx: Ctx, file: string): Promise<string> {
  const { s, repo, commit } = ctx;
  const parts = ggufParts(file);
  const infos = await pathInfos(s, repo, commit, parts);
  const hit = infos.find((f) => f.path === file);
  if (hit?.type === "directory") return fetchRepo(ctx, file);
  const missing = parts.filter((p) => !infos.some((f) => f.path === p && f.type === "file"));
  if (missing.length) {
    const ext = file.includes(".") ? file.slice(file.lastIndexOf(".")) : "";
    const alike = (await listRepoFiles(s, repo, commit)).filter((f) => ext && f.path.endsWith(ext)).map((f) => f.path);
    throw new HubNotFoundError(
      `${s.endpoint}/${repo}/tree/${commit}`,
      `${repo}@${commit.slice(0, 10)} has no file ${missing[0]}`,
      alike.length ? `files with that extension: ${alike.slice(0, 10).join(", ")}${alike.length > 10 ? ", ..." : ""}` : "check the path after the repo id",
    );
  }
  await downloadAll(ctx, infos);
  return join(snapshotDir(s, repo, commit), parts[0]);
}

/** `x-00002-of-00003.gguf` → all three part names, first first; any other path → itself. */
function ggufParts(file: string): string[] {
  const m = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/.exec(file);
  if (!m) return [file];
  const n = Number(m[3]);
  return Array.from({ length: n }, (_, i) => `${m[1]}-${String(i + 1).padStart(5, "0")}-of-${m[3]}.gguf`);
}

/** Up to 4 files at a time; on a failure, start no more, let running ones finish, rethrow the first. */
async function downloadAll(ctx: Ctx, files: HubFile[]): Promise<void> {
  let next = 0;
  let failure: { e: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < files.length) {
      const f = files[next++];
      try {
        await downloadToCache(ctx.s, ctx.repo, ctx.commit, f, ctx.opts);
      } catch (e) {
        failure ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, files.length) }, worker));
  if (failure) throw failure.e;
}

/** The cached answer for a spec, without the network, or null. */
async function fromCache(s: HubSettings, repo: string, revision: string, file?: string): Promise<string | null> {
  const commit = await readRef(s, repo, revision);
  if (!commit) return null;
  const snap = snapshotDir(s, repo, commit);
  if (file) {
    const p = join(snap, ggufParts(file)[0]);
    return ggufParts(file).every((q) => existsSync(join(snap, q))) ? p : null;
  }
  if (existsSync(join(snap, "config.json"))) return snap;
  if (!existsSync(snap)) return null;
  const ggufs = (await readdir(snap, { recursive: true })).filter((p) => p.endsWith(".gguf") && !/-(?!00001)\d{5}-of-\d{5}\.gguf$/.test(p));
  return ggufs.length === 1 ? join(snap, ggufs[0]) : null;
}

/** `*` and `?` stay within one path segment; `**` crosses them (`**\/` may match nothing). */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (glob.startsWith("**/", i)) (re += "(?:.*/)?"), (i += 2);
    else if (glob.startsWith("**", i)) (re += ".*"), (i += 1);
    else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}
