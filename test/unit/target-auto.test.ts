/**
 * --target auto (the default of generate, serve, chat, build and LLM.load): cuda where a GPU
 * is visible and its kernels can be compiled, else cpu; the reference backend only by name.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Command } from "commander";
import { LLM } from "../../src/api/llm.js";
import { registerChat } from "../../src/cli/chat.js";
import { registerGenerate } from "../../src/cli/generate.js";
import { registerServe } from "../../src/cli/serve.js";
import { resolveTarget, type MachineProbe } from "../../src/engine/targets.js";
import { OptionError } from "../../src/errors.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openModelSpec } from "../../src/api/load-model.js";
import { buildEngineDir } from "../../src/engine/build.js";

const H100 = { devices: 1, computeCapability: [9, 0] as [number, number] };
const probe = (gpu: ReturnType<MachineProbe["gpu"]>, compile = true): MachineProbe => ({ gpu: () => gpu, canCompileKernels: () => compile });

test("auto picks cuda where a GPU is visible and nvcc or NVRTC can compile its kernels, else cpu", () => {
  assert.deepEqual(resolveTarget("auto", probe(H100)), { target: "cuda", reason: "1 GPU(s), sm_90" });
  assert.deepEqual(resolveTarget(undefined, probe(H100)), { target: "cuda", reason: "1 GPU(s), sm_90" });
  assert.deepEqual(resolveTarget("auto", probe(null)), { target: "cpu", reason: "no usable GPU" });
  const noCompiler = resolveTarget("auto", probe(H100, false));
  assert.equal(noCompiler.target, "cpu");
  assert.match(noCompiler.reason!, /sm_90.*neither nvcc nor NVRTC/);
});

test("a named target is kept as named, without a reason, whatever the machine has", () => {
  for (const name of ["reference", "cpu", "cuda"]) assert.deepEqual(resolveTarget(name, probe(null)), { target: name });
  assert.throws(() => resolveTarget("tpu", probe(H100)), (e: unknown) => e instanceof OptionError && /unknown target "tpu".*auto, reference, cpu, cuda/s.test(e.message));
});

test("this machine's probe answers without throwing (no GPU here: cpu)", () => {
  const t = resolveTarget("auto");
  assert.ok(t.target === "cpu" || t.target === "cuda");
  assert.ok(t.reason && t.reason.length > 0);
});

test("LLM.load runs on the target it is given, and on auto's choice by default", async () => {
  const named = await LLM.load("synthetic:tiny", { target: "reference", maxSeqs: 1, maxSeqLen: 64 });
  try {
    assert.deepEqual(named.target, { target: "reference" });
  } finally {
    named.close();
  }
  const auto = await LLM.load("synthetic:tiny", { maxSeqs: 1, maxSeqLen: 64, threads: 1 });
  try {
    const expected = resolveTarget("auto");
    assert.equal(auto.target.target, expected.target);
    assert.equal(auto.target.reason, expected.reason);
    const [out] = await auto.generate("hi", { maxTokens: 4, temperature: 0, ignoreEos: true });
    assert.equal(out.outputs[0].tokenIds.length, 4);
  } finally {
    auto.close();
  }
});

test("generate, serve and chat take --target (default auto) and --threads", () => {
  for (const register of [registerGenerate, registerServe, registerChat]) {
    const program = new Command().exitOverride();
    register(program);
    const name = program.commands[0].name();
    const parsed = (args: string[]) => {
      program.commands[0].action(() => {});
      program.parse(["node", "llmrt", name, ...args]);
      return program.commands[0].opts();
    };
    assert.equal(parsed([]).target, "auto", name);
    const o = parsed(["--target", "cpu", "--threads", "3"]);
    assert.equal(o.target, "cpu", name);
    assert.equal(o.threads, 3, name);
  }
});

test("an engine dir runs on the target it was built for; naming another target is refused, not ignored", async () => {
  const dir = mkdtempSync(join(tmpdir(), "llmrt-target-"));
  try {
    const ckpt = (await openModelSpec("synthetic:tiny")).checkpoint;
    try {
      buildEngineDir(ckpt, dir, { target: "reference", maxSeqs: 1, maxSeqLen: 64 });
    } finally {
      ckpt.close();
    }
    const llm = await LLM.load(dir, { maxSeqs: 1 }); // auto: the engine's own target
    try {
      assert.equal(llm.target.target, "reference");
    } finally {
      llm.close();
    }
    await assert.rejects(LLM.load(dir, { target: "cpu", maxSeqs: 1 }), (e: unknown) => e instanceof OptionError && /built for target "reference", not "cpu"/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
