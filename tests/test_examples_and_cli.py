"""The examples and the command line run as a user would run them (tiny budgets)."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_train_ppo_example_runs_with_a_tiny_budget():
    module = runpy.run_path(str(ROOT / "examples" / "train_ppo.py"))
    result = module["main"](module["Args"](steps=1024, episodes=3))
    assert 0.0 <= result["ppo_success"] <= 1.0


def test_cli_lists_envs_and_reward_models():
    out = subprocess.run([sys.executable, "-m", "rlhf_envs.cli", "envs"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "RLHF-Chat-v0" in out.stdout and "rubric" in out.stdout


@pytest.mark.timeout(600)
def test_demo_prints_a_leaderboard_with_every_agent(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "rlhf_envs.cli", "demo", "--steps", "1024", "--episodes", "4", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for agent in ("expert", "random", "ppo-candidate", "ppo-mlp"):
        assert f"| {agent} |" in out.stdout
        assert (tmp_path / f"transcript-{agent}.txt").read_text().startswith("User: ")
    assert "deterministic (greedy)" in out.stdout
    assert (tmp_path / "leaderboard.csv").read_text().startswith("agent,return")
