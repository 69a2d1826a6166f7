"""Every label used: ties through Davidson's Bradley-Terry model, ratings and pairs in one
joint loss, in train-rm and in retraining; skips counted, never trained on."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from rlhf_envs.feedback.annotators import FeedbackCollector, SimulatedAnnotator
from rlhf_envs.feedback.store import FeedbackStore
from rlhf_envs.preference_data import PreferencePair, Rating
from rlhf_envs.preference_data.formats import read_feedback, write_preferences, write_ratings
from rlhf_envs.rewards.learned import LearnedRewardModel, pairwise_accuracy, train_reward_model
from rlhf_envs.rewards.learned.training import bradley_terry_loss, davidson_loss, ordinal_nll

torch.set_num_threads(1)


def test_davidson_without_ties_is_bradley_terry():
    chosen = torch.tensor([1.0, -0.25, 3.0], requires_grad=True)
    rejected = torch.tensor([0.5, 0.75, -2.0])
    no_ties = torch.zeros(3, dtype=torch.bool)
    bt = bradley_terry_loss(chosen, rejected)
    (bt_grad,) = torch.autograd.grad(bt, chosen)
    dv = davidson_loss(chosen, rejected, no_ties, torch.tensor(-math.inf))
    (dv_grad,) = torch.autograd.grad(dv, chosen)
    assert dv.item() == pytest.approx(bt.item(), abs=1e-7)
    assert dv_grad.tolist() == pytest.approx(bt_grad.tolist(), abs=1e-7)
    # With ties possible, a win is less likely than under Bradley-Terry.
    assert davidson_loss(chosen, rejected, no_ties, torch.tensor(0.0)).item() > bt.item()


@pytest.mark.parametrize("d", [-3.0, -0.4, 0.0, 0.7, 5.0])
@pytest.mark.parametrize("nu", [0.1, 1.0, 4.0])
def test_davidson_win_loss_and_tie_probabilities_sum_to_one(d, nu):
    a, b = torch.tensor([d]), torch.tensor([0.0])
    log_nu = torch.tensor(math.log(nu))
    win = math.exp(-davidson_loss(a, b, torch.tensor([False]), log_nu).item())
    loss = math.exp(-davidson_loss(b, a, torch.tensor([False]), log_nu).item())
    tie = math.exp(-davidson_loss(a, b, torch.tensor([True]), log_nu).item())
    assert win + loss + tie == pytest.approx(1.0, abs=1e-6)
    # Ties are likeliest between equal replies; a tie is symmetric in the order.
    assert tie == pytest.approx(math.exp(-davidson_loss(b, a, torch.tensor([True]), log_nu).item()))
    assert tie <= nu / (2 + nu) + 1e-6


def test_ordinal_likelihood_is_a_distribution_and_thumbs_is_logistic():
    score = torch.tensor([-2.0, 0.0, 1.5])
    thresholds = torch.tensor([-1.0, 0.0, 0.5, 2.0])  # five levels
    total = sum(torch.exp(-ordinal_nll(score, thresholds, torch.full((3,), k))) for k in range(5))
    assert total.tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)
    up = torch.exp(-ordinal_nll(score, torch.tensor([0.3]), torch.ones(3, dtype=torch.long)))
    assert up.tolist() == pytest.approx(torch.sigmoid(score - 0.3).tolist(), abs=1e-6)


@pytest.fixture(scope="module")
def tie_data():
    panel = [
        (
            SimulatedAnnotator(
                "tier", "balanced", temperature=1.0, flip_rate=0.0, tie_strength=2.0
            ),
            1.0,
        )
    ]
    return FeedbackCollector("RLHF-Tiny-v0", panel, seed=3).preferences(600, progress=False)


def test_annotator_ties_are_likeliest_between_close_replies(tie_data):
    ties = [p for p in tie_data if p.tie]
    strict = [p for p in tie_data if not p.tie]
    assert 0.1 < len(ties) / len(tie_data) < 0.8
    gap = lambda pairs: np.median([abs(p.metadata["gold_margin"]) for p in pairs])  # noqa: E731
    assert gap(ties) < gap(strict)


@pytest.mark.integration  # trains models for seconds
def test_training_on_ties_fits_a_tie_strength_and_still_ranks(tie_data, tmp_path):
    result = train_reward_model(tie_data, "linear", progress=False, seed=0)
    m = result.metrics
    assert m["ties"] == sum(p.tie for p in tie_data) and m["pairs"] + m["ties"] == len(tie_data)
    assert m["tie_strength"] > 0.2
    test = FeedbackCollector("RLHF-Tiny-v0", seed=4).preferences(300, progress=False)
    assert pairwise_accuracy(result.model, test).accuracy > 0.7
    loaded = LearnedRewardModel.load(result.model.save(tmp_path / "rm"))
    assert loaded.info["training"]["metrics"]["tie_strength"] == m["tie_strength"]
    # Pairs without ties train exactly as before: no tie parameter at all.
    strict = train_reward_model([p for p in tie_data if not p.tie], "linear", progress=False)
    assert "tie_strength" not in strict.metrics


@pytest.mark.integration  # trains models for seconds
def test_joint_loss_trains_on_a_file_of_pairs_and_ratings(tmp_path):
    collector = FeedbackCollector("RLHF-Tiny-v0", seed=6)
    pairs = collector.preferences(300, progress=False)
    thumbs = collector.ratings(200, "thumbs", progress=False)
    stars = collector.ratings(200, "stars", progress=False)
    write_preferences(tmp_path / "p.jsonl", pairs)
    write_ratings(tmp_path / "t.jsonl", thumbs)
    write_ratings(tmp_path / "s.jsonl", stars)
    mixed = tmp_path / "mixed.jsonl"
    lines = [(tmp_path / n).read_text().splitlines() for n in ("p.jsonl", "t.jsonl", "s.jsonl")]
    mixed.write_text("\n".join(x for trio in zip(*lines, strict=False) for x in trio) + "\n")
    data = read_feedback(mixed)
    assert sum(isinstance(r, PreferencePair) for r in data) == 200  # interleaved up to 200 each
    assert {r.scale for r in data if isinstance(r, Rating)} == {"thumbs", "stars"}

    out = tmp_path / "rm"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlhf_envs.cli",
            "train-rm",
            "--data",
            str(mixed),
            "--out",
            str(out),
            "--no-progress",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "joint model" in run.stdout and "200 pairs" in run.stdout and "400 ratings" in run.stdout
    config = json.loads((out / "config.json").read_text())
    metrics = config["training"]["metrics"]
    assert metrics["objective"] == "joint"
    stars_cuts = metrics["rating_thresholds_stars"]
    assert len(stars_cuts) == 4 and stars_cuts == sorted(stars_cuts)
    model = LearnedRewardModel.load(out)
    assert model.objective == "preference" and model.scorer.num_outputs == 1
    test = FeedbackCollector("RLHF-Tiny-v0", seed=7).preferences(300, progress=False)
    assert pairwise_accuracy(model, test).accuracy > 0.65


def test_tie_pairs_round_trip_through_files_and_the_store(tmp_path):
    pairs = [
        PreferencePair("User: hi", "Hello!", "Hi there!", {"annotator": "ann"}, tie=True),
        PreferencePair("User: hi", "Hello, how can I help?", "What.", {"annotator": "ann"}),
    ]
    write_preferences(tmp_path / "p.jsonl", pairs)
    assert [json.loads(x).get("tie") for x in (tmp_path / "p.jsonl").read_text().splitlines()] == [
        True,
        None,
    ]
    assert list(read_feedback(tmp_path / "p.jsonl")) == pairs
    with FeedbackStore(tmp_path / "f.sqlite") as store:
        store.import_file(tmp_path / "p.jsonl")
        assert [label["choice"] for label in store.labels()][0] == "tie"
        assert len(store.preference_pairs()) == 1 and len(store.preference_pairs(ties=True)) == 2
        store.export_preferences(tmp_path / "out.jsonl")
    back = list(read_feedback(tmp_path / "out.jsonl"))
    assert [p.tie for p in back] == [True, False]
    (tmp_path / "bad.jsonl").write_text(
        '{"prompt": "", "chosen": "a", "rejected": "b", "tie": "yes"}\n'
    )
    with pytest.raises(ValueError, match="'tie' is a string; it is true for a tie"):
        read_feedback(tmp_path / "bad.jsonl")
