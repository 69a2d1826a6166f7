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
    ("email", r"(?<![a-z0-9._+-])[a-z0-9._+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+"),
    ("phone", r"\(\d{3}\)\s?\d{3}-\d{4}"),
    ("date", r"\b\d{4}-\d{2}-\d{2}\b"),
    ("money", r"\$\s?\d[\d,]*(?:\.\d{1,2})?"),
    ("percent", r"\b\d+(?:\.\d+)?\s?%"),
    ("duration", r"\b\d+\s?(?:business\s)?(?:days?|weeks?|months?|hours?|years?)\b"),
    ("code", r"\b(?=[a-z0-9-]*\d)[a-z0-9]+(?:-[a-z0-9]+)+\b"),
    ("number", r"\b\d{3,}\b"),
)
# Every "plain" shape starts with a digit, "$" or "(": a cheap first-character test lets
# the regex engine skip all other positions. Emails and codes are costly to try at every
# word, so they are looked for only in texts with an "@" or a "-".
_PLAIN = tuple((n, p) for n, p in _PATTERNS if n not in ("email", "code"))
_PLAIN_RE = re.compile("(?=[\\d$(])(?:" + "|".join(f"(?P<{n}>{p})" for n, p in _PLAIN) + ")")
_EMAIL_RE = re.compile(dict(_PATTERNS)["email"])
_CODE_RE = re.compile(dict(_PATTERNS)["code"])
_PRIORITY = {name: i for i, (name, _) in enumerate(_PATTERNS)}
# Every value shape has a digit or an "@"; most texts have neither and skip the scan.
_MAY_HAVE_VALUE = re.compile(r"[\d@]")
_SPACE_RE = re.compile(r"\s+")
# Shapes that cannot hold white space: their normalised form is the text itself.
_WITHOUT_SPACE = frozenset({"email", "date", "code", "number"})


def normalise_value(kind: str, raw: str) -> str:
    """Canonical form of one extracted value, so "$94.00" equals "$94"."""
    if kind == "money":
        digits = raw.replace("$", "").replace(",", "").strip()
        amount = float(digits)
        return f"${amount:g}" if amount != int(amount) else f"${int(amount)}"
    if kind == "phone":
        return re.sub(r"\D", "", raw)
    if kind == "duration":
        match = re.match(r"(\d+)\s?(?:business\s)?([a-z]+)", raw)
        assert match is not None  # ``raw`` matched the duration pattern
        number, unit = match.groups()
        return f"{int(number)} {unit.rstrip('s')}"
    return _SPACE_RE.sub("", raw)


@lru_cache(maxsize=16384)
def find_values(text: str) -> tuple[tuple[int, int, str, str], ...]:
    """Every fact-like value in lower-cased ``text`` as ``(start, end, kind, normalised)``."""
    if not _MAY_HAVE_VALUE.search(text):
        return ()
    lower = text.lower()
    shape = (
        lower.encode("ascii").translate(_ZEROS) if lower.isascii() else lower.translate(_ZEROS_STR)
    )
    return tuple(
        (
            start,
            end,
            kind,
            lower[start:end] if kind in _WITHOUT_SPACE else normalise_value(kind, lower[start:end]),
        )
        for start, end, kind in _value_spans(shape)
    )


# Every value shape matches digits through classes (``\d``, ``[a-z0-9]``, ...), never
# one digit in particular: where values start and end, and their kinds, depend on the
# text with its digits 1-9 read as 0. Ids, amounts, dates and phone numbers of one form
# (a new order number in the same sentence) then share one scan.
_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_ZEROS_STR = str.maketrans("123456789", "000000000")


@lru_cache(maxsize=16384)
def _value_spans(shape: bytes | str) -> tuple[tuple[int, int, str], ...]:
    """``(start, end, kind)`` of every value in a lower-cased text whose digits 1-9 were
    replaced by 0 (ASCII texts as bytes: the cheaper replacement)."""
    lower = shape.decode("ascii") if isinstance(shape, bytes) else shape
    found: list[tuple[int, int, str]] = []
    for m in _PLAIN_RE.finditer(lower):
        kind = m.lastgroup
        assert kind is not None  # every alternative of the pattern is a named group
        found.append((m.start(), m.end(), kind))
    extra: list[tuple[int, int, str]] = []
    if "@" in lower:
        extra += [(m.start(), m.end(), "email") for m in _EMAIL_RE.finditer(lower)]
    if "-" in lower:
        extra += [(m.start(), m.end(), "code") for m in _CODE_RE.finditer(lower)]
    if extra:
        # Overlaps: the earliest, then longest, then higher-priority shape wins.
        merged: list[tuple[int, int, str]] = []
        end = -1
        for item in sorted(found + extra, key=lambda f: (f[0], f[0] - f[1], _PRIORITY[f[2]])):
            if item[0] >= end:
                merged.append(item)
                end = item[1]
        found = merged
    return tuple(found)


@lru_cache(maxsize=16384)
def extract_values(text: str) -> frozenset[str]:
    """All fact-like values in ``text``, normalised (cached: texts repeat a lot)."""
    return frozenset(value for *_, value in find_values(text))


def mentions(value: object, text: str, text_values: frozenset[str] | None = None) -> bool:
    """Whether ``text`` states ``value``: by its normalised values when it has any
    ("$94.00" states "$94"), otherwise as a whole phrase, ignoring case."""
    values = extract_values(text) if text_values is None else text_values
    return states(fact_probe(str(value)), text.lower(), values)


@lru_cache(maxsize=16384)
def fact_probe(value: str) -> tuple[frozenset[str], str]:
    """What :func:`mentions` looks for to find ``value`` in a text: its normalised values,
    or (when it has none) the lower-cased phrase itself. For checking one fact against
    many texts (:func:`states`)."""
    return extract_values(value), value.lower()


def states(probe: tuple[frozenset[str], str], lower: str, text_values: frozenset[str]) -> bool:
    """:func:`mentions` with the fact's :func:`fact_probe`, the text lower-cased and the
    text's values already at hand."""
    return probe[0] <= text_values if probe[0] else _phrase_in(probe[1], lower)


def _phrase_in(phrase: str, text: str) -> bool:
    """``phrase`` occurs in ``text`` as whole words."""
    at = text.find(phrase)
    while at >= 0:
        end = at + len(phrase)
        if (at == 0 or not text[at - 1].isalnum()) and (
            end == len(text) or not text[end].isalnum()
        ):
            return True
        at = text.find(phrase, at + 1)
    return False
