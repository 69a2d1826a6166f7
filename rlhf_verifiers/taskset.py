"""Tasks, scoring and the conversation loop of the ``rlhf-verifiers`` environment.

A task is one held-out scenario of a text id (``env_id`` and ``scenario_seed``). The env's
``run()`` plays the suite's user simulator: it resets a Gymnasium env on the scenario, sends
the user's (and the system's) turns to the model's seat, steps the env with each reply,
and stops when the episode ends. The model gets the domain's policy book as its system
prompt (:func:`rlhf_envs.domains.instructions.agent_instructions`).

Scores: ``env_reward`` (a ``@vf.reward``): the episode's return under the id's reward
model (the suite's human-preference proxy, or ``reward`` from the taskset config);
``gold``, ``success`` and ``turns`` (``@vf.metric``): the gold rubric's return, whether the
task was completed within the policy, and the agent turns played.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import verifiers.v1 as vf

import rlhf_envs  # noqa: F401  (registers the ids)
from rlhf_agents.evaluation import HELD_OUT_SEED_BASE
from rlhf_agents.lm_agents import valid_reply
from rlhf_envs.dialogue import Turn
from rlhf_envs.domains.instructions import agent_instructions
from rlhf_envs.env_ids import check_env_id
from rlhf_envs.lm.chat import chat_messages


class RLHFData(vf.TaskData):
    """One scenario: the id, its scenario seed and the training reward spec."""

    env_id: str
    scenario_seed: int
    reward: str | None = None


class RLHFTask(vf.Task[RLHFData]):
    """Scored from what ``run()`` recorded in the trace's ``info``."""

    @vf.reward(weight=1.0)
    async def env_reward(self, trace: vf.Trace) -> float:
        return float(trace.info.get("env_return", 0.0))

    @vf.metric
    async def gold(self, trace: vf.Trace) -> float:
        return float(trace.info.get("gold", 0.0))

    @vf.metric
    async def success(self, trace: vf.Trace) -> float:
        return float(trace.info.get("success", 0.0))

    @vf.metric
    async def turns(self, trace: vf.Trace) -> float:
        return float(trace.info.get("turns", 0))


class RLHFTasksetConfig(vf.TasksetConfig):
    env_id: str = "RLHF-ChatText-v0"
    """`--env.taskset.env-id`: a text id (RLHF-ChatText-v0, -FinanceText-v0, -MedicalText-v0)."""
    num_tasks: int = 20
    """`--env.taskset.num-tasks`: scenarios, the comparison harness's held-out ones first."""
    first_scenario: int = HELD_OUT_SEED_BASE
    """`--env.taskset.first-scenario`: the first scenario seed."""
    reward: str | None = None
    """`--env.taskset.reward`: the training reward spec (default: the id's)."""


class RLHFTaskset(vf.Taskset[RLHFTask, RLHFTasksetConfig]):
    """Held-out scenarios of one text id."""

    def load(self) -> Iterator[RLHFTask]:
        config = self.config
        check_env_id(config.env_id, ("text",))
        domain = gym.registry[config.env_id].kwargs.get("domain", "customer_service")
        instructions = agent_instructions(domain)
        for i in range(config.num_tasks):
            seed = config.first_scenario + i
            yield RLHFTask(
                RLHFData(
                    name=f"{config.env_id}#{seed}",
                    prompt=None,  # the simulated user opens the conversation
                    system_prompt=instructions,
                    env_id=config.env_id,
                    scenario_seed=seed,
                    reward=config.reward,
                ),
                config.task,
            )


class RLHFEnvConfig(vf.EnvConfig):
    taskset: RLHFTasksetConfig = RLHFTasksetConfig()
    # The model's seat, run on this machine (verifiers' default is a remote sandbox).
    agent: vf.AgentConfig = vf.AgentConfig(runtime={"type": "subprocess"})


def _user_message(turns: tuple[Turn, ...]) -> str:
    """The env's turns since the model's last reply, as one user message."""
    return "\n".join(m["content"] for m in chat_messages(turns))


class RLHFEnv(vf.Env[RLHFEnvConfig]):
    """The suite's user simulator on one side, the model's seat on the other."""

    async def run(self, task: RLHFTask, agents: Any) -> None:
        data = task.data
        kwargs = {"reward": data.reward} if data.reward else {}
        # Gymnasium envs block: they run in a worker thread, never on the event loop
        # that also carries the model calls of concurrent episodes.
        env = await asyncio.to_thread(gym.make, data.env_id, **kwargs)
        dialogue: Any = env.unwrapped
        try:
            await asyncio.to_thread(
                env.reset, seed=data.scenario_seed, options={"scenario_seed": data.scenario_seed}
            )
            total = gold = 0.0
            success, turns = False, 0
            async with agents.agent.interaction(task) as chat:
                sent = len(dialogue.state.history)
                segment = await chat.turn(_user_message(dialogue.state.history))
                while not segment.terminated:
                    reply = valid_reply(
                        segment.last_reply or "", dialogue.interface.max_reply_chars
                    )
                    _, reward, terminated, truncated, info = await asyncio.to_thread(
                        env.step, reply
                    )
                    total += float(reward)
                    gold += float(info["gold_reward"])
                    success, turns = bool(info["success"]), turns + 1
                    if terminated or truncated:
                        break
                    history = dialogue.state.history
                    segment = await chat.turn(_user_message(history[sent + 1 :]))
                    sent = len(history)
                chat.trace.info.update(
                    env_return=total,
                    gold=gold,
                    success=float(success),
                    turns=turns,
                    task=dialogue.state.scenario.subflow,
                )
        finally:
            env.close()
