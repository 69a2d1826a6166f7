"""RLlib's PPO trains on RLHF-Chat-v0 with 2 env runners on a local Ray instance.

Ray is an optional extra with its own gymnasium pin, so this test runs in the virtual
environment `make test` builds for it (.venv-rllib); elsewhere it is skipped.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "ray.rllib", reason="ray[rllib] is not installed here; `make test` runs this in .venv-rllib"
)

pytestmark = pytest.mark.rllib
ROOT = Path(__file__).resolve().parents[1]


def test_rllib_ppo_trains_on_chat_with_two_env_runners_and_a_learned_reward(tmp_path):
    from rlhf_envs.feedback.annotators import FeedbackCollector
    from rlhf_envs.rewards.learned import train_reward_model

    pairs = FeedbackCollector("RLHF-Chat-v0", seed=0).preferences(150, progress=False)
    train_reward_model(pairs, "linear", progress=False).model.save(
        tmp_path / "rm", note="rllib test"
    )
    out = tmp_path / "history.json"
    # A relative checkpoint path, run from tmp_path: the example makes it absolute before
    # the config reaches the env runners (separate processes).
    command = [
        sys.executable,
        str(ROOT / "examples" / "rllib_ppo.py"),
        "--env",
        "RLHF-Chat-v0",
        "--reward",
        "learned:rm",
        "--iterations",
        "3",
        "--env-runners",
        "2",
        "--envs-per-runner",
        "2",
        "--batch",
        "512",
        "--out",
        str(out),
    ]
    run = subprocess.run(
        command, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    history = json.loads(out.read_text())["history"]
    assert [row["iteration"] for row in history] == [1, 2, 3]
    assert history[-1]["env_steps"] >= 3 * 512
    assert all(math.isfinite(row["episode_return_mean"]) for row in history)
    # Lifetime counts: episodes end every iteration.
    episodes = [0] + [row["episodes"] for row in history]
    assert all(later > earlier for earlier, later in itertools.pairwise(episodes))
    assert "iteration 3:" in run.stdout  # progress is logged as it trains
