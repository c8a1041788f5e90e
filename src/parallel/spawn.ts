/**
 * Starting the ranks. The main thread blocks in Atomics.wait during a step, so it cannot
 * hear a rank thread exit; a small supervisor thread, whose event loop never blocks,
 * starts the ranks, watches them, and turns an exit or an uncaught error into the shared
 * failure word (waking every waiter). The supervisor is plain JavaScript; ranks are
 * TypeScript modules (Node 20 does not pass `--import tsx` on to worker threads: see rankBoot).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { RankInit } from "./rank.js";

const SUPERVISOR_SOURCE = `
const { Worker, parentPort, workerData } = require("node:worker_threads");
const { boot, ranks, ctrlBuffer, errAt, errBytes } = workerData;
const ctrl = new Int32Array(ctrlBuffer);
let quitting = false;
function fail(rank, message) {
  if (quitting || Atomics.compareExchange(ctrl, 3, 0, rank + 1) !== 0) return;
  const bytes = new TextEncoder().encode(message).subarray(0, errBytes);
  new Uint8Array(ctrlBuffer, errAt, errBytes).set(bytes);
  Atomics.store(ctrl, 5, bytes.length + 1); // world.ts failWorld: 0 means "not written yet"
  for (let i = 0; i < errAt / 4; i++) Atomics.notify(ctrl, i);
}
const workers = ranks.map((init) => {
  const w = new Worker(boot, { eval: true, workerData: init });
  w.on("error", (e) => fail(init.rank, "rank " + init.rank + " threw outside a step: " + (e && e.stack || e)));
  // after CMD_QUIT (control word 1 = 2) ranks exit on purpose
  w.on("exit", (code) => Atomics.load(ctrl, 1) === 2 || fail(init.rank, "rank " + init.rank + " exited (code " + code + ")"));
  return w;
});
parentPort.on("message", (m) => {
  if (m !== "quit") return;
  quitting = true;
  Promise.all(workers.map((w) => w.terminate())).then(() => process.exit(0));
});
`;

/**
 * Code that loads a worker module (rank-worker, or a test's) in a fresh thread. From dist:
 * the compiled module. From source: registering tsx costs each thread over a second, so
 * the module is bundled once per process with esbuild (tsx's own transformer) under
 * node_modules/.cache, and each thread starts in plain Node; tsx in every thread is the fallback.
 */
export async function workerBoot(sibling: URL): Promise<string> {
  if (!sibling.href.endsWith(".ts")) return `import(${JSON.stringify(sibling.href)});`;
  const entry = fileURLToPath(sibling);
  try {
    return `import(${JSON.stringify(pathToFileURL(await bundled(entry)).href)});`;
  } catch {
    const tsx = import.meta.resolve("tsx/esm/api");
    return `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(sibling.href)}); });`;
  }
}

function rankBoot(): Promise<string> {
  const here = import.meta.url;
  return workerBoot(new URL(here.endsWith(".ts") ? "./rank-worker.ts" : "./rank-worker.js", here));
}

const bundles = new Map<string, Promise<string>>();

function bundled(entry: string): Promise<string> {
  let bundle = bundles.get(entry);
  bundle ??= (async () => {
    const req = createRequire(fileURLToPath(import.meta.resolve("tsx/esm/api")));
    const esbuild = (await import(pathToFileURL(req.resolve("esbuild")).href)) as typeof import("esbuild");
    const out = await esbuild.build({ entryPoints: [entry], bundle: true, platform: "node", format: "esm", write: false, packages: "external", logLevel: "silent" });
    const code = out.outputFiles[0].text;
    const dir = join(dirname(req.resolve("esbuild/package.json")), "..", ".cache", "llmrt"); // node_modules/.cache: bare imports resolve
    const file = join(dir, `${basename(entry, ".ts")}-${createHash("sha256").update(code).digest("hex").slice(0, 16)}.mjs`);
    if (!existsSync(file)) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(`${file}.${process.pid}`, code);
      renameSync(`${file}.${process.pid}`, file); // atomic: concurrent test processes may race here
    }
    return file;
  })();
  bundles.set(entry, bundle);
  return bundle;
}

/** Starts the supervisor, which starts every rank; post it "quit" to stop them all. */
export async function spawnRanks(ranks: RankInit[], errAt: number, errBytes: number): Promise<Worker> {
  return new Worker(SUPERVISOR_SOURCE, { eval: true, workerData: { boot: await rankBoot(), ranks, ctrlBuffer: ranks[0].buffers.ctrl, errAt, errBytes } });
}
