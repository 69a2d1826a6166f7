"""``rlhf-envs serve``: an id behind OpenEnv's own server, driven by OpenEnv's own client.

Each of 8 concurrent sessions plays an episode that must equal the local env's for the same
seed and actions (observations, rewards, gold); bad actions and a step before reset get
clear errors and leave the server up; ``openenv validate`` passes; the server stops
cleanly.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

openenv_core = pytest.importorskip("openenv.core")
from openenv.core import GenericEnvClient  # noqa: E402
from servers import cli_server  # noqa: E402

pytestmark = [pytest.mark.lm, pytest.mark.integration]

ENV_ID = "RLHF-ChatText-v0"


@pytest.fixture(scope="module")
def server(test_lm_folder: Path):
    lm = {"RLHF_ENVS_LM": str(test_lm_folder)}
    with cli_server("serve", ENV_ID, "--max-sessions", "8", timeout=180, env=lm) as running:
        yield running
    url, process = running
    # SIGTERM: uvicorn shuts down gracefully, then exits by the signal (status -15).
    assert process.returncode in (0, -signal.SIGTERM)
    with socket.socket() as probe:  # nothing listens any more
        assert probe.connect_ex(("127.0.0.1", int(url.rsplit(":", 1)[1]))) != 0


def _local_episode(seed: int) -> list[dict]:
    """The local env's episode under the scripted expert: each step's action and results."""
    env = gym.make(ENV_ID)
    obs, info = env.reset(seed=seed)
    steps = [{"obs": obs, "task": info["subflow"]}]
    while True:
        action = env.unwrapped.expert_action()
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append(
            {
                "action": action,
                "obs": obs,
                "reward": reward,
                "gold": info["gold_reward"],
                "done": terminated or truncated,
            }
        )
        if terminated or truncated:
            return steps


async def _remote_episode(url: str, seed: int, local: list[dict]) -> list[dict]:
    async with GenericEnvClient(base_url=url) as client:
        result = await client.reset(seed=seed)
        assert result.observation["observation"] is None  # text ids send the transcript once
        steps = [
            {
                "obs": result.observation["transcript"],
                "task": result.observation["metadata"]["subflow"],
            }
        ]
        for expected in local[1:]:
            result = await client.step({"message": expected["action"]})
            meta = result.observation["metadata"]
            steps.append(
                {
                    "action": expected["action"],
                    "obs": result.observation["transcript"],
                    "reward": result.reward,
                    "gold": meta["gold_reward"],
                    "done": result.done,
                }
            )
        state = await client.state()
        assert state["step_count"] == len(local) - 1 and state["done"] is True
        return steps


def test_eight_concurrent_sessions_equal_the_local_env(server):
    url, _ = server
    seeds = list(range(100, 108))
    local = {s: _local_episode(s) for s in seeds}

    async def all_sessions():
        return await asyncio.gather(*(_remote_episode(url, s, local[s]) for s in seeds))

    remote = dict(zip(seeds, asyncio.run(all_sessions()), strict=True))
    for seed in seeds:
        assert remote[seed][0] == local[seed][0]
        for got, want in zip(remote[seed][1:], local[seed][1:], strict=True):
            assert got["obs"] == want["obs"]
            assert got["reward"] == pytest.approx(want["reward"], abs=1e-9)
            assert got["gold"] == pytest.approx(want["gold"], abs=1e-9)
            assert got["done"] == want["done"]


def test_bad_actions_and_a_step_before_reset_get_clear_errors(server):
    url, process = server
    with GenericEnvClient(base_url=url).sync() as client:
        with pytest.raises(RuntimeError, match="step before reset: send reset first"):
            client.step({"message": "Hello"})
        client.reset(seed=1)
        with pytest.raises(RuntimeError, match="VALIDATION_ERROR"):
            client.step({"message": 5})
        with pytest.raises(RuntimeError, match="VALIDATION_ERROR"):
            client.step({"index": 0})
        with pytest.raises(RuntimeError, match="reply not accepted .*empty or blank"):
            client.step({"message": "   "})
        result = client.step({"message": "Hi! Could you tell me your full name?"})  # still usable
        assert result.observation["turn"] == 1
    assert process.poll() is None


def test_openenv_validate_passes(server):
    url, _ = server
    openenv_cli = Path(sys.executable).with_name("openenv")
    report = subprocess.run(
        [str(openenv_cli), "validate", "--url", url], capture_output=True, text=True, timeout=120
    )
    assert report.returncode == 0, report.stdout + report.stderr
    assert "Verdict: PASS" in report.stdout


def test_a_reaped_session_says_so():
    """With --idle-timeout, a step after the reaper closed the session's env says what
    happened and what to do (OpenEnv's reaper calls close() on an idle session's env)."""
    from rlhf_envs.serving.openenv_server import DialogueEnvironment, ReplyAction

    env = DialogueEnvironment(ENV_ID, idle_timeout=30)
    env.reset(seed=0)
    env.close()
    with pytest.raises(RuntimeError, match="closed after 30 s without a reset or step; open a new"):
        env.step(ReplyAction(message="Hello"))
    with pytest.raises(RuntimeError, match="open a new session"):
        env.reset(seed=0)


def test_no_info_keeps_the_grading_out_of_the_observation():
    """For clients that show a model the whole observation (verifiers' openenv taskset):
    no gold reward, rubric components or missed steps to read the answer from."""
    from rlhf_envs.serving.openenv_server import DialogueEnvironment, ReplyAction

    shown, hidden = DialogueEnvironment(ENV_ID), DialogueEnvironment(ENV_ID, info=False)
    for env in (shown, hidden):
        env.reset(seed=4)
    a = shown.step(ReplyAction(message="Hello! How can I help?"))
    b = hidden.step(ReplyAction(message="Hello! How can I help?"))
    assert "gold_reward" in a.metadata and "steps_missed" in a.metadata
    assert b.metadata == {}
    assert (a.transcript, a.reward, a.done) == (b.transcript, b.reward, b.done)


def test_the_deployment_files_match_the_server():
    root = Path(__file__).resolve().parents[2] / "deploy" / "openenv"
    manifest = (root / "openenv.yaml").read_text()
    assert "app: server.app:app" in manifest and "port: 8000" in manifest
    dockerfile = (root / "server" / "Dockerfile").read_text()
    assert "--host 0.0.0.0" in dockerfile and "[openenv]" in dockerfile
