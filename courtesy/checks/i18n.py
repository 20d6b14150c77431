"""User-facing sentences of the checks in German and English.

Each check module keeps its own table ``{key: {"en": ..., "de": ...}}`` and
calls :func:`say`; an unknown language falls back to English.
"""

from __future__ import annotations

from collections.abc import Mapping

Texts = Mapping[str, Mapping[str, str]]


def say(table: Texts, key: str, language: str, **values: object) -> str:
    entry = table[key]
    template = entry.get(language) or entry["en"]
    return template.format(**values)
