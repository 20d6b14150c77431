import { translator } from "../lib/i18n.js";
import { renderWarning } from "../lib/warning-view.js";

const lang = new URL(window.location.href).searchParams.get("lang") === "de" ? "de" : "en";
const [messages, samples] = await Promise.all([
  fetch(`../_locales/${lang}/messages.json`).then((r) => r.json()),
  fetch("sample-findings.json").then((r) => r.json()),
]);
document.documentElement.lang = lang;
renderWarning(document, document.getElementById("root"), samples[lang], translator(messages), (choice) => {
  document.body.dataset.choice = choice;
});
document.body.dataset.ready = "yes";
