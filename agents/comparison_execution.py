"""Executing a comparison: every run trained (if its agent learns) and evaluated, in
parallel processes, then the outputs written.

:func:`execute` does one run in one process: it trains the agent with a
:class:`LearningCurve` callback (held-out evaluations during training), saves the
checkpoint, plays the held-out scenarios and writes ``result.json`` last, atomically, so a
half-finished run never counts as done. :func:`run_comparison` executes what
:func:`~rlhf_agents.comparison_plan.load_finished` does not find, one torch thread per
process, and writes the leaderboards, curves, transcripts and ``run.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from tqdm.auto import tqdm

from rlhf_agents.baselines import Agent, ExpertAgent, RandomAgent, SB3Agent
from rlhf_agents.best_of_n import BestOfNAgent
from rlhf_agents.checkpoint import load_agent, save_agent
from rlhf_agents.comparison_plan import (
    METRICS,
    CompareConfig,
    Run,
    episode_seed,
    load_finished,
    plan,
    previous_training,
    scenario_seeds,
)
from rlhf_agents.comparison_report import write_outputs, write_run_json
from rlhf_agents.evaluation import run_episode
from rlhf_agents.lm_agents import EndpointLMAgent, LocalLMAgent, parse_endpoint
from rlhf_agents.registry import AgentSpec
from rlhf_agents.run_record import RunRecord, command_line
from rlhf_agents.training import train


class RunsFailedError(RuntimeError):
    """Some runs of a comparison raised; the message lists them and why."""


def play(
    agent: Agent, env: gym.Env, seeds: list[int], tries: int, keep_transcripts: int = 0
) -> dict[str, Any]:
    """Every scenario ``tries`` times: arrays (scenarios, tries) of each metric."""
    out: dict[str, Any] = {key: np.zeros((len(seeds), tries)) for key, _ in METRICS}
    out["turns"] = np.zeros((len(seeds), tries))
    tasks: list[str] = []
    transcripts = []
    for j, scenario in enumerate(seeds):
        for t in range(tries):
            ep = run_episode(
                agent, env, episode_seed(scenario, t), options={"scenario_seed": scenario}
            )
            for key, _ in METRICS:
                out[key][j, t] = float(getattr(ep, key))
            out["turns"][j, t] = ep.turns
            if t == 0:
                tasks.append(ep.task)
            if t == 0 and j < keep_transcripts:
                transcripts.append(
                    {
                        "scenario_seed": scenario,
                        "success": ep.success,
                        "gold": ep.gold,
                        "return": ep.ret,
                        "transcript": ep.transcript,
                    }
                )
    result = {k: v.tolist() for k, v in out.items()}
    result["tasks"] = tasks
    result["transcripts"] = transcripts
    return result


def curve_point(step: int, played: dict[str, Any]) -> dict[str, Any]:
    """One point of a learning curve: the gold reward and success of one try per scenario."""
    return {
        "step": step,
        "gold": [g[0] for g in played["gold"]],
        "success": [s[0] for s in played["success"]],
    }


class LearningCurve(BaseCallback):
    """Evaluates the model on the curve scenarios at the start, about every
    ``steps / curve_points`` steps, and at the end; each point is labelled with the
    steps actually taken.

    Args:
        cfg: the comparison (its ``steps``, ``curve_points`` and ``deterministic``).
        agent_name: the name the evaluated agent plays under.
        eval_env: the env the curve scenarios are played on (``render_mode="ansi"``).
        seeds: the curve's scenario seeds.
    """

    def __init__(self, cfg: CompareConfig, agent_name: str, eval_env: gym.Env, seeds: list[int]):
        super().__init__()
        self.steps, self.deterministic = cfg.steps, cfg.deterministic
        self.agent_name, self.eval_env, self.seeds = agent_name, eval_env, seeds
        self.points: list[dict[str, Any]] = []
        self.every = max(1, cfg.steps // cfg.curve_points)
        self.next_at = self.every

    def _evaluate(self) -> None:
        # Random states are saved and restored, so measuring does not change training.
        states = (
            torch.get_rng_state(),
            np.random.get_state(),
            self.model.action_space.np_random.bit_generator.state,
        )
        agent = SB3Agent(self.model, self.agent_name, self.deterministic)
        played = play(agent, self.eval_env, self.seeds, 1)
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        self.model.action_space.np_random.bit_generator.state = states[2]
        self.points.append(curve_point(int(self.num_timesteps), played))

    def _on_training_start(self) -> None:
        self._evaluate()  # the untrained policy: where every curve starts

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_at and self.num_timesteps < self.steps:
            self._evaluate()
            while self.next_at <= self.num_timesteps:
                self.next_at += self.every
        return True

    def _on_training_end(self) -> None:
        self._evaluate()  # the agent the leaderboard evaluates


def make_untrained_agent(spec: AgentSpec, seed: int, env: gym.Env) -> Agent:
    """The agent of a run whose agent does not learn (random, expert, best-of-n, the
    language-model agents)."""
    if spec.kind == "random":
        return RandomAgent(seed=seed)
    if spec.kind == "expert":
        return ExpertAgent()
    if spec.kind == "best-of-n":
        # Without a reward spec of its own it optimises the reward the env trains with.
        return BestOfNAgent(spec.n, reward=spec.reward or env.unwrapped.reward_model, seed=seed)
    if spec.kind in ("hf", "openai"):
        assert spec.model is not None  # (checked by the registry)
        settings = {"max_tokens": spec.max_tokens, "temperature": spec.temperature, "seed": seed}
        if spec.kind == "hf":
            return LocalLMAgent(spec.model, name=spec.name, **settings)
        model, url = parse_endpoint(spec.model)
        return EndpointLMAgent(model, url, name=spec.name, **settings)
    raise ValueError(f"{spec.name} is an {spec.kind} agent; it is made by training")


def _train(
    run: Run,
    cfg: CompareConfig,
    params: dict[str, Any],
    eval_env: gym.Env,
    curve_seeds: list[int],
    position: int,
) -> tuple[BaseAlgorithm, list[dict[str, Any]]]:
    """Train ``run``'s agent with the SB3 arguments ``params``; return the model and its
    learning curve."""
    callback = LearningCurve(cfg, run.agent.name, eval_env, curve_seeds)
    model = train(
        run.agent.algo,
        run.env_id,
        run.agent.policy,
        total_timesteps=cfg.steps,
        seed=run.seed,
        n_envs=cfg.n_envs,
        env_kwargs=run.env_kwargs(),
        progress=f"{run.agent.name} s{run.seed}",
        position=position,
        callbacks=[callback],
        **params,
    )
    return model, callback.points


def _save_checkpoint(
    model: BaseAlgorithm, run: Run, params: dict[str, Any], folder: Path, eval_env: gym.Env
) -> None:
    """Save a trained agent to ``folder/checkpoint``, replacing it only once complete."""
    # The canonical spec (a learned model's path made absolute) loads from anywhere.
    saved_kwargs = (
        {"reward": eval_env.unwrapped.reward_model.spec} if run.reward is not None else {}
    )
    staging = folder / f"checkpoint.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    save_agent(
        model,
        staging,
        algo=run.agent.algo,
        policy=run.agent.policy,
        env_id=run.env_id,
        env_kwargs=saved_kwargs,
        hyperparams=params,
    )
    shutil.rmtree(folder / "checkpoint", ignore_errors=True)
    os.replace(staging, folder / "checkpoint")  # a half-written checkpoint is never in place


def execute(run: Run, cfg: CompareConfig, folder: Path, position: int = 0) -> dict[str, Any]:
    """Train (if the agent learns) and evaluate one run; write ``folder/result.json``."""
    torch.set_num_threads(1)  # parallel runs would otherwise oversubscribe the cores
    eval_env = gym.make(run.env_id, render_mode="ansi", **run.env_kwargs())
    seeds = scenario_seeds(cfg)
    curve_seeds = seeds[: cfg.curve_scenarios]
    started = time.perf_counter()
    curve: list[dict[str, Any]] = []
    try:
        trained = previous_training(run, cfg, folder) if run.agent.trains else None
        if trained is not None:  # only evaluation settings changed: re-evaluate the saved agent
            agent = load_agent(folder / "checkpoint", eval_env, run.agent.name, cfg.deterministic)
            curve, train_seconds = trained["curve"], trained["train_seconds"]
        elif run.agent.trains:
            params = run.agent.resolved_hyperparams()
            model, curve = _train(run, cfg, params, eval_env, curve_seeds, position)
            train_seconds = time.perf_counter() - started
            _save_checkpoint(model, run, params, folder, eval_env)
            agent = SB3Agent(model, run.agent.name, cfg.deterministic)
        else:
            agent = make_untrained_agent(run.agent, run.seed, eval_env)
            train_seconds = 0.0
        evaluated = time.perf_counter()
        result = play(agent, eval_env, seeds, cfg.tries, keep_transcripts=cfg.transcripts)
        if not run.agent.trains:  # a flat curve: the same agent at every step
            curve = [curve_point(0, play(agent, eval_env, curve_seeds, 1))]
    finally:
        eval_env.close()
    result.update(
        {
            "settings": run.settings(cfg),
            "train_settings": run.train_settings(cfg),
            "curve": curve,
            "train_seconds": train_seconds,
            "eval_seconds": time.perf_counter() - evaluated,
            "deterministic": bool(getattr(agent, "deterministic", True)),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"result.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(result))
    # Atomic: a half-written result never counts as finished.
    os.replace(tmp, folder / "result.json")
    return result


def _execute_in_worker(run: Run, cfg: CompareConfig, folder: str, position: int) -> dict[str, Any]:
    return execute(run, cfg, Path(folder), position)


def prepare_reference_lm(env_ids: set[str], progress: bool = True) -> None:
    """Build the default reference LM first when an env needs it (tokens and text ids),
    as a step of its own with its progress bar and its own threads, not inside a run
    that would wait for it (and count the minutes as training time)."""
    from rlhf_envs.env import FREE_TEXT_INTERFACES

    if not any(
        gym.spec(env_id).kwargs.get("interface") in FREE_TEXT_INTERFACES
        and gym.spec(env_id).kwargs.get("lm") is None
        for env_id in env_ids
    ):
        return
    from rlhf_envs.lm.build import default_lm_path

    started = time.perf_counter()
    path = default_lm_path(quiet=not progress)
    if progress:
        print(f"reference LM: {path} ({time.perf_counter() - started:.0f} s)")


def run_comparison(
    cfg: CompareConfig, out: str | Path, command: str | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) the comparison and write every output to ``out``.

    Args:
        command: the command line recorded in ``run.json`` (default: this process's).

    Returns:
        ``{"rows": leaderboard rows, "ran": runs executed now, "skipped": runs reused}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Taken before the runs: the git revision is the code they ran with.
    record = RunRecord(
        command or command_line(sys.argv),
        seeds={"seeds": cfg.seeds, "scenario_seeds": scenario_seeds(cfg)},
    )
    runs = plan(cfg)
    results: dict[Run, dict[str, Any]] = {}
    todo = []
    for run in runs:
        done = load_finished(run, cfg, out)
        if done is None:
            todo.append(run)
        else:
            results[run] = done
    if todo:
        prepare_reference_lm({run.env_id for run in todo}, progress)
    if progress:
        print(
            f"{len(runs)} runs: {len(results)} finished before, {len(todo)} to do, "
            f"{min(cfg.jobs, max(1, len(todo)))} in parallel"
        )
    bar = tqdm(
        total=len(todo),
        desc="runs",
        unit="run",
        position=0,
        disable=not progress,
        dynamic_ncols=True,
    )
    failed: dict[Run, str] = {}
    if cfg.jobs == 1:
        for run in todo:
            try:
                results[run] = execute(run, cfg, run.folder(out), position=1)
            except Exception as err:  # one failed run must not cost the others
                failed[run] = f"{type(err).__name__}: {err}"
            bar.update()
    elif todo:
        with ProcessPoolExecutor(
            max_workers=min(cfg.jobs, len(todo)), mp_context=get_context("spawn")
        ) as pool:
            futures = {
                pool.submit(
                    _execute_in_worker, run, cfg, str(run.folder(out)), 1 + i % cfg.jobs
                ): run
                for i, run in enumerate(todo)
            }
            for future in as_completed(futures):
                try:
                    results[futures[future]] = future.result()
                except Exception as err:
                    failed[futures[future]] = f"{type(err).__name__}: {err}"
                bar.update()
    bar.close()
    finished = [r for r in runs if r in results]
    rows = write_outputs(cfg, finished, results, out) if finished else []
    write_run_json(
        cfg,
        out,
        record,
        ran=len(todo) - len(failed),
        skipped=len(runs) - len(todo),
    )
    if failed:
        lines = "\n".join(
            f"  {r.agent.name} on {r.env_id} (reward {r.reward or 'default'}, seed {r.seed}): {why}"
            for r, why in failed.items()
        )
        raise RunsFailedError(
            f"{len(failed)} of {len(runs)} runs failed (the others are saved and the outputs "
            f"cover them; rerun the same command to retry only the failed ones):\n{lines}"
        )
    return {"rows": rows, "ran": len(todo), "skipped": len(runs) - len(todo)}
