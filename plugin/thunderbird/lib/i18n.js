// getMessage for pages outside Thunderbird (node tests, the window preview in a
// browser): the same _locales/*/messages.json, with $1..$9 substitutions.

export function translator(messages) {
  return function getMessage(name, substitutions = []) {
    const entry = messages[name];
    if (!entry) return "";
    const values = Array.isArray(substitutions) ? substitutions : [substitutions];
    return entry.message.replace(/\$(\d)/g, (_, n) => String(values[Number(n) - 1] ?? ""));
  };
}
