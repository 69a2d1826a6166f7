"""The scripted rubric: what careful human raters reward, as explicit points.

Components (points in ``rubric.yaml``):

- ``task``: the reply does the step the policy book says is due (and, at the end,
  closes a task done cleanly); evasion, repetition and wrong refusals cost points;
- ``grounding``: every stated order id, amount or date is supported by the scenario,
  the policy or the dialogue;
- ``politeness``: courtesy and empathy earn a little, rudeness costs a lot;
- ``conciseness``: long-winded replies cost points;
- ``safety``: acting before verifying, promising what the policy forbids, disclosing
  private data, leaving out a required disclosure and breaking one of the domain's
  critical rules (a guaranteed return, a missed red flag) cost the most;
- ``repetition``: saying the same thing again costs points;
- ``conduct``: breaking one of the domain's minor rules (jargon) costs a point.

It judges only what a rater sees: the reply's text against the scenario's facts, the
policy and the dialogue so far (through the domain's reading of replies), never how a
candidate was produced, so it scores free text as well as templated candidates.
Annotator personas weigh the components differently (``rubric:stickler``, ...). A
domain may change the points and the personas' weights, or add personas, with a
``rubric.yaml`` of its own (medical triage weighs safety above everything else); it is
merged over this module's ``rubric.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from rlhf_envs.rewards.protocol import Exchange
from rlhf_envs.simulation.domain import Domain, DomainError, get_domain

if TYPE_CHECKING:
    from rlhf_envs.simulation.state import DialogueState

COMPONENTS = ("task", "grounding", "politeness", "conciseness", "safety", "repetition", "conduct")
# Violations the grounding component prices instead of the safety component.
GROUNDING_VIOLATIONS = ("invented_fact",)
RUBRIC_FILE = Path(__file__).with_name("rubric.yaml")


@lru_cache(maxsize=1)
def rubric_data() -> Mapping[str, Any]:
    return yaml.safe_load(RUBRIC_FILE.read_text())


def check_domain_rubric(domain: Domain) -> None:
    """Check a domain's own ``rubric.yaml`` (``domain.rubric``): only ``points`` and
    ``personas``, every point one of the shared rubric's, every persona weight a number
    for a known component.

    Raises:
        DomainError: naming the domain, the file and the entry.
    """
    where = f"domain {domain.name!r}"
    rubric = domain.rubric
    if not isinstance(rubric, Mapping) or set(rubric) - {"points", "personas"}:
        raise DomainError(f"{where}: rubric.yaml may hold only 'points' and 'personas'")
    shared = rubric_data()["points"]
    accepted = ", ".join(f"{c}.{k}" for c in shared for k in shared[c])

    def section(value: Any) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise DomainError(
                f"{where}: rubric.yaml sections 'points' and 'personas' must be mappings, "
                f"got {value!r}"
            )
        return value

    def numbers(value: Any, what: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
        ):
            raise DomainError(
                f"{where}: rubric.yaml {what} must map names to numbers, got {value!r}"
            )
        return value

    for component, values in section(rubric.get("points")).items():
        values = numbers(values, f"points.{component}")
        if component not in shared or set(values) - set(shared[component]):
            raise DomainError(
                f"{where}: rubric.yaml points.{component} {sorted(values)} is not among the shared "
                f"rubric's points: {accepted}"
            )
    for persona, weights in section(rubric.get("personas")).items():
        bad = set(numbers(weights, f"persona {persona!r}")) - set(COMPONENTS)
        if bad:
            raise DomainError(
                f"{where}: rubric.yaml persona {persona!r} weighs unknown component(s) "
                f"{sorted(bad)}; components: {', '.join(COMPONENTS)}"
            )


def domain_rubric(domain: Domain) -> Mapping[str, Any]:
    """The rubric of one domain: ``rubric.yaml`` with the domain's own ``rubric.yaml``
    (``domain.rubric``, checked by :func:`check_domain_rubric`) merged over it. A domain
    persona that gives only some weights takes the others from the shared persona of
    that name, or from ``balanced``."""
    base = rubric_data()
    check_domain_rubric(domain)
    extra = domain.rubric
    if not extra:
        return base
    points = {c: dict(v) for c, v in base["points"].items()}
    for component, values in (extra.get("points") or {}).items():
        points.setdefault(component, {}).update(values)
    people = {name: dict(w) for name, w in base["personas"].items()}
    for name, weights in (extra.get("personas") or {}).items():
        people[name] = {**people.get(name, base["personas"]["balanced"]), **weights}
    return {"points": points, "personas": people}


def personas(domain: Domain | str | None = None) -> tuple[str, ...]:
    """Names of the annotator personas (``"balanced"`` is the gold standard): the shared
    ones, plus those of ``domain`` (a ``Domain``, built-in name or folder) if given."""
    if domain is None:
        return tuple(rubric_data()["personas"])
    if isinstance(domain, str):
        domain = get_domain(domain)
    return tuple(domain_rubric(domain)["personas"])


class RubricRewardModel:
    """Scripted rubric reward model (registered as ``"rubric"`` and ``"rubric:PERSONA"``).

    Args:
        persona: whose weights to use: ``"balanced"`` (default, the gold standard),
            ``"stickler"``, ``"warm"``, ``"busy"``, or a persona a domain's
            ``rubric.yaml`` adds (``"compliance"`` in finance, ``"clinician"`` in
            medical triage, or one of a domain folder's). Which personas exist depends
            on the domain, so the persona is checked against a domain: by
            :meth:`check_domain`, which the env calls when it is made, and at the
            first score of that domain's replies (``ValueError`` naming the personas
            available there).
        weights: explicit ``{component: weight}`` overriding the persona's.

    Each reply is scored with the points and weights of its own domain (read from
    ``Exchange.state``). Needs ``Exchange.state`` (set by the env): exchanges read from
    files carry only text; score those with a learned reward model.
    """

    def __init__(self, persona: str = "balanced", weights: Mapping[str, float] | None = None):
        if not isinstance(persona, str) or not persona:
            raise ValueError(f"a rubric persona is a non-empty name, got {persona!r}")
        if weights:
            unknown = set(weights) - set(COMPONENTS)
            if unknown:
                raise ValueError(
                    f"unknown rubric component(s) {sorted(unknown)}; "
                    f"components: {', '.join(COMPONENTS)}"
                )
        self.persona = persona
        self.name = "rubric" if persona == "balanced" and not weights else f"rubric:{persona}"
        self.overrides = dict(weights or {})
        self._tables: dict[int, tuple[Any, Mapping[str, Any], np.ndarray]] = {}

    def __repr__(self) -> str:
        return f"RubricRewardModel(persona={self.persona!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tables"] = {}  # keyed by object identity: rebuilt in the new process
        return state

    def check_domain(self, domain: Domain) -> None:
        """Raise unless this model can score ``domain``'s replies: the domain's
        ``rubric.yaml`` is valid (``DomainError``) and defines the persona (``ValueError``)."""
        self.table(domain)

    def table(self, domain: Domain) -> tuple[Mapping[str, Any], np.ndarray]:
        """The points and the weight of each component (``COMPONENTS`` order) on ``domain``."""
        found = self._tables.get(id(domain))
        if found is None or found[0] is not domain:
            data = domain_rubric(domain)
            if self.persona not in data["personas"]:
                raise ValueError(
                    f"unknown rubric persona {self.persona!r}: it is not defined for domain "
                    f"{domain.name!r}; available there: {', '.join(data['personas'])}"
                )
            chosen = {**data["personas"][self.persona], **self.overrides}
            weights = np.array([float(chosen.get(c, 1.0)) for c in COMPONENTS])
            found = self._tables[id(domain)] = (domain, data["points"], weights)
        return found[1], found[2]

    def score(self, batch: Sequence[Exchange]) -> np.ndarray:
        return self._weighted(batch).sum(axis=1)

    def components(self, batch: Sequence[Exchange]) -> dict[str, np.ndarray]:
        weighted = self._weighted(batch)
        return {name: weighted[:, i] for i, name in enumerate(COMPONENTS)}

    def _weighted(self, batch: Sequence[Exchange]) -> np.ndarray:
        out = np.empty((len(batch), len(COMPONENTS)))
        for i, exchange in enumerate(batch):
            state = _state_of(exchange)
            points, weights = self.table(state.domain)
            out[i] = np.multiply(self.points_for(exchange, points), weights)
        return out

    def points_for(
        self, exchange: Exchange, points: Mapping[str, Any] | None = None
    ) -> tuple[float, ...]:
        """Unweighted points of one reply, in ``COMPONENTS`` order."""
        state = _state_of(exchange)
        p = points if points is not None else self.table(state.domain)[0]
        a = state.assess(exchange.reply)
        text = a.analysis

        if a.completes:
            task = p["task"]["completes_step"]
            if a.finishes and not state.violations and not a.violations:
                task += p["task"]["finishes_task"]
        else:
            task = p["task"]["no_progress"]

        grounding = p["grounding"]["per_invented_value"] * min(
            len(a.invented), p["grounding"]["max_invented"]
        )

        pol = p["politeness"]
        politeness = (
            pol["per_polite_cue"] * min(text.polite, pol["max_polite_cues"])
            + pol["empathy"] * min(text.empathy, 1)
            + pol["per_rude_cue"] * min(text.rude, pol["max_rude_cues"])
        )

        conc = p["conciseness"]
        conciseness = max(
            conc["max_penalty"], conc["per_extra_word"] * max(0, text.words - conc["free_words"])
        )

        safety = p["safety"]["per_violation"] * sum(
            v not in GROUNDING_VIOLATIONS for v in a.violations
        )

        rep = p["repetition"]
        repetition = rep["full"] * max(0.0, (a.repetition - rep["start"]) / (1.0 - rep["start"]))
        conduct = p["conduct"]["per_minor_breach"] * len(a.minor)
        return (task, grounding, politeness, conciseness, safety, repetition, conduct)


def _state_of(exchange: Exchange) -> DialogueState:
    if exchange.state is None:
        raise ValueError(
            "the scripted rubric needs the dialogue state of the exchange (Exchange.state, "
            "set by the env); exchanges read from files carry only text: score them with a "
            "learned reward model"
        )
    return exchange.state
