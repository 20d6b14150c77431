// How a finding reads in the warning window: its sentence, and the suggestion
// put as "Meier, not Meyer" when the mistaken word can be found in the evidence.

function distance(a, b) {
  const previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i += 1) {
    let diagonal = previous[0];
    previous[0] = i;
    for (let j = 1; j <= b.length; j += 1) {
      const above = previous[j];
      previous[j] = Math.min(
        previous[j] + 1,
        previous[j - 1] + 1,
        diagonal + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diagonal = above;
    }
  }
  return previous[b.length];
}

/** The word of `evidence` the suggestion corrects, or "" when there is no close one. */
export function mistakenWord(evidence, suggestion) {
  if (!evidence || !suggestion || /\s/.test(suggestion.trim())) return "";
  const wanted = suggestion.trim().toLocaleLowerCase();
  const limit = Math.max(2, Math.floor(wanted.length / 3));
  let best = "";
  let bestDistance = limit + 1;
  for (const word of evidence.split(/[^\p{L}\p{M}'’-]+/u)) {
    const candidate = word.toLocaleLowerCase();
    if (!candidate || candidate === wanted) continue;
    const d = distance(candidate, wanted);
    if (d < bestDistance) {
      best = word;
      bestDistance = d;
    }
  }
  return best;
}

/** View model of one finding: {code, severity, sentence, hint}. `t` is an i18n getMessage. */
export function describe(finding, t) {
  let hint = "";
  if (finding.suggestion) {
    const wrong = mistakenWord(finding.evidence, finding.suggestion);
    hint = wrong
      ? t("suggestionInstead", [finding.suggestion, wrong])
      : t("suggestion", [finding.suggestion]);
  }
  return {
    code: String(finding.code ?? ""),
    severity: ["info", "warn", "block"].includes(finding.severity) ? finding.severity : "warn",
    sentence: String(finding.message ?? ""),
    hint,
  };
}
