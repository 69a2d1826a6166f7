"""How well a reward model agrees with held-out feedback."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlhf_envs.preference_data.records import PreferencePair, Rating
from rlhf_envs.statistics import spearman, wilson_interval


@dataclass(frozen=True)
class PairwiseReport:
    """Pairwise accuracy of a reward model on preference pairs.

    Attributes:
        accuracy, low, high: share of pairs where the model scores the chosen reply
            higher (ties count one half), with a 95% Wilson score interval (honest on
            few pairs, where a bootstrap would give a zero-width interval).
        pairs: number of pairs.
        ceiling: for simulated pairs (``gold_margin`` in their metadata), the share where
            the noise-free gold rubric agrees with the noisy label: the best accuracy any
            model can expect. ``None`` for other data.
        margins: the model's score differences (chosen minus rejected), per pair.
    """

    accuracy: float
    low: float
    high: float
    pairs: int
    ceiling: float | None
    margins: np.ndarray

    def summary(self) -> str:
        text = (
            f"pairwise accuracy {self.accuracy:.3f} [95% CI {self.low:.3f}, {self.high:.3f}] "
            f"on {self.pairs} pairs"
        )
        if self.ceiling is not None:
            text += (
                f"; ceiling (gold vs labels) {self.ceiling:.3f}, "
                f"ratio {self.accuracy / self.ceiling:.3f}"
            )
        return text


def label_ceiling(pairs: Sequence[PreferencePair]) -> float | None:
    """Agreement of the noise-free gold scores with the labels, when pairs carry
    ``gold_margin`` (gold score of chosen minus rejected); ties count one half."""
    margins = [p.metadata.get("gold_margin") for p in pairs]
    if not margins or any(not isinstance(m, (int, float)) for m in margins):
        return None
    m = np.asarray(margins, dtype=float)
    return float(np.mean((m > 0) + 0.5 * (m == 0)))


def pairwise_accuracy(model: Any, pairs: Sequence[PreferencePair]) -> PairwiseReport:
    """Score both replies of each pair with ``model`` (a :class:`LearnedRewardModel`) and
    report how often the chosen one wins. Ties (``pair.tie``) have no chosen reply and
    are left out."""
    if not pairs:
        raise ValueError("no pairs to evaluate")
    if not all(isinstance(p, PreferencePair) for p in pairs):
        raise ValueError("pairwise accuracy needs preference pairs (prompt, chosen, rejected)")
    pairs = [p for p in pairs if not p.tie]
    if not pairs:
        raise ValueError("every pair is a tie; pairwise accuracy needs pairs with a chosen reply")
    prompts = [p.prompt for p in pairs]
    chosen = model.score_texts(prompts, [p.chosen for p in pairs], normalise=False)
    rejected = model.score_texts(prompts, [p.rejected for p in pairs], normalise=False)
    margins = chosen - rejected
    correct = (margins > 0) + 0.5 * (margins == 0)
    mean, low, high = wilson_interval(float(correct.sum()), len(pairs))
    return PairwiseReport(mean, low, high, len(pairs), label_ceiling(pairs), margins)


@dataclass(frozen=True)
class RatingReport:
    """Agreement of a reward model with ratings: for a rating model, how often the rating
    nearest its expected rating is the label; for any model, the rank correlation of
    scores with labels."""

    accuracy: float | None
    spearman: float
    ratings: int

    def summary(self) -> str:
        acc = "" if self.accuracy is None else f"nearest-rating accuracy {self.accuracy:.3f}, "
        return (
            f"{acc}Spearman correlation of scores with ratings {self.spearman:.3f} "
            f"on {self.ratings} ratings"
        )


def rating_agreement(model: Any, ratings: Sequence[Rating]) -> RatingReport:
    """How well ``model``'s scores order ``ratings`` (and, for rating models, predict them)."""
    if not ratings:
        raise ValueError("no ratings to evaluate")
    scores = model.score_texts(
        [r.prompt for r in ratings], [r.completion for r in ratings], normalise=False
    )
    labels = np.array([r.value for r in ratings], dtype=float)
    accuracy = None
    if getattr(model, "objective", None) == "rating" and model.rating_values is not None:
        values = model.rating_values.numpy()
        predicted = values[np.abs(scores[:, None] - values[None, :]).argmin(axis=1)]
        accuracy = float(np.mean(predicted == labels))
    return RatingReport(accuracy, spearman(scores, labels), len(ratings))
