// resolveModel against a fake Hub on 127.0.0.1: layout, selection, revisions, cache hits,
// resume, integrity, auth, offline and network errors. Every cache lives in a temp dir.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveModel } from "../../src/checkpoint/resolve.js";
import { HubAccessError, HubError, HubIntegrityError, HubNetworkError, HubNotFoundError, HubOfflineError, type DownloadProgress } from "../../src/checkpoint/hub.js";
import { CheckpointError, OptionError, UnsupportedModelError } from "../../src/errors.js";
import { FakeHub, fakeGguf, tinySafetensors } from "../helpers/fake-hub.js";

// Nothing here may read or write the real ~/.cache or reach a real Hub.
const temps: string[] = [];
const temp = (prefix: string) => (temps.push(mkdtempSync(join(tmpdir(), prefix))), temps.at(-1)!);
process.env.HF_HOME = temp("llmrt-hfhome-");
for (const v of ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN_PATH"]) delete process.env[v];
process.env.HF_ENDPOINT = "http://127.0.0.1:9"; // a closed port, in case a test forgets its endpoint

let hub: FakeHub;
const tiny = {
  "config.json": JSON.stringify({ model_type: "llama", hidden_size: 4 }),
  "generation_config.json": "{}",
  "tokenizer.json": JSON.stringify({ model: { type: "BPE" } }),
  "tokenizer_config.json": "{}",
  "model.safetensors": tinySafetensors(4),
  "README.md": "# tiny",
  "pytorch_model.bin": "not needed",
  "onnx/model.onnx": "not needed",
  "sub/config.json": "{}",
  "sub/model.safetensors": tinySafetensors(2),
};
const big = tinySafetensors(256 * 1024); // 1 MiB: arrives in many chunks

before(async () => {
  hub = await FakeHub.start();
  hub.addCommit("acme/tiny", tiny);
  hub.addCommit("acme/big", { "config.json": "{}", "model.safetensors": big });
});
after(async () => {
  await hub.close();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

const cache = () => temp("llmrt-hub-");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const opts = (extra: object = {}) => ({ endpoint: hub.url, cacheDir: cache(), ...extra });
function since<T>(arr: T[], fn: () => Promise<unknown>): Promise<T[]> {
  const start = arr.length;
  return fn().then(() => arr.slice(start));
}

test("a repo downloads into the HF cache layout, inference files only", async () => {
  const o = opts();
  const dir = await resolveModel("acme/tiny", o);
  const repoDir = join(o.cacheDir, "models--acme--tiny");
  const commit = readFileSync(join(repoDir, "refs", "main"), "utf8");
  assert.equal(dir, join(repoDir, "snapshots", commit));
  assert.deepEqual(readdirSync(dir).sort(), ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
  for (const f of readdirSync(dir)) {
    assert.ok(lstatSync(join(dir, f)).isSymbolicLink(), f);
    assert.deepEqual(readFileSync(join(dir, f)), Buffer.from(tiny[f as keyof typeof tiny]), f);
  }
  // LFS files are stored under their sha256, like huggingface_hub does.
  assert.equal(readlinkSync(join(dir, "model.safetensors")), `../../blobs/${sha256(tiny["model.safetensors"])}`);
  assert.ok(!readdirSync(join(repoDir, "blobs")).some((b) => b.endsWith(".incomplete")));
});

test("HF_HOME, HF_ENDPOINT and the default cache are honoured without options", async () => {
  const home = process.env.HF_HOME!;
  process.env.HF_ENDPOINT = hub.url;
  try {
    const dir = await resolveModel("acme/tiny");
    assert.ok(dir.startsWith(join(home, "hub", "models--acme--tiny", "snapshots")), dir);
    assert.ok(existsSync(join(dir, "config.json")));
  } finally {
    process.env.HF_ENDPOINT = "http://127.0.0.1:9";
  }
});

test("a second call is a cache hit: no file is downloaded", async () => {
  const o = opts();
  const first = await resolveModel("acme/tiny", o);
  const reqs = await since(hub.requests, () => resolveModel("acme/tiny", o));
  assert.equal(reqs.filter((r) => r.served).length, 0, JSON.stringify(reqs));
  assert.equal(await resolveModel("acme/tiny", o), first);
});

test("a file pinned to a commit and present is served without any request", async () => {
  const commit = hub.addCommit("acme/pinned", { "m.gguf": fakeGguf(100) });
  const o = opts();
  const p = await resolveModel(`acme/pinned@${commit}/m.gguf`, o);
  const reqs = await since(hub.requests, () => resolveModel(`acme/pinned@${commit}/m.gguf`, o));
  assert.deepEqual(reqs, []);
  assert.ok(p.endsWith(join("snapshots", commit, "m.gguf")));
});

test("a GGUF spec downloads only that file and returns its path", async () => {
  const q4 = fakeGguf(3000, 1);
  const commit = hub.addCommit("acme/tiny-GGUF", { "tiny-Q4_0.gguf": q4, "tiny-Q8_0.gguf": fakeGguf(5000, 2), "README.md": "x" });
  const reqs = await since(hub.requests, async () => {
    const p = await resolveModel("acme/tiny-GGUF/tiny-Q4_0.gguf", opts());
    assert.ok(p.endsWith(join("models--acme--tiny-GGUF", "snapshots", commit, "tiny-Q4_0.gguf")), p);
    assert.deepEqual(readFileSync(p), Buffer.from(q4));
  });
  assert.deepEqual(reqs.filter((r) => r.served).map((r) => r.served), ["tiny-Q4_0.gguf"]);
});

test("a repo of several GGUFs asks which; of one GGUF takes it; a wrong name lists the others", async () => {
  await assert.rejects(resolveModel("acme/tiny-GGUF", opts()), (e: unknown) => {
    assert.ok(e instanceof OptionError);
    assert.match(e.message, /acme\/tiny-GGUF\/tiny-Q4_0\.gguf/);
    return true;
  });
  hub.addCommit("acme/one-GGUF", { "only.gguf": fakeGguf(10) });
  assert.ok((await resolveModel("acme/one-GGUF", opts())).endsWith("only.gguf"));
  await assert.rejects(resolveModel("acme/tiny-GGUF/tiny-Q5_0.gguf", opts()), (e: unknown) => {
    assert.ok(e instanceof HubNotFoundError);
    assert.match(e.message, /tiny-Q5_0\.gguf/);
    assert.match(e.message, /tiny-Q8_0\.gguf/);
    return true;
  });
});

test("a split GGUF brings all its parts and returns the first", async () => {
  hub.addCommit("acme/split", { "q/x-00001-of-00002.gguf": fakeGguf(50, 1), "q/x-00002-of-00002.gguf": fakeGguf(60, 2) });
  const p = await resolveModel("acme/split/q/x-00002-of-00002.gguf", opts());
  assert.ok(p.endsWith(join("q", "x-00001-of-00002.gguf")));
  assert.equal(statSync(p.replace("00001-of", "00002-of")).size, 60);
});

test("a folder inside a repo resolves to that folder of the snapshot", async () => {
  const dir = await resolveModel("acme/tiny/sub", opts());
  assert.ok(dir.endsWith("sub"));
  assert.deepEqual(readdirSync(dir).sort(), ["config.json", "model.safetensors"]);
});

test("with a shard index only the shards it names are fetched", async () => {
  const index = { metadata: {}, weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" } };
  hub.addCommit("acme/sharded", {
    "config.json": "{}",
    "model.safetensors.index.json": JSON.stringify(index),
    "model-00001-of-00002.safetensors": tinySafetensors(2, "a"),
    "model-00002-of-00002.safetensors": tinySafetensors(2, "b"),
    "consolidated.safetensors": tinySafetensors(4),
  });
  const dir = await resolveModel("acme/sharded", opts());
  assert.deepEqual(readdirSync(dir).sort(), ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]);
});

test("a repo without safetensors is refused with what it has", async () => {
  hub.addCommit("acme/pt-only", { "config.json": "{}", "pytorch_model.bin": "x" });
  await assert.rejects(resolveModel("acme/pt-only", opts()), (e: unknown) => e instanceof UnsupportedModelError && /pytorch_model\.bin/.test(e.message));
});

test("allowPatterns replaces the default selection", async () => {
  const dir = await resolveModel("acme/tiny", opts({ allowPatterns: ["*.json", "onnx/**"] }));
  assert.deepEqual(readdirSync(dir, { recursive: true }).map(String).sort(), ["config.json", "generation_config.json", "onnx", "onnx/model.onnx", "tokenizer.json", "tokenizer_config.json"]);
  await assert.rejects(resolveModel("acme/tiny", opts({ allowPatterns: ["*.xyz"] })), OptionError);
});

test("revisions: a tag, a commit id and main each get their own snapshot", async () => {
  const v1 = hub.addCommit("acme/rev", { "config.json": '{"v":1}', "model.safetensors": tinySafetensors(1) }, { refs: ["main", "v1"] });
  const v2 = hub.addCommit("acme/rev", { "config.json": '{"v":2}', "model.safetensors": tinySafetensors(2) });
  const o = opts();
  const atTag = await resolveModel("acme/rev@v1", o);
  assert.ok(atTag.endsWith(v1));
  assert.equal(readFileSync(join(atTag, "config.json"), "utf8"), '{"v":1}');
  assert.equal(readFileSync(join(o.cacheDir, "models--acme--rev", "refs", "v1"), "utf8"), v1);
  assert.ok((await resolveModel(`acme/rev@${v1}`, o)).endsWith(v1));
  const atMain = await resolveModel("acme/rev", o);
  assert.ok(atMain.endsWith(v2));
  assert.equal(readFileSync(join(atMain, "config.json"), "utf8"), '{"v":2}');
  await assert.rejects(resolveModel("acme/rev@nope", o), (e: unknown) => e instanceof HubNotFoundError && /nope/.test(e.message));
});

test("a transfer cut midway resumes with a Range request in the same call", async () => {
  hub.cuts.set("model.safetensors", { after: 300_000, times: 1 });
  const events: DownloadProgress[] = [];
  const dir = await resolveModel("acme/big", opts({ onProgress: (p: DownloadProgress) => events.push(p) }));
  hub.cuts.clear();
  assert.equal(sha256(readFileSync(join(dir, "model.safetensors"))), sha256(big));
  const gets = hub.downloads("model.safetensors").slice(-2);
  assert.equal(gets[0].range, undefined);
  const from = Number(/^bytes=(\d+)-/.exec(gets[1].range ?? "")?.[1]);
  assert.ok(from > 0 && from <= 300_000, gets[1].range);
  const last = events.filter((e) => e.file === "model.safetensors").at(-1)!;
  assert.deepEqual([last.downloaded, last.total], [big.length, big.length]);
});

test("an interrupted download leaves a .incomplete file that the next call resumes", async () => {
  const o = opts({ attempts: 1 });
  hub.cuts.set("model.safetensors", { after: 400_000, times: 1 });
  await assert.rejects(resolveModel("acme/big", o), (e: unknown) => {
    assert.ok(e instanceof HubNetworkError);
    assert.match(e.message, /run again to resume/);
    return true;
  });
  hub.cuts.clear();
  const blobs = join(o.cacheDir, "models--acme--big", "blobs");
  const partial = readdirSync(blobs).find((f) => f.endsWith(".incomplete"))!;
  const have = statSync(join(blobs, partial)).size;
  assert.ok(have > 0 && have < big.length);
  const reqs = await since(hub.requests, () => resolveModel("acme/big", o));
  assert.deepEqual(reqs.filter((r) => r.served).map((r) => r.range), [`bytes=${have}-${big.length - 1}`]);
  assert.equal(sha256(readFileSync(join(blobs, sha256(big)))), sha256(big));
  assert.ok(!existsSync(join(blobs, partial)));
});

test("a server that ignores Range costs a restart from zero, not a corrupt file", async () => {
  hub.cuts.set("model.safetensors", { after: 300_000, times: 1 });
  hub.ignoreRange = true;
  try {
    const dir = await resolveModel("acme/big", opts());
    assert.equal(sha256(readFileSync(join(dir, "model.safetensors"))), sha256(big));
  } finally {
    hub.cuts.clear();
    hub.ignoreRange = false;
  }
  const gets = hub.downloads("model.safetensors").slice(-3).map((r) => r.range);
  assert.equal(gets[0], undefined);
  assert.match(gets[1] ?? "", /^bytes=[1-9]\d*-/);
  assert.equal(gets[2], undefined);
});

test("a file path that climbs out of the snapshot is refused", async () => {
  hub.addCommit("acme/evil", { "config.json": "{}", "../escape.safetensors": "x" });
  await assert.rejects(resolveModel("acme/evil", opts({ allowPatterns: ["**"] })), (e: unknown) => e instanceof HubError && e.code === "hub_bad_path");
});

test("a sha256 mismatch is rejected and the partial file deleted", async () => {
  const o = opts();
  hub.corrupt.add("model.safetensors");
  try {
    await assert.rejects(resolveModel("acme/big", o), (e: unknown) => {
      assert.ok(e instanceof HubIntegrityError);
      assert.match(e.message, /sha256 is [0-9a-f]{64}, the Hub lists [0-9a-f]{64}/);
      return true;
    });
  } finally {
    hub.corrupt.clear();
  }
  const repoDir = join(o.cacheDir, "models--acme--big");
  assert.deepEqual(readdirSync(join(repoDir, "blobs")).filter((f) => f.startsWith(sha256(big))), []);
  const snap = join(repoDir, "snapshots", readFileSync(join(repoDir, "refs", "main"), "utf8"));
  assert.ok(!existsSync(join(snap, "model.safetensors")));
});

test("a small (non-LFS) file is checked against its git blob id", async () => {
  hub.corrupt.add("config.json");
  try {
    await assert.rejects(resolveModel("acme/tiny", opts()), (e: unknown) => e instanceof HubIntegrityError && /git blob sha1/.test(e.message));
  } finally {
    hub.corrupt.clear();
  }
});

test("a private repo answers 401 without a token and downloads with HF_TOKEN", async () => {
  hub.addCommit("acme/secret", { "config.json": "{}", "model.safetensors": tinySafetensors(2) }, { private: true });
  await assert.rejects(resolveModel("acme/secret", opts()), (e: unknown) => {
    assert.ok(e instanceof HubAccessError);
    assert.equal(e.status, 401);
    assert.ok(e.message.includes(`${hub.url}/api/models/acme/secret/revision/main`), e.message);
    assert.match(e.message, /HF_TOKEN/);
    return true;
  });
  await assert.rejects(resolveModel("acme/secret", opts({ token: "hf_wrong" })), HubAccessError);
  process.env.HF_TOKEN = hub.token;
  try {
    const reqs = await since(hub.requests, () => resolveModel("acme/secret", opts()));
    assert.ok(reqs.filter((r) => !r.url.startsWith("/cdn/")).every((r) => r.auth === `Bearer ${hub.token}`));
  } finally {
    delete process.env.HF_TOKEN;
  }
});

test("offline mode uses the cache and never the network", async () => {
  const o = opts();
  const dir = await resolveModel("acme/tiny", o);
  const gguf = await resolveModel("acme/tiny-GGUF/tiny-Q4_0.gguf", o);
  const reqs = await since(hub.requests, async () => {
    assert.equal(await resolveModel("acme/tiny", { ...o, offline: true }), dir);
    process.env.HF_HUB_OFFLINE = "1";
    try {
      assert.equal(await resolveModel("acme/tiny-GGUF/tiny-Q4_0.gguf", o), gguf);
      await assert.rejects(resolveModel("acme/tiny-GGUF/tiny-Q8_0.gguf", o), HubOfflineError);
      await assert.rejects(resolveModel("acme/big", o), (e: unknown) => {
        assert.ok(e instanceof HubOfflineError);
        assert.match(e.message, /acme\/big@main is not in the cache/);
        return true;
      });
    } finally {
      delete process.env.HF_HUB_OFFLINE;
    }
  });
  assert.deepEqual(reqs, []);
});

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

test("an unreachable Hub gives a network error naming the URL and what to try", async () => {
  const endpoint = `http://127.0.0.1:${await closedPort()}`;
  await assert.rejects(resolveModel("acme/tiny", { endpoint, cacheDir: cache() }), (e: unknown) => {
    assert.ok(e instanceof HubNetworkError);
    assert.ok(e.message.includes(`${endpoint}/api/models/acme/tiny/revision/main`), e.message);
    assert.match(e.message, /HF_ENDPOINT/);
    assert.match(e.message, /local path/);
    return true;
  });
});

test("an unreachable Hub falls back to a cached snapshot with a warning", async () => {
  const o = opts();
  const dir = await resolveModel("acme/tiny", o);
  const warnings: Error[] = [];
  const onWarn = (w: Error) => warnings.push(w);
  process.on("warning", onWarn);
  try {
    assert.equal(await resolveModel("acme/tiny", { ...o, endpoint: `http://127.0.0.1:${await closedPort()}` }), dir);
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off("warning", onWarn);
  }
  assert.ok(warnings.some((w) => /using the cached/.test(w.message)));
});

test("a local-looking path is never sent to the Hub", async () => {
  process.env.HF_ENDPOINT = hub.url;
  try {
    const reqs = await since(hub.requests, async () => {
      await assert.rejects(resolveModel("./acme/tiny"), CheckpointError);
      await assert.rejects(resolveModel("/nonexistent/acme/tiny"), CheckpointError);
    });
    assert.deepEqual(reqs, []);
  } finally {
    process.env.HF_ENDPOINT = "http://127.0.0.1:9";
  }
});
