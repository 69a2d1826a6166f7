"""Words as the hashed n-gram encoders read them, and the stable hash they use.

The select interface's observations and the linear reward model's features are both
built from these, so they live apart from both (reward models never import the
interfaces): word tokens with fact-like values replaced by their kind, and a string
hash that is the same in every process (Python's ``hash()`` is not).
"""

from __future__ import annotations

import re
import zlib

from rlhf_envs.simulation.values import find_values

_MASK = 0xFFFFFFFF
_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)?|[?!]")


def stable_hash(text: str, salt: int = 0) -> int:
    """32-bit CRC of ``text`` mixed with ``salt``: the same in every process."""
    return zlib.crc32(text.encode("utf-8"), salt) & _MASK


def value_marked_tokens(text: str, seen: frozenset[str] | None) -> list[str]:
    """Lower-cased words of ``text``, values replaced by kind tokens (``<money:new>``, ...).

    A value is marked ``:seen`` when it is in ``seen`` (already stated in the dialogue)
    and ``:new`` otherwise; with ``seen=None`` the kind token carries no mark.
    """
    lower = text.lower()
    values = find_values(text)
    if not values:
        return _TOKEN_RE.findall(lower)
    out: list[str] = []
    at = 0
    for start, end, kind, value in values:
        out.extend(_TOKEN_RE.findall(lower[at:start]))
        mark = "" if seen is None else (":seen" if value in seen else ":new")
        out.append(f"<{kind}{mark}>")
        at = end
    out.extend(_TOKEN_RE.findall(lower[at:]))
    return out
