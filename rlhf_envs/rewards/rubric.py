"""The scripted rubric: what careful human raters reward, as explicit points.

Components (points in ``rubric.yaml``):

- ``task``: the reply does the step the policy book says is due (and, at the end,
  closes a task done cleanly); evasion, repetition and wrong refusals cost points;
- ``grounding``: every stated order id, amount or date is supported by the scenario,
  the policy or the dialogue;
- ``politeness``: courtesy and empathy earn a little, rudeness costs a lot;
- ``conciseness``: long-winded replies cost points;
- ``safety``: acting before verifying, promising what the policy forbids and disclosing
  private data cost the most;
- ``repetition``: saying the same thing again costs points.

It judges only what a rater sees: the reply's text against the scenario's facts, the
policy and the dialogue so far (through the domain's reading of replies), never how a
candidate was produced, so it scores free text as well as templated candidates.
Annotator personas weigh the components differently (``rubric:stickler``, ...).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from rlhf_envs.rewards.protocol import Exchange

COMPONENTS = ("task", "grounding", "politeness", "conciseness", "safety", "repetition")
SAFETY_VIOLATIONS = ("skipped_verification", "off_policy", "privacy_leak")
RUBRIC_FILE = Path(__file__).with_name("rubric.yaml")


@lru_cache(maxsize=1)
def rubric_data() -> Mapping[str, Any]:
    return yaml.safe_load(RUBRIC_FILE.read_text())


def personas() -> tuple[str, ...]:
    """Names of the built-in annotator personas (``"balanced"`` is the gold standard)."""
    return tuple(rubric_data()["personas"])


class RubricRewardModel:
    """Scripted rubric reward model (registered as ``"rubric"`` and ``"rubric:PERSONA"``).

    Args:
        persona: whose weights to use: ``"balanced"`` (default, the gold standard),
            ``"stickler"``, ``"warm"`` or ``"busy"``.
        weights: explicit ``{component: weight}`` overriding the persona's.

    Needs ``Exchange.state`` (set by the env): exchanges read from files carry only
    text; score those with a learned reward model.
    """

    def __init__(self, persona: str = "balanced", weights: Mapping[str, float] | None = None):
        data = rubric_data()
        if persona not in data["personas"]:
            raise ValueError(f"unknown rubric persona {persona!r}; available: {', '.join(data['personas'])}")
        chosen = dict(data["personas"][persona])
        if weights:
            unknown = set(weights) - set(COMPONENTS)
            if unknown:
                raise ValueError(f"unknown rubric component(s) {sorted(unknown)}; components: {', '.join(COMPONENTS)}")
            chosen.update(weights)
        self.persona = persona
        self.name = "rubric" if persona == "balanced" and not weights else f"rubric:{persona}"
        self.weights = np.array([float(chosen[c]) for c in COMPONENTS])
        self.points = data["points"]

    def __repr__(self) -> str:
        return f"RubricRewardModel(persona={self.persona!r})"

    def score(self, batch: Sequence[Exchange]) -> np.ndarray:
        return self._points(batch) @ self.weights

    def components(self, batch: Sequence[Exchange]) -> dict[str, np.ndarray]:
        weighted = self._points(batch) * self.weights
        return {name: weighted[:, i] for i, name in enumerate(COMPONENTS)}

    def _points(self, batch: Sequence[Exchange]) -> np.ndarray:
        out = np.empty((len(batch), len(COMPONENTS)))
        for i, exchange in enumerate(batch):
            out[i] = self.points_for(exchange)
        return out

    def points_for(self, exchange: Exchange) -> tuple[float, ...]:
        """Unweighted points of one reply, in ``COMPONENTS`` order."""
        state = exchange.state
        if state is None:
            raise ValueError(
                "the scripted rubric needs the dialogue state of the exchange (Exchange.state, "
                "set by the env); exchanges read from files carry only text: score them with a "
                "learned reward model"
            )
        p = self.points
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

        safety = p["safety"]["per_violation"] * sum(v in SAFETY_VIOLATIONS for v in a.violations)

        rep = p["repetition"]
        repetition = rep["full"] * max(0.0, (a.repetition - rep["start"]) / (1.0 - rep["start"]))
        return (task, grounding, politeness, conciseness, safety, repetition)
