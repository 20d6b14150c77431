// A stand-in for the parts of Thunderbird's `messenger` the add-on uses, recording calls,
// and a real local HTTP server playing courtesy's check API.
import http from "node:http";
import { readFileSync } from "node:fs";

import { translator } from "../lib/i18n.js";

const messages = JSON.parse(readFileSync(new URL("../_locales/en/messages.json", import.meta.url)));

function event() {
  const listeners = [];
  return {
    listeners,
    addListener: (fn) => listeners.push(fn),
    fire: (...args) => listeners.map((fn) => fn(...args)),
  };
}

export function standIn({ settings = {}, related = null } = {}) {
  const calls = { notifications: [], setComposeDetails: [], windows: [], getFull: [] };
  let nextWindow = 100;
  const stored = { ...settings };
  const messenger = {
    calls,
    storage: {
      local: {
        get: async (keys) => Object.fromEntries(keys.filter((k) => k in stored).map((k) => [k, stored[k]])),
        set: async (values) => Object.assign(stored, values),
      },
    },
    i18n: { getMessage: translator(messages), getUILanguage: () => "en" },
    notifications: {
      create: async (id, options) => {
        calls.notifications.push({ id, ...options });
        return id;
      },
    },
    compose: {
      setComposeDetails: async (tabId, details) => {
        calls.setComposeDetails.push({ tabId, details });
      },
      onBeforeSend: event(),
    },
    messages: {
      getFull: async (id) => {
        calls.getFull.push(id);
        if (related instanceof Error) throw related;
        return related;
      },
    },
    runtime: { onMessage: event() },
    windows: {
      onRemoved: event(),
      create: async (options) => {
        nextWindow += 1;
        calls.windows.push({ id: nextWindow, ...options });
        return { id: nextWindow };
      },
    },
  };
  return messenger;
}

/** courtesy's API on a free loopback port; `respond(request, body)` -> {status, json, delayMs}. */
export async function fakeApi(respond) {
  const requests = [];
  const server = http.createServer((request, response) => {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", async () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const seen = { method: request.method, url: request.url, headers: request.headers, body: JSON.parse(text || "null") };
      requests.push(seen);
      const answer = await respond(seen);
      if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
      if (response.destroyed) return;
      response.writeHead(answer.status ?? 200, { "Content-Type": "application/json" });
      response.end(typeof answer.raw === "string" ? answer.raw : JSON.stringify(answer.json ?? {}));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}

export const MEYER = {
  code: "name.misspelled",
  severity: "block",
  message: "The greeting says 'Meyer'; the recipient is Thomas Meier.",
  evidence: "Hallo Herr Meyer,",
  suggestion: "Meier",
};

export const COMPOSE = Object.freeze({
  from: "Anna Schmidt <anna@example.com>",
  to: ["Thomas Meier <thomas.meier@example.org>"],
  cc: [],
  bcc: [],
  subject: "Angebot für Dienstag",
  isPlainText: false,
  body: "<p>Hallo Herr Meyer,</p><p>anbei das Angebot.</p>",
  plainTextBody: "Hallo Herr Meyer,\n\nanbei das Angebot.",
  type: "new",
  customHeaders: [{ name: "X-Other", value: "kept" }],
});
