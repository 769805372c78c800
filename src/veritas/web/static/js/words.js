// The words people are shown for Veritas's own terms (event types, signals, alert kinds,
// statuses), in one place: words.json, which the server's printable reports read too.
// Every page says a term through say(); a term with no entry (a monitoring module's own
// event type) is shown as it is, its underscores as spaces.

let WORDS = {};
try {
  const res = await fetch(new URL('./words.json', import.meta.url));
  if (res.ok) WORDS = await res.json();
} catch {
  // Without the dictionary the pages still work, with the terms themselves.
}

/** The plain words for `key` in `group` (e.g. say('signals', 'paste_ratio')). */
export function say(group, key) {
  if (key === null || key === undefined || key === '') return '—';
  return WORDS[group]?.[key] || String(key).replaceAll('_', ' ');
}

/** [key, words] pairs of a group, for a select's options. */
export function choices(group) {
  return Object.entries(WORDS[group] || {});
}
