"""Agreement between annotators, and between a reward model and the labels.

Cohen's kappa corrects raw agreement for the agreement two raters would reach by chance
given how often each uses each label: ``kappa = (p_o - p_e) / (1 - p_e)``. With more than
two annotators, every pair of labels given to the same comparison counts once, and the
pooled table gives one kappa (each pair of annotators also gets its own).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["AgreementReport", "annotator_agreement", "cohen_kappa", "rm_accuracy_over_time"]

JUDGED = ("a", "b", "tie")  # skips carry no judgement and are left out


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Cohen's kappa of two equally long label sequences (same items, same order).

    Returns ``nan`` for no items; ``1.0`` when both raters agree on every item even if
    they always use one label (chance agreement 1, where the formula is 0/0).
    """
    if len(first) != len(second):
        raise ValueError(f"kappa needs two labels per item; got {len(first)} and {len(second)}")
    n = len(first)
    if n == 0:
        return float("nan")
    observed = sum(x == y for x, y in zip(first, second, strict=True)) / n
    left, right = Counter(first), Counter(second)
    expected = sum(left[k] * right[k] for k in set(left) | set(right)) / (n * n)
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


@dataclass(frozen=True)
class AgreementReport:
    """Inter-annotator agreement on comparisons labelled by two or more people.

    Attributes:
        items: comparisons with at least two judged (non-skip) labels.
        pairs: pairs of labels compared (a comparison with 3 labels gives 3).
        observed: share of label pairs that agree.
        kappa: Cohen's kappa of the pooled label pairs (``nan`` with none).
        by_pair: ``(annotator, annotator) -> (pairs, observed, kappa)``.
    """

    items: int
    pairs: int
    observed: float
    kappa: float
    by_pair: dict[tuple[str, str], tuple[int, float, float]]


def annotator_agreement(labels: Iterable[tuple[Any, str, str]]) -> AgreementReport:
    """Agreement from ``(item, annotator, choice)`` triples."""
    by_item: dict[Any, dict[str, str]] = defaultdict(dict)
    for item, annotator, choice in labels:
        if choice in JUDGED:
            by_item[item][annotator] = choice
    pooled_a: list[str] = []
    pooled_b: list[str] = []
    per_pair: dict[tuple[str, str], tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    items = 0
    for votes in by_item.values():
        if len(votes) < 2:
            continue
        items += 1
        for x, y in itertools.combinations(sorted(votes), 2):
            pooled_a.append(votes[x])
            pooled_b.append(votes[y])
            per_pair[(x, y)][0].append(votes[x])
            per_pair[(x, y)][1].append(votes[y])
    n = len(pooled_a)
    observed = (
        sum(x == y for x, y in zip(pooled_a, pooled_b, strict=True)) / n if n else float("nan")
    )
    by_pair = {
        key: (len(a), sum(x == y for x, y in zip(a, b, strict=True)) / len(a), cohen_kappa(a, b))
        for key, (a, b) in sorted(per_pair.items())
    }
    return AgreementReport(items, n, observed, cohen_kappa(pooled_a, pooled_b), by_pair)


def rm_accuracy_over_time(
    labels: Sequence[dict[str, Any]], bucket: int = 50
) -> list[dict[str, Any]]:
    """How often the reward model serving at the time predicted the label people gave.

    Args:
        labels: rows of ``FeedbackStore.labels()`` (oldest first); those with an A/B
            choice and an ``rm_margin`` on pairs drawn at random count. Active pairs are
            left out: they were picked as the ones the model was least sure about, so its
            accuracy on them says little about its accuracy in general.
        bucket: labels per point.

    Returns:
        One dict per bucket: ``labels`` (cumulative count at its end), ``accuracy``,
        ``n`` and the reward-model versions that served in it.
    """
    scored = [
        r
        for r in labels
        if r["choice"] in ("a", "b") and r["rm_margin"] is not None and r.get("source") != "active"
    ]
    out = []
    for start in range(0, len(scored), bucket):
        chunk = scored[start : start + bucket]
        hits = [
            (r["rm_margin"] > 0) == (r["choice"] == "a") if r["rm_margin"] != 0 else 0.5
            for r in chunk
        ]
        out.append(
            {
                "labels": start + len(chunk),
                "n": len(chunk),
                "accuracy": float(sum(hits)) / len(chunk),
                "versions": sorted(
                    {int(r["rm_version"]) for r in chunk if r["rm_version"] is not None}
                ),
            }
        )
    return out
