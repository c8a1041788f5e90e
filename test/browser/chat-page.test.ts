/**
 * The chat page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
 * type a message, send it, watch the reply stream into the assistant bubble and the live
 * metrics panel update; a screenshot is kept as test-artifacts/chat-page.png.
 *
 * Without /usr/bin/chromium the test is skipped with a message (install Debian's `chromium`);
 * under CI=true it fails instead (.ci/run installs it).
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { chromium, type Browser } from "playwright-core";
import { startTestServer } from "../server/helpers.js";

// The callbacks below run in the page; the project's tsconfig has no DOM library, so its names are declared loosely here.
declare const document: any;
declare const window: any;
declare const MutationObserver: any;
declare const Event: any;
type HTMLInputElement = { value: string };

const CHROMIUM = process.env.LLMRT_CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = join(process.cwd(), "test-artifacts");

test("chat page: a sent message streams a reply into the bubble and the metrics panel updates", { timeout: 60_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    const msg = `no Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium) to run the chat page test`;
    if (process.env.CI === "true") throw new Error(msg);
    t.skip(msg);
    return;
  }
  const server = await startTestServer({ servedModelName: "tiny" });
  let browser: Browser | null = null;
  try {
    // playwright gives the browser a fresh, empty --user-data-dir of its own (and removes it)
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(server.url + "/");
    // the page has found the model and the server is ready
    await page.waitForFunction(() => document.getElementById("model")?.textContent?.startsWith("tiny"), null, { timeout: 10_000 });
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "ready", null, { timeout: 10_000 });
    const genBefore = await page.textContent("#s-gen");

    // a fixed seed makes the reply the same every run; a long reply, so it arrives in many chunks
    await page.fill("#seed", "3");
    await page.$eval("#max_tokens", (el) => {
      (el as HTMLInputElement).value = "200";
      el.dispatchEvent(new Event("input"));
    });
    // record every text the assistant bubble shows, as it changes
    await page.evaluate(() => {
      const w = window as any;
      w.__seen = [] as string[];
      new MutationObserver(() => {
        const bodies = document.querySelectorAll(".msg.assistant .body");
        const last = bodies[bodies.length - 1];
        if (last && last.textContent && w.__seen.at(-1) !== last.textContent) w.__seen.push(last.textContent);
      }).observe(document.getElementById("log")!, { subtree: true, childList: true, characterData: true });
    });

    // the tiny model writes 200 tokens in a few ms: on a busy machine the browser read the whole
    // stream at once and rendered it in one change. A throttled download (32 KB/s for ~30 KB of
    // events) spreads the events over about a second, so the bubble must show the reply growing.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Network.enable");
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: 32 * 1024, uploadThroughput: -1 });

    await page.fill("#input", "Hello there, tiny model!");
    await page.click("#go");
    await page.waitForSelector(".msg.user .body");
    assert.equal(await page.textContent(".msg.user .body"), "Hello there, tiny model!");
    // the reply is done when the bubble's meta line is written (and Send is enabled again)
    await page.waitForFunction(() => (document.querySelector(".msg.assistant .meta")?.textContent ?? "") !== "", null, { timeout: 20_000 });
    const reply = (await page.textContent(".msg.assistant .body")) ?? "";
    const meta = (await page.textContent(".msg.assistant .meta")) ?? "";
    const seen: string[] = await page.evaluate(() => (window as any).__seen);
    assert.equal(await page.$(".msg.error"), null, `no error bubble: ${reply}`);
    assert.ok(reply.length > 0, "the assistant bubble holds the reply");
    t.diagnostic(`the bubble changed ${seen.length} times while the reply streamed in`);
    assert.ok(seen.length >= 3, `the reply streamed in: the bubble changed ${seen.length} times`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].startsWith(seen[i - 1]), "each update extends the text shown before");
    assert.equal(seen.at(-1), reply);
    assert.match(meta, /\d+ tokens/);
    assert.match(meta, /first token \d+ ms/);
    const tokens = Number(/(\d+) tokens/.exec(meta)![1]);

    // the live panel (polled every second) shows the generated tokens and a rate
    await page.waitForFunction(
      (n) => Number(document.getElementById("s-gen")?.textContent) >= n && /^[0-9.]+$/.test(document.getElementById("s-tps")?.textContent ?? ""),
      tokens,
      { timeout: 5_000 },
    );
    const genAfter = await page.textContent("#s-gen");
    assert.notEqual(genAfter, genBefore);
    assert.equal(await page.textContent("#s-running"), "0");
    assert.equal(await page.textContent("#s-waiting"), "0");
    assert.match((await page.textContent("#s-kv")) ?? "", /^\d+(\.\d)?%$/);
    assert.deepEqual(pageErrors, []);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "chat-page.png"), fullPage: true });
    t.diagnostic(`screenshot: ${join(ARTIFACTS, "chat-page.png")}; reply ${tokens} tokens, ${seen.length} updates`);
  } finally {
    await browser?.close();
    await server.close(1000);
  }
});
