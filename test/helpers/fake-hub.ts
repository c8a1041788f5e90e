/**
 * A Hugging Face Hub stand-in on 127.0.0.1 for tests: the routes @huggingface/hub
 * and our downloader call, in the Hub's URL layout, with faults to inject.
 *
 *   GET  /api/models/{repo}/revision/{rev}          model info (sha = commit)
 *   GET  /api/models/{repo}/tree/{rev}[/{dir}]       listing (lfs.oid = sha256)
 *   POST /api/models/{repo}/paths-info/{rev}         info for given paths
 *   GET  /{repo}/resolve/{rev}/{file}                small files directly, LFS ones by 302 to /cdn/{sha256}
 *   GET  /cdn/{sha256}                               LFS bytes (no auth, like a signed CDN URL)
 * File bodies honour Range. Private repos want `Authorization: Bearer <token>`.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface LoggedRequest {
  method: string;
  url: string;
  range?: string;
  auth?: string;
  /** Set when the answer carried file bytes: the repo path served. */
  served?: string;
}

interface Blob {
  data: Buffer;
  oid: string; // git blob sha1
  sha256: string;
  lfs: boolean;
}

interface Repo {
  private: boolean;
  commits: Map<string, Map<string, Blob>>;
  refs: Map<string, string>;
}

interface TreeEntry {
  type: "file" | "directory";
  oid: string;
  size: number;
  path: string;
  lfs?: { oid: string; size: number; pointerSize: number };
}

const LFS_EXT = /\.(safetensors|gguf|bin|model|pt)$/;

export class FakeHub {
  readonly requests: LoggedRequest[] = [];
  /** file path → cut the body after this many bytes, `times` times. */
  readonly cuts = new Map<string, { after: number; times: number }>();
  /** file paths whose served bytes are altered (listing keeps the true hashes). */
  readonly corrupt = new Set<string>();
  /** Answer Range requests with the whole file (200), as some proxies do. */
  ignoreRange = false;
  private repos = new Map<string, Repo>();
  private blobs = new Map<string, Blob>();
  private commitCounter = 0;

  private constructor(
    private server: Server,
    readonly url: string,
    readonly token: string,
  ) {}

  static async start(token = "hf_fake_test_token"): Promise<FakeHub> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    const hub = new FakeHub(server, `http://127.0.0.1:${port}`, token);
    server.on("request", (req, res) => {
      hub.handle(req, res).catch((e) => {
        res.statusCode = 500;
        res.end(String(e));
      });
    });
    return hub;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  /** Adds a commit holding `files`; the refs (default main) point at it. Returns the commit id. */
  addCommit(repo: string, files: Record<string, string | Uint8Array>, opts: { refs?: string[]; private?: boolean } = {}): string {
    const r = this.repos.get(repo) ?? { private: false, commits: new Map(), refs: new Map() };
    this.repos.set(repo, r);
    if (opts.private !== undefined) r.private = opts.private;
    const tree = new Map<string, Blob>();
    for (const [path, content] of Object.entries(files)) {
      const data = Buffer.from(content);
      const blob: Blob = {
        data,
        oid: createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex"),
        sha256: createHash("sha256").update(data).digest("hex"),
        lfs: LFS_EXT.test(path),
      };
      tree.set(path, blob);
      this.blobs.set(blob.sha256, blob);
    }
    const commit = createHash("sha1").update(`${repo} ${++this.commitCounter}`).digest("hex");
    r.commits.set(commit, tree);
    for (const ref of opts.refs ?? ["main"]) r.refs.set(ref, commit);
    return commit;
  }

  /** Requests that were answered with a file's bytes (of `path`, if given). */
  downloads(path?: string): LoggedRequest[] {
    return this.requests.filter((q) => q.served !== undefined && (path === undefined || q.served === path));
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    const url = req.url ?? "/";
    const log: LoggedRequest = { method: req.method ?? "GET", url, range: req.headers.range, auth: req.headers.authorization };
    this.requests.push(log);
    const u = new URL(url, this.url);
    const parts = u.pathname.split("/").slice(1).map(decodeURIComponent);

    if (parts[0] === "cdn") {
      const blob = this.blobs.get(parts[1]);
      if (!blob) return json(res, 404, { error: "no such blob" });
      return this.sendBytes(req, res, log, blob, u.searchParams.get("file") ?? "", {});
    }
    const api = parts[0] === "api";
    if (api && parts[1] !== "models") return json(res, 404, { error: "only models" });
    const [org, name, verb, ...rest] = api ? parts.slice(2) : parts;
    const repoId = `${org}/${name}`;
    const repo = this.repos.get(repoId);
    const authorized = req.headers.authorization === `Bearer ${this.token}`;
    if (!repo || (repo.private && !authorized)) {
      // The Hub answers 401 for missing and for private repos alike.
      return json(res, 401, { error: "Repository not found" }, { "x-error-code": "RepoNotFound" });
    }

    if (api && verb === "revision") {
      const commit = this.commitOf(repo, rest.join("/"));
      if (!commit) return json(res, 404, { error: `Invalid rev id: ${rest.join("/")}` }, { "x-error-code": "RevisionNotFound" });
      return json(res, 200, { _id: "x", id: repoId, sha: commit, private: repo.private, lastModified: new Date(0).toISOString(), downloads: 0, likes: 0, gated: false });
    }
    if (api && verb === "tree") {
      const commit = this.commitOf(repo, rest[0]);
      if (!commit) return json(res, 404, { error: "Invalid rev id" }, { "x-error-code": "RevisionNotFound" });
      const dir = rest.slice(1).join("/");
      const recursive = u.searchParams.get("recursive") === "true";
      return json(res, 200, this.listing(repo.commits.get(commit)!, dir, recursive));
    }
    if (api && verb === "paths-info") {
      const commit = this.commitOf(repo, rest.join("/"));
      if (!commit) return json(res, 404, { error: "Invalid rev id" }, { "x-error-code": "RevisionNotFound" });
      const body = JSON.parse(await readBody(req)) as { paths: string[] };
      const all = this.listing(repo.commits.get(commit)!, "", true);
      return json(res, 200, all.filter((e) => body.paths.includes(e.path)));
    }
    if (!api && verb === "resolve") {
      const commit = this.commitOf(repo, rest[0]);
      const path = rest.slice(1).join("/");
      const blob = commit ? repo.commits.get(commit)!.get(path) : undefined;
      if (!commit || !blob) return json(res, 404, { error: "Entry not found" }, { "x-error-code": "EntryNotFound" });
      const meta = { "x-repo-commit": commit };
      if (blob.lfs) {
        res.writeHead(302, {
          ...meta,
          location: `/cdn/${blob.sha256}?file=${encodeURIComponent(path)}`,
          "x-linked-etag": `"${blob.sha256}"`,
          "x-linked-size": String(blob.data.length),
        });
        return res.end();
      }
      return this.sendBytes(req, res, log, blob, path, meta);
    }
    json(res, 404, { error: `no route ${url}` });
  }

  private commitOf(repo: Repo, rev: string): string | undefined {
    return repo.commits.has(rev) ? rev : repo.refs.get(rev);
  }

  private listing(tree: Map<string, Blob>, dir: string, recursive: boolean): TreeEntry[] {
    const out: TreeEntry[] = [];
    const dirs = new Set<string>();
    for (const [path, b] of tree) {
      if (dir && !path.startsWith(`${dir}/`)) continue;
      const rest = dir ? path.slice(dir.length + 1) : path;
      const segs = rest.split("/");
      for (let i = 1; i < segs.length; i++) {
        if (recursive || i === 1) dirs.add([dir, ...segs.slice(0, i)].filter(Boolean).join("/"));
      }
      if (!recursive && segs.length > 1) continue;
      out.push({
        type: "file",
        oid: b.oid,
        size: b.data.length,
        path,
        ...(b.lfs && { lfs: { oid: b.sha256, size: b.data.length, pointerSize: 134 } }),
      });
    }
    return [...[...dirs].map((path): TreeEntry => ({ type: "directory", oid: "0".repeat(40), size: 0, path })), ...out];
  }

  private sendBytes(req: IncomingMessage, res: ServerResponse, log: LoggedRequest, blob: Blob, path: string, headers: Record<string, string>) {
    log.served = path;
    let data = blob.data;
    if (this.corrupt.has(path)) {
      data = Buffer.from(data);
      data[data.length >> 1] ^= 0xff;
    }
    const size = data.length;
    let start = 0;
    let end = size - 1;
    let status = 200;
    const m = this.ignoreRange ? null : /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (m) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      if (start >= size || start > end) {
        res.writeHead(416, { "content-range": `bytes */${size}` });
        return res.end();
      }
      status = 206;
    }
    res.writeHead(status, {
      ...headers,
      etag: `"${blob.lfs ? blob.sha256 : blob.oid}"`,
      "content-type": "application/octet-stream",
      "content-length": String(end - start + 1),
      "accept-ranges": "bytes",
      ...(status === 206 && { "content-range": `bytes ${start}-${end}/${size}` }),
    });
    const body = data.subarray(start, end + 1);
    const cut = this.cuts.get(path);
    // A probe for the size (bytes=0-0) is never cut.
    if (cut && cut.times > 0 && body.length > 1) {
      cut.times--;
      const n = Math.max(0, Math.min(cut.after - start, body.length - 1));
      res.write(body.subarray(0, n), () => res.socket?.destroy());
      return;
    }
    res.end(req.method === "HEAD" ? undefined : body);
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { ...headers, "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => (s += c));
    req.on("end", () => resolve(s));
    req.on("error", reject);
  });
}

/** A valid safetensors file: one F32 tensor "w" of `n` values 0, 1, 2, ... */
export function tinySafetensors(n = 4, name = "w"): Uint8Array {
  let header = JSON.stringify({ [name]: { dtype: "F32", shape: [n], data_offsets: [0, 4 * n] } });
  header += " ".repeat((8 - (header.length % 8)) % 8); // data starts 8-aligned
  const out = Buffer.alloc(8 + header.length + 4 * n);
  out.writeBigUInt64LE(BigInt(header.length), 0);
  out.write(header, 8, "utf8");
  for (let i = 0; i < n; i++) out.writeFloatLE(i, 8 + header.length + 4 * i);
  return out;
}

/** Bytes that start like a GGUF v3 file; enough for a download test, not for a reader. */
export function fakeGguf(size = 1024, seed = 1): Uint8Array {
  const out = Buffer.alloc(size);
  out.write("GGUF", 0, "ascii");
  out.writeUInt32LE(3, 4);
  for (let i = 8; i < size; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  return out;
}
