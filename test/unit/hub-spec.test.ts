// Model spec parsing, globs, settings from the environment, progress output: no network.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, homedir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { globToRegExp, INFERENCE_FILES, parseModelSpec, resolveModel } from "../../src/checkpoint/resolve.js";
import { cliProgressReporter, formatBytes, hubSettings } from "../../src/checkpoint/hub.js";
import { CheckpointError } from "../../src/errors.js";

const temps: string[] = [];
const temp = (prefix: string) => (temps.push(mkdtempSync(join(tmpdir(), prefix))), temps.at(-1)!);
after(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

test("hub ids parse into repo, revision and file", () => {
  assert.deepEqual(parseModelSpec("org/name"), { kind: "hub", repo: "org/name", revision: undefined, file: undefined });
  assert.deepEqual(parseModelSpec("Org-1/na.me_2@v1.0"), { kind: "hub", repo: "Org-1/na.me_2", revision: "v1.0", file: undefined });
  assert.deepEqual(parseModelSpec("org/name/dir/m.gguf"), { kind: "hub", repo: "org/name", revision: undefined, file: "dir/m.gguf" });
  assert.deepEqual(parseModelSpec("org/name@abc123/m.gguf"), { kind: "hub", repo: "org/name", revision: "abc123", file: "m.gguf" });
  assert.deepEqual(parseModelSpec("org/name@refs/pr/12/m.gguf"), { kind: "hub", repo: "org/name", revision: "refs/pr/12", file: "m.gguf" });
  assert.deepEqual(parseModelSpec("org/name/"), { kind: "hub", repo: "org/name", revision: undefined, file: undefined });
});

test("pasted Hub URLs parse like ids", () => {
  const hub = (repo: string, revision?: string, file?: string) => ({ kind: "hub", repo, revision, file });
  assert.deepEqual(parseModelSpec("https://huggingface.co/org/name"), hub("org/name"));
  assert.deepEqual(parseModelSpec("hf.co/org/name/"), hub("org/name"));
  assert.deepEqual(parseModelSpec("https://huggingface.co/org/name/tree/v2"), hub("org/name", "v2"));
  assert.deepEqual(parseModelSpec("https://huggingface.co/org/name/blob/main/q/m.gguf?download=true"), hub("org/name", "main", "q/m.gguf"));
  assert.deepEqual(parseModelSpec("https://huggingface.co/org/name/resolve/refs%2Fpr%2F3/m.gguf"), hub("org/name", "refs/pr/3", "m.gguf"));
});

test("paths that look local are local, whatever else they look like", () => {
  for (const p of ["./org/name", "../org/name", "/abs/org/name", "C:\\models\\x", "org\\name", ".", ".."]) {
    assert.equal(parseModelSpec(p).kind, "local", p);
  }
  assert.deepEqual(parseModelSpec("~/models/x"), { kind: "local", path: join(homedir(), "models/x") });
  // Not a hub id either: single names, traversal, empty revision.
  for (const p of ["llama", "org/name/../x", "org/name@", "a/b/c//d"]) assert.equal(parseModelSpec(p).kind, "local", p);
});

test("an existing relative path wins over the hub id reading", () => {
  const dir = temp("llmrt-spec-");
  const prev = process.cwd();
  process.chdir(dir);
  try {
    mkdirSync(join(dir, "org", "name"), { recursive: true });
    assert.deepEqual(parseModelSpec("org/name"), { kind: "local", path: "org/name" });
  } finally {
    process.chdir(prev);
  }
});

test("resolveModel returns an existing local path as given and rejects a missing one", async () => {
  const dir = temp("llmrt-spec-");
  assert.equal(await resolveModel(dir), dir);
  await assert.rejects(resolveModel(join(dir, "nope")), (e: unknown) => {
    assert.ok(e instanceof CheckpointError);
    assert.match(e.message, /no such file or directory/);
    assert.match(e.message, /org\/name/); // the hint shows the Hub form
    return true;
  });
  await assert.rejects(resolveModel("just-a-name"), CheckpointError);
});

test("globs: * and ? stay in one segment, ** crosses", () => {
  const m = (g: string, p: string) => globToRegExp(g).test(p);
  assert.ok(m("*.safetensors", "model-00001-of-00002.safetensors"));
  assert.ok(!m("*.safetensors", "sub/model.safetensors"));
  assert.ok(m("**/*.json", "config.json"));
  assert.ok(m("**/*.json", "a/b/config.json"));
  assert.ok(m("onnx/**", "onnx/x/y.onnx"));
  assert.ok(m("tok?nizer.json", "tokenizer.json"));
  assert.ok(!m("config.json", "configXjson"));
  const inference = (p: string) => INFERENCE_FILES.some((g) => m(g, p));
  assert.ok(inference("model.safetensors.index.json"));
  assert.ok(inference("tokenizer.model"));
  assert.ok(!inference("pytorch_model.bin"));
  assert.ok(!inference("README.md"));
});

test("settings follow HF_* variables, options win", () => {
  const env = { HF_HOME: "/h", HF_ENDPOINT: "http://127.0.0.1:9/", HF_TOKEN: "tok", HF_HUB_OFFLINE: "1" };
  assert.deepEqual(hubSettings({}, env), { endpoint: "http://127.0.0.1:9", token: "tok", cacheDir: "/h/hub", offline: true });
  assert.equal(hubSettings({}, { ...env, HF_HUB_CACHE: "/c" }).cacheDir, "/c");
  assert.equal(hubSettings({ cacheDir: "/o", offline: false }, env).cacheDir, "/o");
  assert.equal(hubSettings({ offline: false }, env).offline, false);
  const bare = hubSettings({}, { HF_HOME: "/nonexistent-llmrt-home" });
  assert.deepEqual(bare, { endpoint: "https://huggingface.co", token: undefined, cacheDir: "/nonexistent-llmrt-home/hub", offline: false });
  assert.equal(hubSettings({}, { XDG_CACHE_HOME: "/x", HF_TOKEN_PATH: "/nonexistent" }).cacheDir, "/x/huggingface/hub");
});

test("the token file written by huggingface-cli login is read", () => {
  const home = temp("llmrt-home-");
  writeFileSync(join(home, "token"), "hf_from_file\n");
  assert.equal(hubSettings({}, { HF_HOME: home }).token, "hf_from_file");
  assert.equal(hubSettings({}, { HF_HOME: home, HF_TOKEN: "hf_env" }).token, "hf_env");
});

function capture(isTTY: boolean) {
  const chunks: string[] = [];
  const stream = new Writable({
    write(c, _e, cb) {
      chunks.push(String(c));
      cb();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(stream, { isTTY, columns: 100, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
  return { stream, text: () => chunks.join("") };
}

test("without a TTY, progress is plain lines: start, quarters, done", () => {
  const { stream, text } = capture(false);
  const r = cliProgressReporter(stream);
  for (const d of [0, 10, 30, 60, 99, 100]) r({ repo: "o/n", file: "m.safetensors", downloaded: d * 1000, total: 100_000 });
  r({ repo: "o/n", file: "m.safetensors", downloaded: 100_000, total: 100_000 }); // repeated end: no new line
  r.stop();
  assert.deepEqual(text().trim().split("\n"), [
    "downloading o/n/m.safetensors (100.0 kB)",
    "o/n/m.safetensors: 25% (30.0 kB of 100.0 kB)",
    "o/n/m.safetensors: 50% (60.0 kB of 100.0 kB)",
    "o/n/m.safetensors: 75% (99.0 kB of 100.0 kB)",
    "o/n/m.safetensors: done",
  ]);
});

test("the reporter takes events without a repo too", () => {
  const { stream, text } = capture(false);
  const r = cliProgressReporter(stream);
  r({ file: "m.gguf", downloaded: 0, total: 10 });
  r({ file: "m.gguf", downloaded: 10, total: 10 });
  assert.equal(text(), "downloading m.gguf (10 B)\nm.gguf: done\n");
});

test("on a TTY, progress draws bars with the file name", () => {
  const { stream, text } = capture(true);
  const r = cliProgressReporter(stream);
  r({ repo: "o/n", file: "a.gguf", downloaded: 0, total: 2000 });
  r({ repo: "o/n", file: "a.gguf", downloaded: 2000, total: 2000 });
  r({ repo: "o/n", file: "a.gguf", downloaded: 2000, total: 2000 });
  r.stop();
  assert.match(text(), /100% \| 2.0 kB \/ 2.0 kB \| o\/n\/a\.gguf/);
});

test("formatBytes", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(1500), "1.5 kB");
  assert.equal(formatBytes(4.2e9), "4.2 GB");
});
