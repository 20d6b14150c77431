// The add-on's decisions, without any browser global: Thunderbird's `messenger`
// and `fetch` are passed in, so node's test runner can drive every path with
// stand-ins. The rule that matters most: whatever goes wrong on our side, the
// send goes ahead — the add-on never blocks mail because the checker is away.

export const DEFAULT_SETTINGS = Object.freeze({
  apiUrl: "http://127.0.0.1:1588",
  token: "",
});
export const TIMEOUT_MS = 2000;
export const OVERRIDE_HEADER = "X-Courtesy-Override";
export const CHECK_PATH = "/api/v1/check";

/** Compose recipients as strings; contact and list ids (objects) are left out. */
export function recipientStrings(value) {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.filter((item) => typeof item === "string" && item.trim() !== "");
}

/** Inline images (data: URIs) would only make the request big; the checks read text. */
export function stripInlineImages(html) {
  return html.replace(/(\ssrc\s*=\s*)(["'])data:[^"']*\2/gi, "$1$2$2");
}

/** In-Reply-To and References of a reply, from the full message it answers. */
export function threadHeaders(related) {
  const first = (name) => {
    const values = related?.headers?.[name];
    return Array.isArray(values) && typeof values[0] === "string" ? values[0].trim() : "";
  };
  const messageId = first("message-id");
  if (!messageId) return {};
  const references = [first("references"), messageId].filter(Boolean).join(" ");
  return { in_reply_to: messageId, references };
}

/** The API request for what the compose window holds. */
export function buildRequest(details, related = null) {
  const payload = {
    from: typeof details.from === "string" ? details.from : "",
    to: recipientStrings(details.to),
    cc: recipientStrings(details.cc),
    bcc: recipientStrings(details.bcc),
    subject: details.subject ?? "",
  };
  if (details.isPlainText) {
    payload.text = details.plainTextBody ?? details.body ?? "";
  } else {
    // The HTML is what the user sees; the proxy finds the new text in it the
    // same way as in the HTML part of the message that is finally sent.
    payload.html = stripInlineImages(details.body ?? "");
  }
  if (related) Object.assign(payload, threadHeaders(related));
  return payload;
}

function validAnswer(body) {
  return (
    body !== null &&
    typeof body === "object" &&
    typeof body.action === "string" &&
    Array.isArray(body.findings) &&
    typeof body.override === "string"
  );
}

/**
 * Ask the proxy. Resolves to {ok: true, result} or {ok: false, reason} with
 * reason "no-token" | "token" | "timeout" | "unreachable" | "refused"; never rejects.
 */
export async function askApi(payload, settings, { fetch, timeoutMs = TIMEOUT_MS }) {
  if (!settings.token) return { ok: false, reason: "no-token" };
  let url;
  try {
    url = new URL(CHECK_PATH, settings.apiUrl || DEFAULT_SETTINGS.apiUrl);
  } catch {
    return { ok: false, reason: "unreachable", detail: "bad address" };
  }
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch(url.href, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Authorization: `Bearer ${settings.token}`,
      },
      body: JSON.stringify(payload),
      signal: controller.signal,
    });
    if (response.status === 401) return { ok: false, reason: "token" };
    const body = await response.json().catch(() => null);
    if (!response.ok || !validAnswer(body)) {
      const detail = body && typeof body.message === "string" ? body.message : `HTTP ${response.status}`;
      return { ok: false, reason: "refused", detail };
    }
    return { ok: true, result: body };
  } catch (error) {
    if (controller.signal.aborted) return { ok: false, reason: "timeout" };
    return { ok: false, reason: "unreachable", detail: String(error?.message ?? error) };
  } finally {
    clearTimeout(timer);
  }
}

/** Ask the user when the proxy would not simply relay, or found more than a hint. */
export function shouldAsk(result) {
  return result.action !== "relay" || result.findings.some((f) => f.severity !== "info");
}

/** The custom headers with our override token set (others kept, an old token replaced). */
export function withOverride(customHeaders, token) {
  const kept = (customHeaders ?? []).filter(
    (header) => header.name.toLowerCase() !== OVERRIDE_HEADER.toLowerCase(),
  );
  return [...kept, { name: OVERRIDE_HEADER, value: token }];
}

export async function loadSettings(messenger) {
  const stored = await messenger.storage.local.get(["apiUrl", "token"]);
  return {
    apiUrl: (stored.apiUrl || DEFAULT_SETTINGS.apiUrl).trim(),
    token: (stored.token || "").trim(),
  };
}

/**
 * The compose.onBeforeSend listener.
 *
 * deps: messenger, fetch, openWarning(findings, tab) -> Promise<"send" | "edit">,
 * timeoutMs. Returns what onBeforeSend expects: {cancel} (and details to set).
 */
export function createSendGuard({ messenger, fetch, openWarning, timeoutMs = TIMEOUT_MS, log = console }) {
  // One quiet notification per outage: not one per message while the proxy is away.
  let warned = false;

  async function notifyOnce(reason) {
    if (warned) return;
    warned = true;
    const key = reason === "token" || reason === "no-token" ? "notifyToken" : "notifyUnavailable";
    try {
      await messenger.notifications.create("courtesy-unavailable", {
        type: "basic",
        title: messenger.i18n.getMessage("extensionName"),
        message: messenger.i18n.getMessage(key),
      });
    } catch (error) {
      log.warn("courtesy: notification failed", error);
    }
  }

  async function related(details) {
    if (details.type !== "reply" || details.relatedMessageId === undefined) return null;
    try {
      return await messenger.messages.getFull(details.relatedMessageId);
    } catch {
      return null; // no thread headers: the checks run without the thread
    }
  }

  async function decide(tab, details) {
    const payload = buildRequest(details, await related(details));
    const answer = await askApi(payload, await loadSettings(messenger), { fetch, timeoutMs });
    if (!answer.ok) {
      log.info(`courtesy: sending unchecked (${answer.reason})`);
      await notifyOnce(answer.reason);
      return { cancel: false };
    }
    warned = false;
    if (!shouldAsk(answer.result)) return { cancel: false };
    const choice = await openWarning(answer.result.findings, tab);
    if (choice !== "send") return { cancel: true };
    const customHeaders = withOverride(details.customHeaders, answer.result.override);
    await messenger.compose.setComposeDetails(tab.id, { customHeaders });
    return { cancel: false, details: { customHeaders } };
  }

  return async function onBeforeSend(tab, details) {
    try {
      return await decide(tab, details);
    } catch (error) {
      log.error("courtesy: check failed, sending anyway", error);
      await notifyOnce("unreachable");
      return { cancel: false };
    }
  };
}

/**
 * Opens the warning window and resolves with the user's choice: "send", or
 * "edit" (also when the window is closed without a choice).
 */
export function createWarningWindows(messenger, { url = "warning/warning.html", width = 560, height = 380 } = {}) {
  const pending = new Map();
  let counter = 0;

  function settle(key, choice) {
    const entry = pending.get(key);
    if (!entry) return;
    pending.delete(key);
    entry.resolve(choice === "send" ? "send" : "edit");
  }

  messenger.runtime.onMessage.addListener((message) => {
    if (message?.type === "courtesy-warning-ready") {
      const entry = pending.get(message.key);
      return Promise.resolve(entry ? { findings: entry.findings } : null);
    }
    if (message?.type === "courtesy-warning-choice") {
      settle(message.key, message.choice);
      return Promise.resolve(true);
    }
    return undefined;
  });
  messenger.windows.onRemoved.addListener((windowId) => {
    for (const [key, entry] of pending) {
      if (entry.windowId === windowId) settle(key, "edit");
    }
  });

  return async function openWarning(findings) {
    counter += 1;
    const key = `w${counter}`;
    const choice = new Promise((resolve) => pending.set(key, { findings, resolve, windowId: null }));
    const created = await messenger.windows.create({
      url: `${url}?key=${encodeURIComponent(key)}`,
      type: "popup",
      width,
      height,
      allowScriptsToClose: true,
    });
    const entry = pending.get(key);
    if (entry) entry.windowId = created.id;
    return choice;
  };
}
