import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { test } from "node:test";

import { testConnection } from "../lib/connection.js";
import { describe, mistakenWord } from "../lib/findings.js";
import { translator } from "../lib/i18n.js";
import { MEYER, fakeApi } from "./stand-in.mjs";

const read = (path) => JSON.parse(readFileSync(new URL(path, import.meta.url)));
const en = read("../_locales/en/messages.json");
const de = read("../_locales/de/messages.json");

test("German and English have the same texts", () => {
  assert.deepEqual(Object.keys(de).sort(), Object.keys(en).sort());
  for (const [name, entry] of Object.entries(de)) assert.ok(entry.message.trim(), name);
});

test("every text the code asks for exists", () => {
  const sources = ["../lib/guard.js", "../lib/connection.js", "../lib/warning-view.js", "../lib/findings.js", "../options/options.html"]
    .map((path) => readFileSync(new URL(path, import.meta.url), "utf8"))
    .join("\n");
  const used = new Set([...sources.matchAll(/\b(?:t|getMessage)\("(\w+)"|data-i18n="(\w+)"|"(notify\w+)"/g)].map((m) => m[1] ?? m[2] ?? m[3]));
  assert.ok(used.size > 10);
  for (const name of used) assert.ok(en[name], `missing text ${name}`);
});

test("the manifest names files that exist", () => {
  const manifest = read("../manifest.json");
  const files = [manifest.background.page, manifest.options_ui.page, ...Object.values(manifest.icons)];
  for (const file of files) assert.ok(existsSync(new URL(`../${file}`, import.meta.url)), file);
  assert.ok(manifest.permissions.includes("compose"));
  assert.equal(manifest.browser_specific_settings.gecko.strict_min_version, "128.0");
});

test("the suggestion names the mistaken word", () => {
  assert.equal(mistakenWord("Hallo Herr Meyer,", "Meier"), "Meyer");
  assert.equal(mistakenWord("Sehr geehrte Frau Dr. Mülller,", "Müller"), "Mülller");
  assert.equal(mistakenWord("Hallo Herr Schmidt,", "Meier"), "");
  assert.equal(mistakenWord("Hallo Herr Meier,", "Meier"), "");
  assert.equal(mistakenWord("", "Meier"), "");
  assert.equal(describe(MEYER, translator(en)).hint, "Meier, not Meyer");
  assert.equal(describe(MEYER, translator(de)).hint, "Meier, nicht Meyer");
  const far = { ...MEYER, evidence: "Hallo Herr Schulz,", suggestion: "Meier" };
  assert.equal(describe(far, translator(en)).hint, "Suggestion: Meier");
  assert.equal(describe({ ...MEYER, suggestion: null }, translator(en)).hint, "");
  assert.equal(describe({ ...MEYER, severity: "bogus" }, translator(en)).severity, "warn");
});

test("test connection says what happened", async () => {
  const t = translator(en);
  let status = 200;
  const api = await fakeApi(async () => ({ status, json: status === 200 ? { action: "relay", findings: [], override: "v1.x" } : { error: "x", message: "the body must be application/json" } }));
  try {
    const settings = { apiUrl: api.url, token: "t" };
    assert.match(await testConnection(settings, { fetch, t }), /^Connected/);
    status = 401;
    assert.match(await testConnection(settings, { fetch, t }), /refuses this token/);
    status = 415;
    assert.match(await testConnection(settings, { fetch, t }), /refused the request: the body must be/);
    assert.match(await testConnection({ apiUrl: api.url, token: "" }, { fetch, t }), /token first/);
  } finally {
    await api.close();
  }
  assert.match(await testConnection({ apiUrl: api.url, token: "t" }, { fetch, t }), /Cannot reach courtesy at http:\/\/127\.0\.0\.1/);
});
