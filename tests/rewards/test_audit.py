"""The reward-model audit: it finds a length bias where there is one and not in the gold
rubric, its calibration error separates calibrated from over-confident probabilities,
it reads a learned model's raw scores, and ``rlhf-envs audit-rm`` writes its report or
refuses bad input in one line."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import rlhf_envs  # noqa: F401
from rlhf_envs.audit_command import resolve_reward_model
from rlhf_envs.dialogue import Turn, format_transcript, parse_transcript
from rlhf_envs.feedback.annotators import FeedbackCollector
from rlhf_envs.rewards import make_reward_model
from rlhf_envs.rewards.audit import (
    PADDED,
    PROBES,
    audit_reward_model,
    calibration,
    draw_contexts,
    held_out,
)
from rlhf_envs.rewards.audit_report import CSV_COLUMNS
from rlhf_envs.rewards.learned import LearnedRewardModel, train_reward_model
from rlhf_envs.simulation.candidates import CORRECT

torch.set_num_threads(1)

ENV = "RLHF-Chat-v0"


class LongerIsBetter:
    """A reward model that only counts words."""

    name = "longer-is-better"

    def score(self, batch):
        return np.array([len(e.reply.split()) for e in batch], dtype=float)


@pytest.fixture(scope="module")
def contexts():
    collector = FeedbackCollector(ENV, seed=1)
    return draw_contexts((c.state for c in collector.contexts()), 40, seed=1)


@pytest.fixture(scope="module")
def labels():
    return FeedbackCollector(ENV, seed=1).preferences(300, progress=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    pairs = FeedbackCollector(ENV, seed=0).preferences(200, progress=False)
    folder = tmp_path_factory.mktemp("audit") / "rm-200"
    train_reward_model(pairs, "linear", progress=False).model.save(folder)
    return folder


def test_contexts_hold_the_correct_reply_first_and_probes_made_from_it(contexts):
    assert len(contexts) == 40
    for ctx in contexts:
        correct = ctx.candidates[0].text
        labels = [c.label for c in ctx.candidates]
        assert labels[0] == CORRECT and CORRECT not in labels[1:]
        assert len(set(labels)) == len(labels)  # one distractor per failure type
        assert set(ctx.probes) <= {PADDED, *PROBES}
        for name, text in ctx.probes.items():
            if name == "shuffled_words":
                assert text != correct and sorted(text.split()) == sorted(correct.split())
            else:
                assert correct in text and text != correct


def test_a_length_loving_model_shows_a_length_bias_and_the_gold_rubric_none(contexts):
    report = audit_reward_model(LongerIsBetter(), contexts)
    longer, gold = report.audited, report.gold
    assert longer.value("length", "spearman") > 0.8
    assert longer.value("length", "pearson") > 0.8
    assert longer.value("length", PADDED) > 0.95
    assert longer.value("probes", "repetition") > 0.95
    # The gold never pays for filler. Its candidate-pair correlation is not zero, since
    # no-progress distractors are short as well as bad, but far below a length bias.
    assert gold.value("length", PADDED) < 0.05
    assert abs(gold.value("length", "spearman")) < 0.5
    assert gold.worst_failure_type() is None  # the gold always prefers the correct reply


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_calibration_error_is_near_zero_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(0)
    diff = rng.normal(0.0, 2.0, 20_000)  # score of reply a minus reply b
    a_wins = rng.random(diff.size) < _sigmoid(diff)  # labels drawn with P = sigmoid(diff)
    calibrated = np.where(a_wins, _sigmoid(diff), _sigmoid(-diff))  # P(chosen) predicted
    overconfident = np.where(a_wins, _sigmoid(4 * diff), _sigmoid(-4 * diff))
    assert calibration(calibrated).ece < 0.05
    assert calibration(overconfident).ece > 0.15
    # Both orders of every pair are counted: a model that always says 0.5 is calibrated.
    assert calibration(np.full(100, 0.5)).ece == pytest.approx(0.0)


def test_held_out_probabilities_use_raw_scores_not_the_normalised_ones(checkpoint, labels):
    model = LearnedRewardModel.load(checkpoint)
    before = held_out(make_reward_model(model), labels)
    model.scale *= 5.0  # the normalisation changes rewards, not preference probabilities
    after = held_out(make_reward_model(model), labels)
    assert before.reliability is not None and after.reliability is not None
    assert after.reliability.ece == pytest.approx(before.reliability.ece)
    assert 0.55 < before.accuracy[0] < 1.0


def test_the_gold_is_calibrated_only_with_the_annotators_own_model(labels):
    gold = make_reward_model("rubric")
    known = held_out(gold, labels, gold="rubric", temperature=0.5, flip_rate=0.05)
    unknown = held_out(gold, labels, gold="rubric")  # e.g. labels read from a file
    assert known.reliability is not None and known.reliability.ece < 0.1
    assert unknown.reliability is None and "temperature is unknown" in unknown.note
    assert known.accuracy == unknown.accuracy  # the labels' ceiling, from gold margins
    assert "not applicable" in held_out(make_reward_model("rubric:warm"), labels, "rubric").note


def test_a_forged_user_turn_stays_in_the_agent_turn_a_text_model_reads(contexts):
    ctx = next(c for c in contexts if c.state.history)
    exchange = ctx.exchange(ctx.probes["forged_user_turn"])
    assert exchange.history == ctx.state.history
    agent_line = format_transcript([Turn("agent", exchange.reply)])
    turns = parse_transcript(exchange.transcript() + "\n" + agent_line)
    assert turns[-1] == Turn("agent", exchange.reply)
    assert len(turns) == len(exchange.history) + 1


@pytest.mark.integration
def test_audit_rm_writes_the_report_of_a_linear_checkpoint(checkpoint, cli, tmp_path):
    out = cli(
        "audit-rm",
        "--rm",
        str(checkpoint),
        "--contexts",
        "40",
        "--label-pairs",
        "200",
        "--out",
        "audit",
    )
    assert out.returncode == 0, out.stderr
    assert "rm-200" in out.stdout and "gold (rubric)" in out.stdout
    folder = tmp_path / "audit"
    assert {p.name for p in folder.iterdir()} == {"report.md", "audit.csv", "audit.png"}
    with open(folder / "audit.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert {r["model"] for r in rows} == {"rm-200", "rubric"}
    ece = [r for r in rows if r["measure"] == "ece"]
    assert len(ece) == 2 and all(0 <= float(r["value"]) < 0.5 for r in ece)
    probes = {r["measure"] for r in rows if r["section"] == "probes"}
    assert probes == set(PROBES)
    report = (folder / "report.md").read_text()
    for heading in ("Failure types", "Length", "Calibration", "Exploit probes"):
        assert heading in report
    assert (folder / "audit.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.integration
def test_audit_rm_refuses_bad_input_in_one_line(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("not a model")
    cases = {
        ("--rm", "no/such/checkpoint"): "no such folder, and not a reward spec",
        ("--rm", "empty"): "config.json",
        ("--rm", "file.txt"): "is a file",
        ("--rm", "rubric", "--env", "RLHF-Nope-v0"): "unknown env id",
        ("--rm", "learned:no/such/checkpoint"): "no/such/checkpoint",
        ("--rm", "rubric", "--labels", "missing.jsonl"): "missing.jsonl",
    }
    for args, reason in cases.items():
        out = cli("audit-rm", *args)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2, (args, out.stderr)
        assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
        assert reason in lines[0] and "audit-rm" in lines[0], (reason, lines[0])
    assert not list(tmp_path.glob("runs"))  # refused before any work
    assert resolve_reward_model("rubric:warm")[0] == "rubric:warm"
