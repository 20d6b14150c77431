import assert from "node:assert/strict";
import { test } from "node:test";

import { buildRequest, recipientStrings, stripInlineImages, threadHeaders } from "../lib/guard.js";
import { COMPOSE } from "./stand-in.mjs";

test("an HTML compose window becomes a request with the HTML", () => {
  assert.deepEqual(buildRequest(COMPOSE), {
    from: "Anna Schmidt <anna@example.com>",
    to: ["Thomas Meier <thomas.meier@example.org>"],
    cc: [],
    bcc: [],
    subject: "Angebot für Dienstag",
    html: "<p>Hallo Herr Meyer,</p><p>anbei das Angebot.</p>",
  });
});

test("a plain-text compose window sends its text", () => {
  const request = buildRequest({ ...COMPOSE, isPlainText: true, body: undefined });
  assert.equal(request.text, "Hallo Herr Meyer,\n\nanbei das Angebot.");
  assert.equal(request.html, undefined);
});

test("recipients: strings kept, contact and list ids left out, one string is a list", () => {
  assert.deepEqual(recipientStrings(["a@example.com", { id: "c1", type: "contact" }, " "]), ["a@example.com"]);
  assert.deepEqual(recipientStrings("b@example.com"), ["b@example.com"]);
  assert.deepEqual(recipientStrings(undefined), []);
  const request = buildRequest({ ...COMPOSE, bcc: "Boss <boss@example.org>", cc: [{ id: "l1", type: "mailingList" }] });
  assert.deepEqual(request.bcc, ["Boss <boss@example.org>"]);
  assert.deepEqual(request.cc, []);
});

test("inline images are dropped from the HTML, the text stays", () => {
  const html = '<p>Hallo Herr Meier,</p><img alt="logo" src="data:image/png;base64,AAAA"><img src=\'data:image/gif;base64,BBBB\'>';
  assert.equal(stripInlineImages(html), '<p>Hallo Herr Meier,</p><img alt="logo" src=""><img src=\'\'>');
  assert.ok(!buildRequest({ ...COMPOSE, body: html }).html.includes("base64"));
});

test("a reply carries In-Reply-To and References of the message it answers", () => {
  const related = {
    headers: {
      "message-id": ["<m2@example.org>"],
      references: ["<m0@example.org> <m1@example.org>"],
    },
  };
  assert.deepEqual(threadHeaders(related), {
    in_reply_to: "<m2@example.org>",
    references: "<m0@example.org> <m1@example.org> <m2@example.org>",
  });
  assert.deepEqual(threadHeaders({ headers: { "message-id": ["<m9@example.org>"] } }), {
    in_reply_to: "<m9@example.org>",
    references: "<m9@example.org>",
  });
  assert.deepEqual(threadHeaders({ headers: {} }), {});
  const request = buildRequest(COMPOSE, related);
  assert.equal(request.in_reply_to, "<m2@example.org>");
});
