// The warning window in Thunderbird: ask the background for the findings,
// report the user's choice back, close.
import { renderWarning } from "../lib/warning-view.js";

const key = new URL(window.location.href).searchParams.get("key");
const t = (name, substitutions) => messenger.i18n.getMessage(name, substitutions);

async function choose(choice) {
  await messenger.runtime.sendMessage({ type: "courtesy-warning-choice", key, choice });
  window.close();
}

document.documentElement.lang = messenger.i18n.getUILanguage();
const answer = await messenger.runtime.sendMessage({ type: "courtesy-warning-ready", key });
renderWarning(document, document.getElementById("root"), answer?.findings ?? [], t, choose);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") choose("edit");
});
