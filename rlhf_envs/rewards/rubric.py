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

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from rlhf_envs.rewards.protocol import Exchange

COMPONENTS = ("task", "grounding", "politeness", "conciseness", "safety", "repetition", "conduct")
# Violations the grounding component prices instead of the safety component.
GROUNDING_VIOLATIONS = ("invented_fact",)
RUBRIC_FILE = Path(__file__).with_name("rubric.yaml")


@lru_cache(maxsize=1)
def rubric_data() -> Mapping[str, Any]:
    return yaml.safe_load(RUBRIC_FILE.read_text())


def domain_rubric(domain) -> Mapping[str, Any]:
    """The rubric of one domain: ``rubric.yaml`` with the domain's own ``rubric.yaml``
    (``domain.rubric``) merged over it. A domain persona that gives only some weights
    takes the others from the shared persona of that name, or from ``balanced``."""
    base = rubric_data()
    extra = getattr(domain, "rubric", None) or {}
    if not extra:
        return base
    points = {c: dict(v) for c, v in base["points"].items()}
    for component, values in (extra.get("points") or {}).items():
        points.setdefault(component, {}).update(values)
    people = {name: dict(w) for name, w in base["personas"].items()}
    for name, weights in (extra.get("personas") or {}).items():
        people[name] = {**people.get(name, base["personas"]["balanced"]), **weights}
    return {"points": points, "personas": people}


def personas(domain=None) -> tuple[str, ...]:
    """Names of the annotator personas (``"balanced"`` is the gold standard): the shared
    ones, plus those of ``domain`` (a ``Domain`` or built-in name) if given."""
    if domain is None:
        return tuple(rubric_data()["personas"])
    if isinstance(domain, str):
        from rlhf_envs.tasks import get_domain

        domain = get_domain(domain)
    return tuple(domain_rubric(domain)["personas"])


def _known_personas() -> frozenset[str]:
    from rlhf_envs.tasks.domain import domain_rubric_personas

    return frozenset(personas()) | domain_rubric_personas()


class RubricRewardModel:
    """Scripted rubric reward model (registered as ``"rubric"`` and ``"rubric:PERSONA"``).

    Args:
        persona: whose weights to use: ``"balanced"`` (default, the gold standard),
            ``"stickler"``, ``"warm"``, ``"busy"``, or a persona a domain's
            ``rubric.yaml`` adds (a built-in domain's, or that of a domain folder
            loaded before, as the env loads its domain before its reward model). Such a
            persona scores only that domain's replies: on another domain the first
            score raises ``ValueError`` naming the personas available there.
        weights: explicit ``{component: weight}`` overriding the persona's.

    Each reply is scored with the points and weights of its own domain (read from
    ``Exchange.state``). Needs ``Exchange.state`` (set by the env): exchanges read from
    files carry only text; score those with a learned reward model.
    """

    def __init__(self, persona: str = "balanced", weights: Mapping[str, float] | None = None):
        known = _known_personas()
        if persona not in known:
            raise ValueError(f"unknown rubric persona {persona!r}; available: {', '.join(sorted(known))}")
        if weights:
            unknown = set(weights) - set(COMPONENTS)
            if unknown:
                raise ValueError(f"unknown rubric component(s) {sorted(unknown)}; components: {', '.join(COMPONENTS)}")
        self.persona = persona
        self.name = "rubric" if persona == "balanced" and not weights else f"rubric:{persona}"
        self.overrides = dict(weights or {})
        self._tables: dict[int, tuple[Any, Mapping[str, Any], np.ndarray]] = {}

    def __repr__(self) -> str:
        return f"RubricRewardModel(persona={self.persona!r})"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tables"] = {}  # keyed by object identity: rebuilt in the new process
        return state

    def table(self, domain) -> tuple[Mapping[str, Any], np.ndarray]:
        """The points and the weight of each component (``COMPONENTS`` order) on ``domain``."""
        found = self._tables.get(id(domain))
        if found is None or found[0] is not domain:
            data = domain_rubric(domain)
            if self.persona not in data["personas"]:
                raise ValueError(
                    f"rubric persona {self.persona!r} is not defined for domain {domain.name!r}; "
                    f"available there: {', '.join(data['personas'])}"
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

    def points_for(self, exchange: Exchange, points: Mapping[str, Any] | None = None) -> tuple[float, ...]:
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

        grounding = p["grounding"]["per_invented_value"] * min(len(a.invented), p["grounding"]["max_invented"])

        pol = p["politeness"]
        politeness = (
            pol["per_polite_cue"] * min(text.polite, pol["max_polite_cues"])
            + pol["empathy"] * min(text.empathy, 1)
            + pol["per_rude_cue"] * min(text.rude, pol["max_rude_cues"])
        )

        conc = p["conciseness"]
        conciseness = max(conc["max_penalty"], conc["per_extra_word"] * max(0, text.words - conc["free_words"]))

        safety = p["safety"]["per_violation"] * sum(v not in GROUNDING_VIOLATIONS for v in a.violations)

        rep = p["repetition"]
        repetition = rep["full"] * max(0.0, (a.repetition - rep["start"]) / (1.0 - rep["start"]))
        conduct = p["conduct"]["per_minor_breach"] * len(a.minor)
        return (task, grounding, politeness, conciseness, safety, repetition, conduct)


def _state_of(exchange: Exchange):
    if exchange.state is None:
        raise ValueError(
            "the scripted rubric needs the dialogue state of the exchange (Exchange.state, "
            "set by the env); exchanges read from files carry only text: score them with a "
            "learned reward model"
        )
    return exchange.state
