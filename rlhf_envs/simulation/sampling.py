"""Small drawing helpers for domain hooks (``sample_profile`` and ``complete_facts``).

Hooks draw every value from the generator they are given, so a scenario is fixed by
its seed; these helpers keep the common draws (a choice, digits, a phone number, a
date some days away) the same in every domain.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np


def pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    """One element of a non-empty sequence."""
    return options[int(rng.integers(len(options)))]


def digits(rng: np.random.Generator, n: int) -> str:
    """``n`` random digits, the first not zero."""
    return str(int(rng.integers(10 ** (n - 1), 10**n)))


def phone(rng: np.random.Generator) -> str:
    """A US-style phone number, ``(555) 123-4567``."""
    return f"({digits(rng, 3)}) {digits(rng, 3)}-{digits(rng, 4)}"


def between(rng: np.random.Generator, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]`` (both included)."""
    return int(rng.integers(lo, hi + 1))


def shift_date(today: str, days: int) -> str:
    """The ISO date ``days`` after ``today`` (before it when negative)."""
    return (dt.date.fromisoformat(today) + dt.timedelta(days=days)).isoformat()
