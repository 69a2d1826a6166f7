"""Agreement: Cohen's kappa between annotators, pooled and per pair, and the serving reward
model's accuracy on the labels people gave, over time."""

from __future__ import annotations

import math

import pytest

from rlhf_envs.feedback.agreement import annotator_agreement, cohen_kappa, rm_accuracy_over_time


def test_cohen_kappa_matches_hand_computation():
    # 10 items: observed agreement 0.7; marginals a: 5/10 vs 6/10, b: 5/10 vs 4/10, so
    # chance agreement 0.5 and kappa (0.7 - 0.5) / (1 - 0.5) = 0.4.
    first = list("aaaaabbbbb")
    second = list("aaaababbba")
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa(list("abab"), list("abab")) == 1.0
    assert cohen_kappa(list("aaaa"), list("aaaa")) == 1.0  # chance agreement 1: not 0/0
    assert cohen_kappa(list("aaaa"), list("bbbb")) == 0.0
    assert cohen_kappa(list("abab"), list("baba")) == pytest.approx(-1.0)


def test_cohen_kappa_of_no_items_is_nan_and_unequal_lengths_are_refused():
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError, match="kappa needs two labels per item; got 2 and 1"):
        cohen_kappa(["a", "b"], ["a"])


def test_agreement_counts_items_with_two_judged_labels_and_leaves_skips_out():
    report = annotator_agreement(
        [
            (1, "x", "a"),
            (1, "y", "a"),
            (2, "x", "b"),
            (2, "y", "a"),
            (3, "x", "skip"),  # a skip is no judgement: item 3 has one label left
            (3, "y", "a"),
            (4, "x", "a"),
        ]
    )
    assert (report.items, report.pairs, report.observed) == (2, 2, 0.5)
    # x said a, b and y said a, a: chance agreement (1*2 + 1*0) / 4 = 0.5, so kappa 0.
    assert report.kappa == pytest.approx(0.0)
    assert report.by_pair == {("x", "y"): (2, 0.5, pytest.approx(0.0))}


def test_three_annotators_on_one_item_give_three_pairs():
    report = annotator_agreement([(1, "x", "a"), (1, "y", "a"), (1, "z", "tie")])
    assert (report.items, report.pairs) == (1, 3)
    assert report.observed == pytest.approx(1 / 3)
    assert set(report.by_pair) == {("x", "y"), ("x", "z"), ("y", "z")}
    assert report.by_pair[("x", "y")][:2] == (1, 1.0)
    assert report.by_pair[("x", "z")][:2] == (1, 0.0)


def test_rm_accuracy_over_time_uses_the_serving_models_margin():
    rows = [
        {"choice": "a", "rm_margin": 1.0, "rm_version": 1},
        {"choice": "b", "rm_margin": 1.0, "rm_version": 1},
        {"choice": "b", "rm_margin": -0.5, "rm_version": 2},
        {"choice": "tie", "rm_margin": 1.0, "rm_version": 2},
        {"choice": "a", "rm_margin": None, "rm_version": None},
    ]
    [point] = rm_accuracy_over_time(rows, bucket=10)
    assert point == {"labels": 3, "n": 3, "accuracy": pytest.approx(2 / 3), "versions": [1, 2]}


def test_rm_accuracy_over_time_buckets_in_order_and_leaves_active_pairs_out():
    rows = [
        {"choice": "a", "rm_margin": 2.0, "rm_version": 1},
        {"choice": "a", "rm_margin": 0.0, "rm_version": 1},  # no preference: half right
        # Picked because the model was unsure: says nothing about its accuracy.
        {"choice": "a", "rm_margin": -1.0, "rm_version": 1, "source": "active"},
        {"choice": "b", "rm_margin": 1.0, "rm_version": 2},
        {"choice": "b", "rm_margin": -3.0, "rm_version": 3},
    ]
    points = rm_accuracy_over_time(rows, bucket=2)
    assert points == [
        {"labels": 2, "n": 2, "accuracy": pytest.approx(0.75), "versions": [1]},
        {"labels": 4, "n": 2, "accuracy": pytest.approx(0.5), "versions": [2, 3]},
    ]
    assert rm_accuracy_over_time([], bucket=2) == []
