"""The rlhf-envs command line as a user runs it: listings, the demo, the collect/train-rm/
eval-rm chain, check-domain, and errors without tracebacks.

``rlhf-envs envs`` and the demo run as subprocesses (``python -m rlhf_envs.cli``: the
entry point itself); the other commands run in this process through the ``cli`` fixture
(tests/conftest.py: the same ``main(argv)``, without a fresh interpreter per command)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_cli_lists_envs_and_reward_models():
    out = subprocess.run(
        [sys.executable, "-m", "rlhf_envs.cli", "envs"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "RLHF-Chat-v0" in out.stdout and "rubric" in out.stdout


@pytest.mark.timeout(600)
def test_demo_prints_a_leaderboard_with_every_agent(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlhf_envs.cli",
            "demo",
            "--steps",
            "1024",
            "--episodes",
            "4",
            "--jobs",
            "1",  # one process: the xdist worker beside it has the other core
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for agent in ("expert", "random", "best-of-n", "ppo", "ppo-mlp", "a2c", "dqn"):
        assert f"| {agent} |" in out.stdout
        transcript = (
            tmp_path / "transcripts" / "RLHF-Chat-v0" / "default" / f"{agent}.md"
        ).read_text()
        assert "User: " in transcript and f"# {agent} on RLHF-Chat-v0" in out.stdout
    assert "deterministic (greedy)" in out.stdout
    assert (
        (tmp_path / "leaderboard.csv")
        .read_text()
        .startswith("env,reward,agent,runs,episodes,return")
    )


def test_collect_train_eval_commands_end_to_end(tmp_path, cli):
    out = cli("collect", "--env", "RLHF-Tiny-v0", "--pairs", "400", "--out", "prefs.jsonl")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "wrote 400 pairs to prefs.jsonl" in out.stdout
    assert "collect pairs" in out.stderr  # the progress bar
    out = cli(
        "collect",
        "--env",
        "RLHF-Tiny-v0",
        "--pairs",
        "200",
        "--seed",
        "1",
        "--out",
        "test.jsonl",
        "--no-progress",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    out = cli(
        "train-rm",
        "--data",
        "prefs.jsonl",
        "--model",
        "linear",
        "--out",
        "rm",
        "--threads",
        "1",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "trained linear preference model on" in out.stdout
    assert f'reward="learned:{tmp_path / "rm"}"' in out.stdout  # absolute: works from anywhere
    out = cli("eval-rm", "--data", "test.jsonl", "--rm", "rm", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["pairs"] == 200 and 0.6 < result["accuracy"] <= 1.0
    assert result["ci95"][0] < result["accuracy"] < result["ci95"][1] and result["ceiling"] > 0.6


def test_rm_commands_report_bad_input_without_a_traceback(tmp_path, cli):
    (tmp_path / "bad.jsonl").write_text('{"prompt": "User: hi", "chosen": "Hello"}\n')
    out = cli("train-rm", "--data", "bad.jsonl", "--out", "rm")
    assert out.returncode != 0
    assert "bad.jsonl, line 1" in out.stderr and "rejected" in out.stderr
    out = cli("eval-rm", "--data", "bad.jsonl", "--rm", "missing")
    assert out.returncode != 0
    assert "'missing' does not exist; expected a folder with config.json" in out.stderr
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    (tmp_path / "good.jsonl").write_text(
        '{"prompt": "User: hi", "chosen": "Hello!", "rejected": "Go away."}\n'
    )
    out = cli("train-rm", "--data", "good.jsonl", "--out", "notes")
    assert out.returncode != 0 and "is not a reward-model checkpoint" in out.stderr
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    out = cli("collect", "--pairs", "5", "--out", "x.jsonl", "--annotators", "balanced=lots")
    assert out.returncode != 0 and "NAME=WEIGHT" in out.stderr


def test_check_domain_command_passes_a_domain_and_explains_a_folder_that_is_not_one(tmp_path, cli):
    out = cli("check-domain", "tiny", "--episodes", "30")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "expert success 100.0%" in out.stdout and "no problems found" in out.stdout
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "hooks.py").write_text("DECISIONS = {}\n")
    out = cli("check-domain", "mine")
    assert out.returncode == 1
    assert "the domain does not load" in out.stderr and "policy.yaml" in out.stderr
