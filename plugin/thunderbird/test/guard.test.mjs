import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { OVERRIDE_HEADER, TIMEOUT_MS, createSendGuard, shouldAsk } from "../lib/guard.js";
import { COMPOSE, MEYER, fakeApi, standIn } from "./stand-in.mjs";

const TOKEN = "secret-token";
const TAB = { id: 7 };
const quiet = { info() {}, warn() {}, error() {} };
let api;

afterEach(async () => {
  await api?.close();
  api = undefined;
});

function guardFor(messenger, { choice = "edit", timeoutMs = TIMEOUT_MS } = {}) {
  const asked = [];
  const guard = createSendGuard({
    messenger,
    fetch,
    timeoutMs,
    log: quiet,
    openWarning: async (findings, tab) => {
      asked.push({ findings, tab });
      if (choice instanceof Error) throw choice;
      return choice;
    },
  });
  return { guard, asked };
}

function answering(json, extra = {}) {
  return fakeApi(async () => ({ status: 200, json, ...extra }));
}

test("the 2 second limit", () => {
  assert.equal(TIMEOUT_MS, 2000);
});

test("the request goes to the API with the token, as JSON", async () => {
  api = await answering({ action: "relay", findings: [], override: "v1.x" });
  const messenger = standIn({ settings: { apiUrl: api.url, token: TOKEN } });
  const { guard } = guardFor(messenger);
  assert.deepEqual(await guard(TAB, COMPOSE), { cancel: false });
  assert.equal(api.requests.length, 1);
  const [seen] = api.requests;
  assert.equal(seen.method, "POST");
  assert.equal(seen.url, "/api/v1/check");
  assert.equal(seen.headers.authorization, `Bearer ${TOKEN}`);
  assert.match(seen.headers["content-type"], /^application\/json/);
  assert.equal(seen.body.subject, "Angebot für Dienstag");
  assert.deepEqual(seen.body.to, ["Thomas Meier <thomas.meier@example.org>"]);
});

test("no findings: sent without a word", async () => {
  api = await answering({ action: "relay", findings: [], override: "v1.x" });
  const messenger = standIn({ settings: { apiUrl: api.url, token: TOKEN } });
  const { guard, asked } = guardFor(messenger);
  assert.deepEqual(await guard(TAB, COMPOSE), { cancel: false });
  assert.equal(asked.length, 0);
  assert.equal(messenger.calls.notifications.length, 0);
  assert.equal(messenger.calls.setComposeDetails.length, 0);
});

test("only a hint the proxy relays anyway: no window", () => {
  const info = { ...MEYER, code: "closing.missing", severity: "info" };
  assert.equal(shouldAsk({ action: "relay", findings: [info] }), false);
  assert.equal(shouldAsk({ action: "relay", findings: [MEYER] }), true);
  assert.equal(shouldAsk({ action: "hold", findings: [info] }), true);
});

test("findings and Edit: the send is cancelled, nothing is changed", async () => {
  api = await answering({ action: "hold", findings: [MEYER], override: "v1.1.n.mac" });
  const messenger = standIn({ settings: { apiUrl: api.url, token: TOKEN } });
  const { guard, asked } = guardFor(messenger, { choice: "edit" });
  assert.deepEqual(await guard(TAB, COMPOSE), { cancel: true });
  assert.deepEqual(asked, [{ findings: [MEYER], tab: TAB }]);
  assert.equal(messenger.calls.setComposeDetails.length, 0);
});

test("findings and Send anyway: the override header is added and the send goes on", async () => {
  api = await answering({ action: "hold", findings: [MEYER], override: "v1.1.n.mac" });
  const messenger = standIn({ settings: { apiUrl: api.url, token: TOKEN } });
  const { guard } = guardFor(messenger, { choice: "send" });
  const details = { ...COMPOSE, customHeaders: [...COMPOSE.customHeaders, { name: "X-Courtesy-Override", value: "stale" }] };
  const result = await guard(TAB, details);
  const expected = [
    { name: "X-Other", value: "kept" },
    { name: OVERRIDE_HEADER, value: "v1.1.n.mac" },
  ];
  assert.deepEqual(result, { cancel: false, details: { customHeaders: expected } });
  assert.deepEqual(messenger.calls.setComposeDetails, [{ tabId: TAB.id, details: { customHeaders: expected } }]);
});

test("API slower than the limit: sent, one quiet notification for the whole outage", async () => {
  api = await answering({ action: "hold", findings: [MEYER], override: "v1.x" }, { delayMs: 4000 });
  const messenger = standIn({ settings: { apiUrl: api.url, token: TOKEN } });
  const { guard, asked } = guardFor(messenger, { timeoutMs: 400 });
  const started = Date.now();
  assert.deepEqual(await guard(TAB, COMPOSE), { cancel: false });
  assert.ok(Date.now() - started < 3000, "the send waited for the slow API");
  assert.deepEqual(await guard(TAB, COMPOSE), { cancel: false });
  assert.equal(asked.length, 0);
  assert.equal(messenger.calls.notifications.length, 1);
  assert.match(messenger.calls.notifications[0].message, /did not answer/);
});

test("after the API is back, the next outage is told again", async () => {
  let down = true;
  api = await fakeApi(async () =>
    down ? { status: 503, raw: "busy" } : { status: 200, json: { action: "relay", findings: [], override: "v1.x" } },
  );
  const messenger = standIn({ settings: { apiUrl: api.url, token: TOKEN } });
  const { guard } = guardFor(messenger);
  await guard(TAB, COMPOSE);
  down = false;
  await guard(TAB, COMPOSE);
  down = true;
  await guard(TAB, COMPOSE);
  assert.equal(messenger.calls.notifications.length, 2);
});

test("token refused: sent, and the notification says where the token comes from", async () => {
  api = await fakeApi(async () => ({ status: 401, json: { error: "unauthorized", message: "wrong" } }));
  const messenger = standIn({ settings: { apiUrl: api.url, token: "wrong" } });
  const { guard } = guardFor(messenger);
  assert.deepEqual(await guard(TAB, COMPOSE), { cancel: false });
  assert.equal(messenger.calls.notifications.length, 1);
  assert.match(messenger.calls.notifications[0].message, /courtesy api token/);
});

test("no token set: sent without asking anybody", async () => {
  api = await answering({ action: "hold", findings: [MEYER], override: "v1.x" });
  const messenger = standIn({ settings: { apiUrl: api.url } });
  const { guard } = guardFor(messenger);
  assert.deepEqual(await guard(TAB, COMPOSE), { cancel: false });
  assert.equal(api.requests.length, 0);
  assert.equal(messenger.calls.notifications.length, 1);
});

test("nothing listening: sent", async () => {
  api = await answering({});
  const url = api.url;
  await api.close();
  api = undefined;
  const messenger = standIn({ settings: { apiUrl: url, token: TOKEN } });
  const { guard } = guardFor(messenger);
  assert.deepEqual(await guard(TAB, COMPOSE), { cancel: false });
  assert.equal(messenger.calls.notifications.length, 1);
});

test("a garbled answer or a broken window: sent", async () => {
  api = await fakeApi(async () => ({ status: 200, raw: "{not json" }));
  const messenger = standIn({ settings: { apiUrl: api.url, token: TOKEN } });
  assert.deepEqual(await guardFor(messenger).guard(TAB, COMPOSE), { cancel: false });
  await api.close();
  api = await answering({ action: "hold", findings: [MEYER], override: "v1.x" });
  const again = standIn({ settings: { apiUrl: api.url, token: TOKEN } });
  const { guard } = guardFor(again, { choice: new Error("window failed") });
  assert.deepEqual(await guard(TAB, COMPOSE), { cancel: false });
});

test("a reply asks with the thread headers; a lost original does not stop the check", async () => {
  api = await answering({ action: "relay", findings: [], override: "v1.x" });
  const related = { headers: { "message-id": ["<m1@example.org>"] } };
  const messenger = standIn({ settings: { apiUrl: api.url, token: TOKEN }, related });
  const reply = { ...COMPOSE, type: "reply", relatedMessageId: 42 };
  await guardFor(messenger).guard(TAB, reply);
  assert.deepEqual(messenger.calls.getFull, [42]);
  assert.equal(api.requests[0].body.in_reply_to, "<m1@example.org>");

  const lost = standIn({ settings: { apiUrl: api.url, token: TOKEN }, related: new Error("gone") });
  assert.deepEqual(await guardFor(lost).guard(TAB, reply), { cancel: false });
  assert.equal(api.requests.length, 2);
  assert.equal(api.requests[1].body.in_reply_to, undefined);
});
