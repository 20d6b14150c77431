// Options: where courtesy's API listens and its token; "Test connection" asks it.
import { DEFAULT_SETTINGS, loadSettings } from "../lib/guard.js";
import { testConnection } from "../lib/connection.js";

const t = (name, substitutions) => messenger.i18n.getMessage(name, substitutions);
const form = document.getElementById("form");
const apiUrl = document.getElementById("apiUrl");
const token = document.getElementById("token");
const status = document.getElementById("status");

for (const node of document.querySelectorAll("[data-i18n]")) {
  node.textContent = t(node.dataset.i18n);
}
document.title = t("optionsTitle");

const current = await loadSettings(messenger);
apiUrl.value = current.apiUrl;
apiUrl.placeholder = DEFAULT_SETTINGS.apiUrl;
token.value = current.token;

function settings() {
  return { apiUrl: apiUrl.value.trim() || DEFAULT_SETTINGS.apiUrl, token: token.value.trim() };
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  await messenger.storage.local.set(settings());
  status.textContent = t("optionsSaved");
});

document.getElementById("test").addEventListener("click", async () => {
  status.textContent = t("optionsTesting");
  status.textContent = await testConnection(settings(), { fetch: (...args) => fetch(...args), t });
});
