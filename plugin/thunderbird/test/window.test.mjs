import assert from "node:assert/strict";
import { test } from "node:test";

import { createWarningWindows } from "../lib/guard.js";
import { MEYER, standIn } from "./stand-in.mjs";

async function settled(promise) {
  const marker = Symbol("pending");
  return Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve(marker), 20))]);
}

function keyOf(window) {
  return new URL(window.url, "moz-extension://x/").searchParams.get("key");
}

test("the window gets its findings and reports Send anyway", async () => {
  const messenger = standIn();
  const open = createWarningWindows(messenger);
  const choice = open([MEYER]);
  await settled(choice);
  const [window] = messenger.calls.windows;
  assert.equal(window.type, "popup");
  assert.match(window.url, /^warning\/warning\.html\?key=/);
  const key = keyOf(window);
  const [ready] = messenger.runtime.onMessage.fire({ type: "courtesy-warning-ready", key });
  assert.deepEqual(await ready, { findings: [MEYER] });
  messenger.runtime.onMessage.fire({ type: "courtesy-warning-choice", key, choice: "send" });
  assert.equal(await choice, "send");
});

test("closing the window is Edit", async () => {
  const messenger = standIn();
  const open = createWarningWindows(messenger);
  const choice = open([MEYER]);
  await settled(choice);
  assert.equal(typeof (await settled(choice)), "symbol", "decided before the user did");
  messenger.windows.onRemoved.fire(messenger.calls.windows[0].id);
  assert.equal(await choice, "edit");
});

test("other messages and other windows are none of its business", async () => {
  const messenger = standIn();
  const open = createWarningWindows(messenger);
  const choice = open([MEYER]);
  await settled(choice);
  assert.deepEqual(messenger.runtime.onMessage.fire({ type: "something-else" }), [undefined]);
  messenger.windows.onRemoved.fire(9999);
  messenger.runtime.onMessage.fire({ type: "courtesy-warning-choice", key: "nope", choice: "send" });
  assert.equal(typeof (await settled(choice)), "symbol");
  messenger.runtime.onMessage.fire({ type: "courtesy-warning-choice", key: keyOf(messenger.calls.windows[0]), choice: "??" });
  assert.equal(await choice, "edit");
});
