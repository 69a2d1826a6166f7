"""Fact-like values in text: amounts, ids, emails, phone numbers, dates, durations.

A rater checks a reply's facts by comparing the values it states with what the scenario
and the dialogue establish. The same extractor runs on the scenario's facts, on the
dialogue and on the reply, so "grounded" is simply set membership after normalisation.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Order matters: longer, more specific shapes first, so "$94.00" is one money value and
# not also the number "94".
_PATTERNS: tuple[tuple[str, str], ...] = (
    ("email", r"[a-z0-9._+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+"),
    ("phone", r"\(\d{3}\)\s?\d{3}-\d{4}"),
    ("date", r"\b\d{4}-\d{2}-\d{2}\b"),
    ("money", r"\$\s?\d[\d,]*(?:\.\d{1,2})?"),
    ("percent", r"\b\d+(?:\.\d+)?\s?%"),
    ("duration", r"\b\d+\s?(?:business\s)?(?:days?|weeks?|months?|hours?|years?)\b"),
    ("code", r"\b(?=[a-z0-9-]*\d)[a-z0-9]+(?:-[a-z0-9]+)+\b"),
    ("number", r"\b\d{3,}\b"),
)
_VALUE_RE = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _PATTERNS))
_SPACE_RE = re.compile(r"\s+")


def normalise_value(kind: str, raw: str) -> str:
    """Canonical form of one extracted value, so "$94.00" equals "$94"."""
    if kind == "money":
        digits = raw.replace("$", "").replace(",", "").strip()
        amount = float(digits)
        return f"${amount:g}" if amount != int(amount) else f"${int(amount)}"
    if kind == "phone":
        return re.sub(r"\D", "", raw)
    if kind == "duration":
        number, unit = re.match(r"(\d+)\s?(?:business\s)?([a-z]+)", raw).groups()
        return f"{int(number)} {unit.rstrip('s')}"
    return _SPACE_RE.sub("", raw)


@lru_cache(maxsize=65536)
def find_values(text: str) -> tuple[tuple[int, int, str, str], ...]:
    """Every fact-like value in lower-cased ``text`` as ``(start, end, kind, normalised)``."""
    return tuple(
        (m.start(), m.end(), m.lastgroup, normalise_value(m.lastgroup, m.group(m.lastgroup)))
        for m in _VALUE_RE.finditer(text.lower())
    )


@lru_cache(maxsize=65536)
def extract_values(text: str) -> frozenset[str]:
    """All fact-like values in ``text``, normalised (cached: texts repeat a lot)."""
    return frozenset(value for *_, value in find_values(text))


def mentions(value: object, text: str, text_values: frozenset[str] | None = None) -> bool:
    """Whether ``text`` states ``value``: by its normalised values when it has any
    ("$94.00" states "$94"), otherwise as a whole phrase, ignoring case."""
    wanted = extract_values(str(value))
    if wanted:
        return wanted <= (extract_values(text) if text_values is None else text_values)
    return _phrase_in(str(value).lower(), text.lower())


@lru_cache(maxsize=65536)
def _phrase_in(phrase: str, text: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(phrase)}(?![\w])", text) is not None
