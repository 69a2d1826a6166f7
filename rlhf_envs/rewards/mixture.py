"""Weighted mixtures of reward models: the ``{"rubric": 1.0, "learned:ckpt": 0.5}`` spec form.

Mixing a learned model with a scripted rubric (or several annotator personas) is the usual
way to regularise a proxy reward, so it is a first-class spec rather than something each
user writes. The mixture keeps its members' names so ``info`` can show how much each one
contributed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlhf_envs.rewards.protocol import Exchange
from rlhf_envs.rewards.validation import CheckedRewardModel

__all__ = ["WeightedMixture", "check_weight"]


def check_weight(key: Any, weight: Any) -> float:
    """Validate one mixture weight.

    Args:
        key: the member the weight belongs to (for the message).
        weight: the weight given.

    Returns:
        ``weight`` as a float.

    Raises:
        ValueError: ``weight`` is not a real number (bools are refused: ``True`` as a
            weight is almost certainly a mistake) or is NaN or infinite.
    """
    label = key if isinstance(key, str) else getattr(key, "name", None) or key
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
        # ValueError, not TypeError: a bad weight is a bad value inside a valid spec form.
        raise ValueError(  # noqa: TRY004
            f"reward mix weight for {label!r} must be a finite number; "
            f"got {weight!r} ({type(weight).__name__})"
        )
    value = float(weight)
    if not math.isfinite(value):
        raise ValueError(f"reward mix weight for {label!r} must be a finite number; got {value}")
    return value


class WeightedMixture:
    """A reward model whose score is ``sum(weight * member.score(batch))``.

    Attributes:
        members: ``(weight, member)`` pairs, in the order given.
        labels: the members' unique names, used as component keys (a member's ``name``,
            with ``#2``, ``#3``, ... appended when two members share one).
        name: a readable form such as ``"1*rubric + 0.5*learned:ckpt"``.
    """

    def __init__(self, members: Sequence[tuple[float, CheckedRewardModel]]) -> None:
        """Build a mixture.

        Args:
            members: ``(weight, model)`` pairs. Models that are not yet
                ``CheckedRewardModel`` are wrapped, so their failures name them.

        Raises:
            ValueError: ``members`` is empty or a weight is not a finite number.
        """
        if not members:
            raise ValueError("a reward mix needs at least one (weight, model) member")
        checked: list[tuple[float, CheckedRewardModel]] = []
        for weight, model in members:
            if not isinstance(model, CheckedRewardModel):
                model = CheckedRewardModel(model)
            checked.append((check_weight(model.name, weight), model))
        self.members: tuple[tuple[float, CheckedRewardModel], ...] = tuple(checked)
        labels: list[str] = []
        for _, model in self.members:
            label, k = model.name, 1
            while label in labels:  # e.g. two lambdas in one module describe alike
                k += 1
                label = f"{model.name}#{k}"
            labels.append(label)
        self.labels: tuple[str, ...] = tuple(labels)
        self.name: str = " + ".join(
            f"{w:g}*{label}" for (w, _), label in zip(self.members, self.labels, strict=True)
        )

    def check_domain(self, domain: Any) -> None:
        """Check every member against ``domain`` (see ``CheckedRewardModel.check_domain``)."""
        for _, member in self.members:
            member.check_domain(domain)

    def score(self, batch: Sequence[Exchange]) -> np.ndarray:
        """The weighted sum of the members' scores.

        Args:
            batch: the exchanges to score.

        Returns:
            A float64 array of shape ``(len(batch),)``.

        Raises:
            RewardModelError: a member failed; the message names that member.
        """
        total = np.zeros(len(batch))
        for weight, model in self.members:
            total += weight * model.score(batch)
        return total

    def components(self, batch: Sequence[Exchange]) -> dict[str, np.ndarray]:
        """Each member's weighted contribution, broken down into its parts.

        A member with one component is keyed by its label; a member with several
        contributes each of them, weighted, as ``"<label>/<component>"``. As the
        ``ComponentRewardModel`` protocol requires, the mixture's score is the sum of all
        entries, and each member is run once.

        Args:
            batch: the exchanges to score.

        Returns:
            ``{label: weight * member score, ...}`` or ``{label/part: weight * part, ...}``.

        Raises:
            RewardModelError: a member failed; the message names that member.
        """
        out: dict[str, np.ndarray] = {}
        for (weight, model), label in zip(self.members, self.labels, strict=True):
            parts = model.components(batch)
            if len(parts) == 1:
                (only,) = parts.values()
                out[label] = weight * only
            else:
                out.update({f"{label}/{part}": weight * values for part, values in parts.items()})
        return out

    def __repr__(self) -> str:
        return f"WeightedMixture({self.name!r})"
