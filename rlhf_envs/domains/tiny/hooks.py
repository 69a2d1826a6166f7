"""Hooks of the tiny library domain."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlhf_envs.simulation.sampling import pick


def sample_profile(data: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    first, last = pick(rng, data["first_names"]), pick(rng, data["last_names"])
    today = dt.date.fromisoformat(data["today"])
    return {
        "first_name": first,
        "full_name": f"{first} {last}",
        "card_number": str(int(rng.integers(100000, 999999))),
        "birth_year": str(int(rng.integers(1940, 2010))),
        "due_date": (today + dt.timedelta(days=int(rng.integers(14, 28)))).isoformat(),
        "new_pin": str(int(rng.integers(1000, 9999))),
    }


def complete_facts(
    facts: dict[str, Any], data: Mapping[str, Any], rng: np.random.Generator
) -> None:
    pass


def no_fines(f: Mapping[str, Any]) -> bool:
    """Books renew only on accounts with no unpaid fines."""
    return f["fines"] == "$0"


DECISIONS = {"no_fines": no_fines}
