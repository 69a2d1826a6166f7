"""A scenario: who the user is, what they want and the facts of their case.

Sampled once per episode from the env's random generator; everything that happens
afterwards in the episode follows from it and the agent's replies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Scenario:
    """One episode's case.

    Attributes:
        domain: name of the domain (``"customer_service"``, ...).
        flow, subflow: the task family and the task (``"refunds_returns"``, ``"return_size"``).
        facts: everything true about the case: profile, order, the answers of the
            company's systems. The user knows their own facts and reveals them when asked.
        persona: how the user behaves (``patience``, ``politeness``, ``verbosity``).
    """

    domain: str
    flow: str
    subflow: str
    facts: Mapping[str, Any]
    persona: Mapping[str, Any]

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly description (what ``reset`` puts in ``info``)."""
        return {
            "domain": self.domain,
            "flow": self.flow,
            "subflow": self.subflow,
            "persona": dict(self.persona),
        }

    def __reduce__(
        self,
    ) -> tuple[Callable[..., Scenario], tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
        # MappingProxyType does not pickle; rebuild from plain dicts.
        return (
            _rebuild,
            (self.domain, self.flow, self.subflow, dict(self.facts), dict(self.persona)),
        )


def _rebuild(
    domain: str, flow: str, subflow: str, facts: dict[str, Any], persona: dict[str, Any]
) -> Scenario:
    return Scenario(domain, flow, subflow, MappingProxyType(facts), MappingProxyType(persona))


def sample_fact(spec: Any, rng: np.random.Generator) -> Any:
    """Draw one value of a fact distribution written in a domain's data.

    Accepted forms: a list (uniform choice), ``{int: [lo, hi]}`` (inclusive integer
    range) or a constant.
    """
    if isinstance(spec, list):
        return spec[int(rng.integers(len(spec)))]
    if isinstance(spec, Mapping) and "int" in spec:
        lo, hi = spec["int"]
        return int(rng.integers(lo, hi + 1))
    return spec
