"""The words people are shown for Veritas's terms, from the one dictionary the pages also read
(web/static/js/words.json): event types, alert kinds, signals, statuses, outcomes."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

WORDS_FILE = Path(__file__).resolve().parent.parent / "web" / "static" / "js" / "words.json"


@cache
def dictionary() -> dict[str, dict[str, str]]:
    groups: dict[str, dict[str, str]] = {
        group: entries for group, entries in json.loads(WORDS_FILE.read_text()).items()
        if isinstance(entries, dict)}
    return groups


def say(group: str, key: str | None) -> str:
    """The plain words for `key` in `group`; a term with none (a monitoring module's own event
    type, say) is shown as it is, its underscores as spaces."""
    if key is None or key == "":
        return "—"
    return dictionary()[group].get(key) or key.replace("_", " ")
