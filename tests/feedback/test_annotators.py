"""Simulated annotators: seeded, Bradley-Terry noise behaves as configured, contexts
cover several behaviours, and labels carry the gold margin used for the ceiling."""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_envs.feedback import PreferencePair, Rating
from rlhf_envs.feedback.annotators import FeedbackCollector, SimulatedAnnotator, parse_weights
from rlhf_envs.rewards.learned.evaluation import label_ceiling


def collect(n=200, seed=0, **annotator):
    panel = [(SimulatedAnnotator("balanced", "balanced", **annotator), 1.0)]
    collector = FeedbackCollector("RLHF-Tiny-v0", panel, seed=seed)
    try:
        return collector.preferences(n, progress=False)
    finally:
        collector.close()


def test_same_seed_same_pairs_other_seed_other_pairs():
    a, b, c = collect(seed=3), collect(seed=3), collect(seed=4)
    assert [p.to_json() for p in a] == [p.to_json() for p in b]
    assert [p.to_json() for p in a] != [p.to_json() for p in c]


def test_pairs_are_two_candidates_of_one_context_with_metadata():
    pairs = collect(150)
    assert len(pairs) == 150 and all(isinstance(p, PreferencePair) for p in pairs)
    for p in pairs:
        assert p.prompt.startswith("User: ")
        assert p.chosen != p.rejected
        assert {
            "annotator",
            "episode",
            "turn",
            "behaviour",
            "gold_margin",
            "annotator_margin",
        } <= set(p.metadata)
    # Several behaviours and many episodes feed the contexts.
    assert len({p.metadata["behaviour"] for p in pairs}) >= 3
    assert len({p.metadata["episode"] for p in pairs}) >= 10


def test_decisive_annotator_always_follows_its_scores():
    pairs = collect(300, temperature=1e-6, flip_rate=0.0)
    margins = np.array([p.metadata["annotator_margin"] for p in pairs])
    assert np.all(margins >= 0)  # chosen never scores below rejected
    # A balanced annotator is the gold rubric: the ceiling is (nearly) 1, ties aside.
    assert label_ceiling(pairs) > 0.9


def test_flips_and_temperature_add_noise():
    clean = label_ceiling(collect(400, temperature=0.5, flip_rate=0.0))
    flipped = label_ceiling(collect(400, temperature=0.5, flip_rate=0.3))
    coin = label_ceiling(collect(400, temperature=1e6, flip_rate=0.0))
    assert clean - flipped > 0.15
    assert abs(coin - 0.5) < 0.08


def test_choice_probability_is_bradley_terry():
    annotator = SimulatedAnnotator(temperature=0.5, flip_rate=0.0)
    rng = np.random.default_rng(0)
    share = np.mean([annotator.choose(1.0, 0.5, rng) for _ in range(20_000)])
    assert share == pytest.approx(1 / (1 + np.exp(-1.0)), abs=0.01)  # sigmoid(0.5 / 0.5)


def test_ratings_follow_scores_on_both_scales():
    collector = FeedbackCollector("RLHF-Tiny-v0", seed=1)
    thumbs = collector.ratings(300, scale="thumbs", progress=False)
    stars = collector.ratings(300, scale="stars", progress=False)
    collector.close()
    assert all(isinstance(r, Rating) and r.label in (0, 1) for r in thumbs)
    assert {r.label for r in stars} <= {1, 2, 3, 4, 5} and len({r.label for r in stars}) >= 3
    for ratings in (thumbs, stars):
        gold = np.array([r.metadata["gold_score"] for r in ratings])
        labels = np.array([r.label for r in ratings])
        assert np.corrcoef(gold, labels)[0, 1] > 0.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": 0}, "temperature must be a finite number > 0"),
        ({"flip_rate": 0.7}, "flip_rate must be in [0, 0.5]"),
        ({"star_cutpoints": (1, 0, 2, 3)}, "4 increasing numbers"),
    ],
)
def test_bad_annotator_settings_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SimulatedAnnotator(**kwargs)


def test_bad_weights_and_scales_are_explained():
    with pytest.raises(ValueError, match="NAME=WEIGHT"):
        parse_weights("balanced=lots", "--annotators")
    with pytest.raises(ValueError, match="weights must be finite"):
        FeedbackCollector("RLHF-Tiny-v0", [(SimulatedAnnotator(), -1.0)])
    collector = FeedbackCollector("RLHF-Tiny-v0")
    with pytest.raises(ValueError, match="unknown rating scale 'likert'"):
        collector.ratings(3, scale="likert")
