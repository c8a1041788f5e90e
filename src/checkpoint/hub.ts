/**
 * Hugging Face Hub access: settings from the environment, typed errors, and a
 * download into the standard HF cache layout that resumes and verifies.
 *
 * Metadata goes through @huggingface/hub (modelInfo, listFiles, pathsInfo) and so
 * do the file bytes (downloadFile's range-capable blob). Its own cache download
 * has no resume, no integrity check and no progress, so that part lives here,
 * with a progress reporter for the CLI.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { copyFile, mkdir, open, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, relative } from "node:path";
import cliProgress from "cli-progress";
import { downloadFile, getRepoFolderName, listFiles, modelInfo, pathsInfo } from "@huggingface/hub";
import { LlmrtError } from "../errors.js";

// ─── settings ───────────────────────────────────────────────────────────────

export interface HubSettings {
  /** Base URL, no trailing slash (HF_ENDPOINT; default https://huggingface.co). */
  endpoint: string;
  /** Bearer token (HF_TOKEN, or the file `huggingface-cli login` writes). */
  token?: string;
  /** Root of the cache: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir: string;
  /** HF_HUB_OFFLINE=1: never touch the network. */
  offline: boolean;
}

export function hubSettings(over: Partial<HubSettings> = {}, env: NodeJS.ProcessEnv = process.env): HubSettings {
  const hfHome = env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "huggingface");
  const endpoint = (over.endpoint ?? env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");
  return {
    endpoint,
    token: over.token ?? env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN ?? readTokenFile(env.HF_TOKEN_PATH ?? join(hfHome, "token")),
    cacheDir: over.cacheDir ?? env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE ?? join(hfHome, "hub"),
    offline: over.offline ?? /^(1|true|yes|on)$/i.test(env.HF_HUB_OFFLINE ?? ""),
  };
}

function readTokenFile(path: string): string | undefined {
  if (!existsSync(path)) return undefined;
  const t = readFileSync(path, "utf8").trim();
  return t || undefined;
}

// ─── errors ─────────────────────────────────────────────────────────────────

const NET_HINT =
  "check the connection; set HF_ENDPOINT to use a mirror, HF_TOKEN for private or gated repos, " +
  "HF_HUB_OFFLINE=1 to use only the local cache, or pass a local path instead of a Hub id";

/** Anything that went wrong talking to the Hub or its cache. `url` is the request, if any. */
export class HubError extends LlmrtError {
  constructor(code: string, message: string, readonly url?: string, hint?: string) {
    super(code, message, hint);
  }
}

/** Connection refused, transfer cut, timeout, 5xx/429: worth retrying. */
export class HubNetworkError extends HubError {
  constructor(url: string, readonly problem: string) {
    super("hub_network", `${url}: ${problem}`, url, NET_HINT);
  }
}

/** 401/403: private, gated or nonexistent repo (the Hub answers 401 for all three). */
export class HubAccessError extends HubError {
  constructor(url: string, readonly status: number, problem: string, hasToken: boolean) {
    const hint =
      status === 403
        ? "the repo is gated: accept its terms on the model page with the account whose token is in HF_TOKEN"
        : hasToken
          ? "check the repo id; the token in HF_TOKEN may lack access to it. For a local path, prefix it with ./"
          : "check the repo id; if it is private or gated set HF_TOKEN (https://huggingface.co/settings/tokens). For a local path, prefix it with ./";
    super("hub_access", `${url}: ${status} ${problem}`, url, hint);
  }
}

/** 404: the revision or file does not exist. */
export class HubNotFoundError extends HubError {
  constructor(url: string, problem: string, hint?: string) {
    super("hub_not_found", `${url}: ${problem}`, url, hint ?? "check the revision after @ and the file path");
  }
}

/** A downloaded file's size or hash differs from what the Hub listed. The partial file is deleted. */
export class HubIntegrityError extends HubError {
  constructor(readonly file: string, url: string, problem: string) {
    super("hub_integrity", `${file}: ${problem} (from ${url})`, url, "retry; if it persists the mirror (HF_ENDPOINT) or a proxy may be altering files");
  }
}

/** Offline mode and the cache lacks what was asked for. */
export class HubOfflineError extends HubError {
  constructor(what: string, cacheDir: string) {
    super(
      "hub_offline",
      `offline mode (HF_HUB_OFFLINE) is on and ${what} is not in the cache at ${cacheDir}`,
      undefined,
      "download it once with network access (unset HF_HUB_OFFLINE), or pass a local path",
    );
  }
}

async function httpError(res: Response, url: string, hasToken: boolean): Promise<HubError> {
  let detail = res.headers.get("x-error-message") ?? "";
  try {
    const body = await res.text();
    if (!detail) detail = (JSON.parse(body) as { error?: string }).error ?? body.slice(0, 200);
  } catch {
    // a non-JSON body: keep what the headers said
  }
  const problem = `${res.statusText || "HTTP error"}${detail ? `: ${detail}` : ""}`;
  if (res.status === 401 || res.status === 403) return new HubAccessError(url, res.status, problem, hasToken);
  if (res.status === 404) return new HubNotFoundError(url, `${res.status} ${problem}`);
  if (res.status >= 500 || res.status === 429) return new HubNetworkError(url, `${res.status} ${problem}`);
  return new HubError("hub_http", `${url}: ${res.status} ${problem}`, url, NET_HINT);
}

/**
 * fetch for the library: adds the token (so any token format works, not only hf_*),
 * and turns failures into typed errors before the library sees them. `sink` keeps
 * the last error, because a failing blob stream only reports a message string.
 */
function hubFetch(s: HubSettings, sink: { error?: HubError } = {}): typeof fetch {
  return async (input, init) => {
    const url = (input instanceof Request ? input.url : String(input)).replace(/\?.*$/, ""); // for messages
    const headers = new Headers(init?.headers);
    if (s.token && !headers.has("authorization")) headers.set("authorization", `Bearer ${s.token}`);
    let res: Response;
    try {
      res = await fetch(input, { ...init, headers });
    } catch (e) {
      throw (sink.error = new HubNetworkError(url, describe(e)));
    }
    if (!res.ok) throw (sink.error = await httpError(res, url, !!s.token));
    return res;
  };
}

function describe(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error ? `${e.message} (${cause.message})` : e.message;
  }
  return String(e);
}

// ─── metadata ───────────────────────────────────────────────────────────────

/** A file as the Hub lists it: size, git blob id, and the LFS sha256 where it has one. */
export interface HubFile {
  path: string;
  size: number;
  /** Git blob sha1 (of "blob <size>\0" + content). */
  oid?: string;
  /** sha256 of the content, for LFS files. */
  sha256?: string;
  type: "file" | "directory";
}

export const COMMIT_RE = /^[0-9a-f]{40}$/;

/** The commit a branch, tag or commit id points at now. */
export async function resolveCommit(s: HubSettings, repo: string, revision: string): Promise<string> {
  const info = await modelInfo({ name: repo, revision, additionalFields: ["sha"], hubUrl: s.endpoint, fetch: hubFetch(s) });
  if (typeof info.sha !== "string" || !COMMIT_RE.test(info.sha)) {
    throw new HubError("hub_http", `${s.endpoint}/api/models/${repo}/revision/${revision}: no commit id in the answer`, s.endpoint, NET_HINT);
  }
  return info.sha;
}

/** Every file (recursively) under `path` at `commit`. */
export async function listRepoFiles(s: HubSettings, repo: string, commit: string, path?: string): Promise<HubFile[]> {
  const out: HubFile[] = [];
  for await (const e of listFiles({ repo, revision: commit, recursive: true, path, hubUrl: s.endpoint, fetch: hubFetch(s) })) {
    if (e.type === "file") out.push({ path: e.path, size: e.lfs?.size ?? e.size, oid: e.oid, sha256: e.lfs?.oid, type: "file" });
  }
  return out;
}

/** Info for these exact paths; missing ones are absent from the result. */
export async function pathInfos(s: HubSettings, repo: string, commit: string, paths: string[]): Promise<HubFile[]> {
  const infos = await pathsInfo({ repo, paths, revision: commit, hubUrl: s.endpoint, fetch: hubFetch(s) });
  return infos.map((e) => ({
    path: e.path,
    size: e.lfs?.size ?? e.size,
    oid: e.oid,
    sha256: e.lfs?.oid,
    type: e.type === "directory" ? "directory" : "file",
  }));
}

// ─── cache layout ───────────────────────────────────────────────────────────

/** `<cache>/models--org--name`. */
export function repoCacheDir(s: HubSettings, repo: string): string {
  return join(s.cacheDir, getRepoFolderName({ type: "model", name: repo }));
}

export function snapshotDir(s: HubSettings, repo: string, commit: string): string {
  return join(repoCacheDir(s, repo), "snapshots", commit);
}

/** The commit a revision pointed at when it was last resolved, if the cache knows. */
export async function readRef(s: HubSettings, repo: string, revision: string): Promise<string | undefined> {
  if (COMMIT_RE.test(revision)) return revision;
  try {
    const c = (await readFile(join(repoCacheDir(s, repo), "refs", revision), "utf8")).trim();
    return COMMIT_RE.test(c) ? c : undefined;
  } catch {
    return undefined;
  }
}

export async function writeRef(s: HubSettings, repo: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  const p = join(repoCacheDir(s, repo), "refs", revision);
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, commit);
}

// ─── download ───────────────────────────────────────────────────────────────

export interface DownloadProgress {
  repo: string;
  /** Path inside the repo. */
  file: string;
  downloaded: number;
  total: number;
}

export interface DownloadOptions {
  onProgress?: (p: DownloadProgress) => void;
  /** Attempts per file on network errors; each resumes where the last stopped. Default 3. */
  attempts?: number;
}

/**
 * Makes `snapshots/<commit>/<file.path>` exist, pointing at a verified blob, and returns
 * that path. A present file of the right size is a cache hit (no request). Otherwise the
 * bytes go to `blobs/<etag>.incomplete`, resuming from its current length.
 */
export async function downloadToCache(
  s: HubSettings,
  repo: string,
  commit: string,
  file: HubFile,
  opts: DownloadOptions = {},
): Promise<string> {
  // Paths come from the server: one that climbs out of the snapshot is refused.
  if (file.path.split(/[/\\]/).some((p) => p === ".." || p === "") || isAbsolute(file.path)) {
    throw new HubError("hub_bad_path", `${repo}@${commit}: refusing the file path "${file.path}"`, s.endpoint, "the Hub or mirror (HF_ENDPOINT) sent an unsafe path");
  }
  const pointer = join(snapshotDir(s, repo, commit), file.path);
  if ((await sizeOf(pointer)) === file.size) return pointer;

  const etag = file.sha256 ?? file.oid ?? `${commit}-${file.path.replaceAll("/", "--")}`;
  const blob = join(repoCacheDir(s, repo), "blobs", etag);
  await mkdir(dirname(blob), { recursive: true });
  if ((await sizeOf(blob)) !== file.size) {
    // Files with equal content share a blob: one transfer, the others wait for it.
    let job = inflight.get(blob);
    if (!job) {
      job = fetchBlob(s, repo, commit, file, blob, opts).finally(() => inflight.delete(blob));
      inflight.set(blob, job);
    }
    await job;
  }
  await mkdir(dirname(pointer), { recursive: true });
  await link(blob, pointer);
  return pointer;
}

const inflight = new Map<string, Promise<void>>();

async function fetchBlob(s: HubSettings, repo: string, commit: string, file: HubFile, blob: string, opts: DownloadOptions) {
  const partial = `${blob}.incomplete`;
  const url = `${s.endpoint}/${repo}/resolve/${commit}/${file.path.split("/").map(encodeURIComponent).join("/")}`;
  const attempts = opts.attempts ?? 3;
  for (let attempt = 1; ; attempt++) {
    let offset = (await sizeOf(partial)) ?? 0;
    if (offset > file.size) {
      await rm(partial); // longer than the file: not a prefix of it
      offset = 0;
    }
    try {
      await transfer(s, repo, file, url, partial, offset, opts.onProgress);
      await rename(partial, blob);
      return;
    } catch (e) {
      if (e instanceof HubIntegrityError) {
        await rm(partial, { force: true });
        // A partial left by an earlier run may be the culprit: one fresh try from zero.
        if (offset > 0 && attempt < attempts) continue;
        throw e;
      }
      if (!(e instanceof HubNetworkError) || attempt >= attempts) {
        if (e instanceof HubNetworkError) {
          const have = (await sizeOf(partial)) ?? 0;
          throw new HubNetworkError(url, `${e.problem}; gave up after ${attempt} attempt${attempt > 1 ? "s" : ""} with ${have} of ${file.size} bytes in ${partial} (run again to resume)`);
        }
        throw e;
      }
      await new Promise((r) => setTimeout(r, 250 * attempt));
    }
  }
}

/** One HTTP transfer from `offset` to the end, appended to `partial`, then verified. */
async function transfer(
  s: HubSettings,
  repo: string,
  file: HubFile,
  url: string,
  partial: string,
  offset: number,
  onProgress?: (p: DownloadProgress) => void,
) {
  const hash = await hashPrefix(file, partial, offset);
  let done = offset;
  const report = throttled(onProgress, (downloaded) => ({ repo, file: file.path, downloaded, total: file.size }));
  report(done, true);
  if (offset < file.size) {
    const sink: { error?: HubError } = {};
    // downloadFile gives a blob over the URL; slicing it makes the Range request.
    const whole = await downloadFile({
      repo,
      path: file.path,
      fetch: hubFetch(s, sink),
      downloadInfo: { size: file.size, etag: file.sha256 ?? file.oid ?? "", url },
    });
    if (!whole) throw new HubNotFoundError(url, "file not found");
    const fh = await open(partial, "a");
    try {
      for await (const chunk of whole.slice(offset).stream()) {
        const bytes = chunk as Uint8Array;
        if (done + bytes.length > file.size) {
          throw new HubIntegrityError(file.path, url, `server sent more than the listed ${file.size} bytes (Range ignored?)`);
        }
        hash?.update(bytes);
        await fh.write(bytes);
        done += bytes.length;
        if (done < file.size) report(done, false); // the end is reported once, after the check
      }
    } catch (e) {
      if (e instanceof HubError) throw e;
      if (sink.error) throw sink.error;
      throw new HubNetworkError(url, `transfer interrupted at byte ${done} of ${file.size}: ${describe(e)}`);
    } finally {
      await fh.close();
    }
  }
  if (done !== file.size) throw new HubNetworkError(url, `transfer ended at byte ${done} of ${file.size}`);
  const got = hash?.digest("hex");
  const want = file.sha256 ?? file.oid;
  if (got !== undefined && got !== want) {
    throw new HubIntegrityError(file.path, url, `${file.sha256 ? "sha256" : "git blob sha1"} is ${got}, the Hub lists ${want}`);
  }
  report(done, true);
}

/** A hasher fed with the bytes already on disk, or undefined when the Hub stated no hash. */
async function hashPrefix(file: HubFile, partial: string, offset: number): Promise<Hash | undefined> {
  let h: Hash;
  if (file.sha256) h = createHash("sha256");
  else if (file.oid && /^[0-9a-f]{40}$/.test(file.oid)) h = createHash("sha1").update(`blob ${file.size}\0`);
  else return undefined;
  if (offset > 0) for await (const c of createReadStream(partial, { end: offset - 1 })) h.update(c as Buffer);
  return h;
}

function throttled(cb: ((p: DownloadProgress) => void) | undefined, make: (n: number) => DownloadProgress) {
  let last = 0;
  return (n: number, force: boolean) => {
    const now = Date.now();
    if (!cb || (!force && now - last < 100)) return;
    last = now;
    cb(make(n));
  };
}

async function sizeOf(p: string): Promise<number | undefined> {
  try {
    return (await stat(p)).size;
  } catch {
    return undefined;
  }
}

/** Relative symlink like huggingface_hub makes; a copy where symlinks are not allowed (Windows). */
async function link(blob: string, pointer: string) {
  await rm(pointer, { force: true });
  try {
    await symlink(relative(dirname(pointer), blob), pointer);
  } catch {
    await copyFile(blob, pointer);
  }
}

// ─── progress ───────────────────────────────────────────────────────────────

/** Accepts any `{file, downloaded, total}` event; `repo`, when given, prefixes the name. */
export type ProgressReporter = ((p: ProgressEvent) => void) & { stop(): void };
export type ProgressEvent = Omit<DownloadProgress, "repo"> & { repo?: string };
const label = (p: ProgressEvent) => (p.repo ? `${p.repo}/${p.file}` : p.file);

/** Bars on a TTY; elsewhere (logs, CI) a line per file at start, each quarter and the end. */
export function cliProgressReporter(stream: NodeJS.WriteStream = process.stderr): ProgressReporter {
  return stream.isTTY ? barReporter(stream) : lineReporter(stream);
}

function lineReporter(stream: NodeJS.WritableStream): ProgressReporter {
  const seen = new Map<string, number>();
  const report = (p: ProgressEvent) => {
    const key = label(p);
    const q = p.total === 0 ? 4 : Math.floor((4 * p.downloaded) / p.total);
    const prev = seen.get(key);
    if (prev === undefined) {
      const resume = p.downloaded > 0 ? `, resuming at ${formatBytes(p.downloaded)}` : "";
      stream.write(`downloading ${key} (${formatBytes(p.total)}${resume})\n`);
      seen.set(key, Math.min(q, 3)); // the end always gets its line
    } else if (q > prev) {
      stream.write(q >= 4 ? `${key}: done\n` : `${key}: ${q * 25}% (${formatBytes(p.downloaded)} of ${formatBytes(p.total)})\n`);
      seen.set(key, q);
    }
  };
  return Object.assign(report, { stop: () => seen.clear() });
}

function barReporter(stream: NodeJS.WriteStream): ProgressReporter {
  let multi: cliProgress.MultiBar | undefined;
  const bars = new Map<string, cliProgress.SingleBar>();
  const running = new Set<string>();
  const finished = new Set<string>(); // outlives stop(): a late event must not redraw a done bar
  const stop = () => {
    multi?.stop();
    multi = undefined;
    bars.clear();
    running.clear();
  };
  const report = (p: ProgressEvent) => {
    const key = label(p);
    if (finished.has(key)) return;
    const payload = { file: key, done: formatBytes(p.downloaded), size: formatBytes(p.total) };
    multi ??= new cliProgress.MultiBar(
      { stream, hideCursor: true, format: "{bar} {percentage}% | {done} / {size} | {file}" },
      cliProgress.Presets.shades_classic,
    );
    const bar = bars.get(key);
    if (!bar) {
      bars.set(key, multi.create(p.total, p.downloaded, payload));
      running.add(key);
    } else bar.update(p.downloaded, payload);
    if (p.downloaded >= p.total) {
      running.delete(key);
      finished.add(key);
    }
    if (running.size === 0) stop(); // leaves the finished bars on screen
  };
  return Object.assign(report, { stop });
}

export function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) (n /= 1000), i++;
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}
