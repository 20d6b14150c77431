// "Test connection" in the options: one small check request, its outcome in one sentence.
import { askApi } from "./guard.js";

export const PROBE = Object.freeze({
  from: "courtesy-addon@localhost.invalid",
  to: ["courtesy-addon@localhost.invalid"],
  subject: "courtesy add-on connection test",
  text: "Hello,\n\nthis is a connection test.\n",
});

export async function testConnection(settings, { fetch, t, timeoutMs }) {
  const answer = await askApi(PROBE, settings, { fetch, timeoutMs });
  if (answer.ok) return t("testOk");
  switch (answer.reason) {
    case "no-token":
      return t("testNoToken");
    case "token":
      return t("testToken");
    case "timeout":
      return t("testTimeout", [settings.apiUrl]);
    case "refused":
      return t("testRefused", [answer.detail ?? ""]);
    default:
      return t("testUnreachable", [settings.apiUrl]);
  }
}
