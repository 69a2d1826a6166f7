"""The ``rlhf-verifiers`` environment, loaded by verifiers' own loader and evaluated against
``rlhf-envs serve-lm`` with the test LM.

verifiers 0.4 cannot share an environment with OpenEnv 0.10, so ``make test`` runs this
file in ``.venv-verifiers`` (``pip install -e '.[verifiers]'``); elsewhere it is skipped.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import gymnasium as gym
import pytest

vf = pytest.importorskip("verifiers.v1", reason="needs the verifiers extra (.venv-verifiers)")
from servers import cli_server  # noqa: E402

pytestmark = [pytest.mark.lm, pytest.mark.integration]


@pytest.fixture(scope="module")
def endpoint(test_lm_folder: Path):
    serve = ("serve-lm", str(test_lm_folder), "--name", "test-lm", "--threads", "1")
    with cli_server(*serve) as (url, _):
        yield f"{url}/v1"


def test_the_loader_finds_the_taskset_env_and_harness():
    config = vf.resolve_env_config(
        {"taskset": {"id": "rlhf-verifiers", "env_id": "RLHF-FinanceText-v0", "num_tasks": 3}}
    )
    env = vf.load_environment(config)
    assert type(env).__name__ == "RLHFEnv"
    tasks = list(env.taskset.take(3))
    assert [t.data.scenario_seed for t in tasks] == [1_000_000, 1_000_001, 1_000_002]
    assert "Never promise a return" in tasks[0].data.system_prompt  # finance's policy book
    with pytest.raises(Exception, match="text interface"):
        bad = vf.resolve_env_config({"taskset": {"id": "rlhf-verifiers", "env_id": "RLHF-Chat-v0"}})
        list(vf.load_environment(bad).taskset.take(1))


def test_episodes_with_the_served_test_lm_score_like_the_env(endpoint, monkeypatch):
    monkeypatch.setenv("TEST_LM_KEY", "unused")
    config = vf.resolve_env_config(
        {"taskset": {"id": "rlhf-verifiers", "env_id": "RLHF-ChatText-v0", "num_tasks": 2}}
    )
    env = vf.load_environment(config)
    context = vf.ModelContext(
        model="test-lm",
        client=vf.EvalClientConfig(base_url=endpoint, api_key_var="TEST_LM_KEY"),
        sampling=vf.SamplingConfig(temperature=1.0, max_tokens=24),
    )
    tasks = list(env.taskset.take(2))

    async def evaluate():
        async with env.serving():
            return await asyncio.gather(
                *(env.run_slot(slot, context) for task in tasks for slot in env.slots(task, 1))
            )

    episodes = asyncio.run(evaluate())
    assert len(episodes) == 2
    for episode in episodes:
        trace = episode.traces[0]
        assert trace.ok, trace.errors
        turns = int(trace.metrics["turns"])
        assert turns >= 1 and len(trace.assistant_messages) == turns
        assert trace.rewards["env_reward"].score == pytest.approx(trace.info["env_return"])
        assert set(trace.metrics) >= {"gold", "success", "turns"}
        # Replaying the model's replies in a local env gives the same return and gold.
        local = gym.make("RLHF-ChatText-v0")
        seed = (
            trace.task.data["scenario_seed"]
            if isinstance(trace.task.data, dict)
            else trace.task.data.scenario_seed
        )
        local.reset(seed=seed, options={"scenario_seed": seed})
        total = gold = 0.0
        from rlhf_agents.lm_agents import valid_reply

        for message in trace.assistant_messages:
            _, reward, terminated, truncated, info = local.step(
                valid_reply(message.content or "", 1000)
            )
            total, gold = total + reward, gold + info["gold_reward"]
            if terminated or truncated:
                break
        assert total == pytest.approx(trace.info["env_return"], abs=1e-6)
        assert gold == pytest.approx(trace.metrics["gold"], abs=1e-6)
