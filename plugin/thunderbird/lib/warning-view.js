// The warning window's content, built with DOM calls only (no innerHTML: the
// findings quote the user's own text). Used by warning.html in Thunderbird and
// by the preview page the tests render in Chromium.

import { describe } from "./findings.js";

function element(document, tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Fill `root` with the findings and the two buttons; `onChoice("edit" | "send")`. */
export function renderWarning(document, root, findings, t, onChoice) {
  root.replaceChildren();
  document.title = t("warningTitle");
  root.append(element(document, "h1", "title", t("warningHeading")));
  const list = element(document, "ul", "findings");
  for (const finding of findings) {
    const view = describe(finding, t);
    const item = element(document, "li", `finding severity-${view.severity}`);
    item.dataset.code = view.code;
    item.append(element(document, "p", "sentence", view.sentence));
    if (view.hint) item.append(element(document, "p", "hint", view.hint));
    list.append(item);
  }
  root.append(list);
  root.append(element(document, "p", "explain", t("warningExplain")));
  const buttons = element(document, "div", "buttons");
  const edit = element(document, "button", "edit", t("buttonEdit"));
  edit.id = "edit";
  edit.type = "button";
  const send = element(document, "button", "send", t("buttonSendAnyway"));
  send.id = "send";
  send.type = "button";
  edit.addEventListener("click", () => onChoice("edit"));
  send.addEventListener("click", () => onChoice("send"));
  buttons.append(edit, send);
  root.append(buttons);
  edit.focus(); // Enter keeps the draft: the careful choice is the default
  return { edit, send };
}
