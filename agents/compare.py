"""The comparison harness: agents x envs x reward specs x seeds, one leaderboard.

``rlhf-envs compare`` trains every learning agent on every env, reward spec and seed with
the same step budget, evaluates every agent on the same held-out scenarios, and writes a
results folder::

    leaderboard.md, leaderboard.csv   per agent, env and reward spec: mean return, gold
                                      reward, success and satisfaction with 95% bootstrap
                                      intervals; IQM of gold (rliable); P(improvement)
                                      over a reference agent; pass^1..pass^k
    improvement.csv                   P(row agent > column agent), every pair
    curves.png                        held-out gold reward and success vs training steps
    transcripts/                      sample dialogues per agent, the same scenarios
    run.json                          command, seeds, versions, git revision, timings
    runs/<env>/<reward>/<agent>/seed-<s>/
        result.json                   one run's episodes and curve (written last)
        checkpoint/                   a trained agent (safetensors + JSON)

A run whose ``result.json`` exists with the same settings is not redone, so an
interrupted comparison resumes where it stopped, and adding an agent or a seed runs only
what is new. Runs execute in parallel processes, one torch thread each.

Evaluation: held-out scenario ``j`` is drawn from ``scenario_seed = 1_000_000 + j`` and
played ``tries`` times with different episode seeds (the user's wording and the order of
proposals change; the task does not) through ``reset(options={"scenario_seed": ...})``.
Trained agents act greedily unless ``--stochastic`` (the leaderboard says which).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from hashlib import sha1
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rlhf_agents import metrics
from rlhf_agents.registry import AgentSpec, resolve_agents

FORMAT = "rlhf-envs-compare/1"
SCENARIO_SEED_BASE = 1_000_000  # held-out scenarios, apart from training seeds (0, 1, ...)
TRY_SEED_STRIDE = 10_000_000  # episode seed of try t at scenario c: c + (t + 1) * stride
METRICS = (
    ("ret", "return"),
    ("gold", "gold"),
    ("success", "success"),
    ("satisfaction", "satisfaction"),
)


@dataclass
class CompareConfig:
    """What to compare and how (see ``rlhf-envs compare --help``).

    Args:
        agents: the agents (see :mod:`rlhf_agents.registry`).
        envs: registered env ids.
        rewards: reward specs given to ``gymnasium.make(id, reward=...)``; ``None`` keeps
            the env's default.
        seeds: training seeds; every agent runs once per seed.
        steps: training steps per run of a learning agent.
        scenarios: held-out scenarios every agent is evaluated on.
        tries: tries per scenario (pass^k needs k <= tries).
        deterministic: trained agents act greedily (else they sample).
        curve_points: held-out evaluations during training (the learning curve).
        curve_scenarios: scenarios per curve point (the first of the held-out ones).
        n_envs: parallel envs per training run.
        transcripts: scenarios whose dialogues are kept per agent.
        jobs: parallel processes.
        reference: the agent P(improvement) is measured against (default: ``random`` if
            compared, else the first agent).
    """

    agents: list[AgentSpec]
    envs: list[str]
    rewards: list[str | None] = field(default_factory=lambda: [None])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    steps: int = 100_000
    scenarios: int = 100
    tries: int = 4
    deterministic: bool = True
    curve_points: int = 10
    curve_scenarios: int = 20
    n_envs: int = 4
    transcripts: int = 3
    jobs: int = max(1, os.cpu_count() or 1)
    reference: str | None = None

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "scenarios",
            "tries",
            "curve_points",
            "curve_scenarios",
            "n_envs",
            "jobs",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.agents or not self.envs or not self.seeds or not self.rewards:
            raise ValueError("need at least one agent, env, reward spec and seed")
        for label, values in (
            ("seeds", self.seeds),
            ("envs", self.envs),
            ("reward specs", self.rewards),
            ("agents", [a.name for a in self.agents]),
        ):
            repeated = sorted({str(v) for v in values if list(values).count(v) > 1})
            if repeated:
                raise ValueError(
                    f"{label} are listed more than once: {repeated}; each run must be unique"
                )
        names = [a.name for a in self.agents]
        if self.reference is not None and self.reference not in names:
            raise ValueError(f"reference agent {self.reference!r} is not among the agents {names}")
        self.curve_scenarios = min(self.curve_scenarios, self.scenarios)
        self.transcripts = min(self.transcripts, self.scenarios)

    @property
    def reference_agent(self) -> str:
        names = [a.name for a in self.agents]
        return self.reference or ("random" if "random" in names else names[0])


@dataclass(frozen=True)
class Run:
    """One (agent, env, reward spec, seed) cell of a comparison."""

    agent: AgentSpec
    env_id: str
    reward: str | None
    seed: int

    def folder(self, out: Path) -> Path:
        return (
            out
            / "runs"
            / _slug(self.env_id)
            / reward_slug(self.reward)
            / _slug(self.agent.name)
            / f"seed-{self.seed}"
        )

    def train_settings(self, cfg: CompareConfig) -> dict[str, Any]:
        """Everything that determines the trained agent and its learning curve."""
        return {
            "format": FORMAT,
            "agent": self.agent.to_json(),
            "hyperparams": self.agent.resolved_hyperparams(),
            "env_id": self.env_id,
            "reward": self.reward,
            "seed": self.seed,
            "steps": cfg.steps if self.agent.trains else 0,
            "n_envs": cfg.n_envs if self.agent.trains else 0,
            "curve_points": cfg.curve_points,
            "curve_scenarios": cfg.curve_scenarios,
            "deterministic": cfg.deterministic,
        }

    def settings(self, cfg: CompareConfig) -> dict[str, Any]:
        """Everything that determines this run's result; a stored result is reused only
        when it was made with the same settings (with the same training settings only,
        its trained agent is re-evaluated rather than retrained)."""
        return {
            **self.train_settings(cfg),
            "scenarios": cfg.scenarios,
            "tries": cfg.tries,
            "transcripts": cfg.transcripts,
        }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "_"


def reward_slug(reward: str | None) -> str:
    """A folder name for a reward spec; long or path-like specs get a hash suffix."""
    if reward is None:
        return "default"
    slug = _slug(reward)
    if len(slug) > 40 or slug != reward:
        slug = f"{slug[:32]}-{sha1(reward.encode()).hexdigest()[:8]}"
    return slug


def scenario_seeds(cfg: CompareConfig) -> list[int]:
    return [SCENARIO_SEED_BASE + j for j in range(cfg.scenarios)]


def episode_seed(scenario_seed: int, attempt: int) -> int:
    return scenario_seed + (attempt + 1) * TRY_SEED_STRIDE


# ---------------------------------------------------------------------------------------
# One run (in a worker process)


def _env_kwargs(run: Run) -> dict[str, Any]:
    return {} if run.reward is None else {"reward": run.reward}


def _make_agent(spec: AgentSpec, seed: int, env):
    from rlhf_agents.baselines import ExpertAgent, RandomAgent
    from rlhf_agents.best_of_n import BestOfNAgent

    if spec.kind == "random":
        return RandomAgent(seed=seed)
    if spec.kind == "expert":
        return ExpertAgent()
    if spec.kind == "best-of-n":
        # Without a reward spec of its own it optimises the reward the env trains with.
        return BestOfNAgent(spec.n, reward=spec.reward or env.unwrapped.reward_model, seed=seed)
    raise ValueError(f"{spec.name} is an {spec.kind} agent; it is made by training")


def _play(agent, env, seeds: list[int], tries: int, keep_transcripts: int = 0) -> dict[str, Any]:
    """Every scenario ``tries`` times: arrays (scenarios, tries) of each metric."""
    from rlhf_agents.evaluation import run_episode

    out: dict[str, Any] = {key: np.zeros((len(seeds), tries)) for key, _ in METRICS}
    out["turns"] = np.zeros((len(seeds), tries))
    transcripts = []
    for j, scenario in enumerate(seeds):
        for t in range(tries):
            ep = run_episode(
                agent, env, episode_seed(scenario, t), options={"scenario_seed": scenario}
            )
            for key, _ in METRICS:
                out[key][j, t] = float(getattr(ep, key))
            out["turns"][j, t] = ep.turns
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
    result["transcripts"] = transcripts
    return result


def _curve_callback(run: Run, cfg: CompareConfig, eval_env, seeds: list[int]):
    from stable_baselines3.common.callbacks import BaseCallback

    from rlhf_agents.baselines import SB3Agent

    class LearningCurve(BaseCallback):
        """Evaluates the model on the curve scenarios at the start, about every
        ``steps / curve_points`` steps, and at the end; each point is labelled with the
        steps actually taken."""

        def __init__(self):
            super().__init__()
            self.points: list[dict[str, Any]] = []
            self.every = max(1, cfg.steps // cfg.curve_points)
            self.next_at = self.every

        def _evaluate(self) -> None:
            # Random states are saved and restored, so measuring does not change training.
            import torch

            states = (
                torch.get_rng_state(),
                np.random.get_state(),
                self.model.action_space.np_random.bit_generator.state,
            )
            played = _play(
                SB3Agent(self.model, run.agent.name, cfg.deterministic), eval_env, seeds, 1
            )
            torch.set_rng_state(states[0])
            np.random.set_state(states[1])
            self.model.action_space.np_random.bit_generator.state = states[2]
            self.points.append(
                {
                    "step": int(self.num_timesteps),
                    "gold": [g[0] for g in played["gold"]],
                    "success": [s[0] for s in played["success"]],
                }
            )

        def _on_training_start(self) -> None:
            self._evaluate()  # the untrained policy: where every curve starts

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_at and self.num_timesteps < cfg.steps:
                self._evaluate()
                while self.next_at <= self.num_timesteps:
                    self.next_at += self.every
            return True

        def _on_training_end(self) -> None:
            self._evaluate()  # the agent the leaderboard evaluates

    return LearningCurve()


def execute(run: Run, cfg: CompareConfig, folder: Path, position: int = 0) -> dict[str, Any]:
    """Train (if the agent learns) and evaluate one run; write ``folder/result.json``."""
    import gymnasium as gym
    import torch

    import rlhf_envs  # noqa: F401  (registers the ids in a fresh worker)
    from rlhf_agents.baselines import SB3Agent

    torch.set_num_threads(1)  # parallel runs would otherwise oversubscribe the cores
    env_kwargs = _env_kwargs(run)
    eval_env = gym.make(run.env_id, render_mode="ansi", **env_kwargs)
    seeds = scenario_seeds(cfg)
    curve_seeds = seeds[: cfg.curve_scenarios]
    started = time.perf_counter()
    curve: list[dict[str, Any]] = []
    try:
        trained = previous_training(run, cfg, folder) if run.agent.trains else None
        if trained is not None:  # only evaluation settings changed: re-evaluate the saved agent
            from rlhf_agents.checkpoint import load_agent

            agent = load_agent(folder / "checkpoint", eval_env, run.agent.name, cfg.deterministic)
            curve, train_seconds = trained["curve"], trained["train_seconds"]
        elif run.agent.trains:
            from rlhf_agents.checkpoint import save_agent
            from rlhf_agents.training import train

            callback = _curve_callback(run, cfg, eval_env, curve_seeds)
            params = run.agent.resolved_hyperparams()
            model = train(
                run.agent.algo,
                run.env_id,
                run.agent.policy,
                total_timesteps=cfg.steps,
                seed=run.seed,
                n_envs=cfg.n_envs,
                env_kwargs=env_kwargs,
                progress=f"{run.agent.name} s{run.seed}",
                position=position,
                callbacks=[callback],
                **params,
            )
            curve = callback.points
            train_seconds = time.perf_counter() - started
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
            os.replace(
                staging, folder / "checkpoint"
            )  # a half-written checkpoint is never in place
            agent = SB3Agent(model, run.agent.name, cfg.deterministic)
        else:
            agent = _make_agent(run.agent, run.seed, eval_env)
            train_seconds = 0.0
        evaluated = time.perf_counter()
        result = _play(agent, eval_env, seeds, cfg.tries, keep_transcripts=cfg.transcripts)
        if not run.agent.trains:  # a flat curve: the same agent at every step
            result_curve = _play(agent, eval_env, curve_seeds, 1)
            curve = [
                {
                    "step": 0,
                    "gold": [g[0] for g in result_curve["gold"]],
                    "success": [s[0] for s in result_curve["success"]],
                }
            ]
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
    os.replace(
        tmp, folder / "result.json"
    )  # atomic: a half-written result never counts as finished
    return result


def _execute_in_worker(run: Run, cfg: CompareConfig, folder: str, position: int) -> dict[str, Any]:
    return execute(run, cfg, Path(folder), position)


def _stored(folder: Path) -> dict[str, Any] | None:
    path = folder / "result.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def previous_training(run: Run, cfg: CompareConfig, folder: Path) -> dict[str, Any] | None:
    """A stored result whose agent was trained with the same training settings and whose
    checkpoint is in place (so only the evaluation has to be redone), else ``None``."""
    result = _stored(folder)
    if result is None or result.get("train_settings") != run.train_settings(cfg):
        return None
    return result if (folder / "checkpoint" / "agent.json").is_file() else None


def load_finished(run: Run, cfg: CompareConfig, out: Path) -> dict[str, Any] | None:
    """The stored result of ``run``, if it exists and was made with the same settings."""
    result = _stored(run.folder(out))
    return result if result is not None and result.get("settings") == run.settings(cfg) else None


# ---------------------------------------------------------------------------------------
# Planning and running


def plan(cfg: CompareConfig) -> list[Run]:
    """Every run of the comparison, learning agents first (they take longest).

    Raises:
        ValueError: an agent cannot act on an env (the message says which and why).
    """
    import gymnasium as gym

    import rlhf_envs  # noqa: F401

    for env_id in cfg.envs:
        if env_id not in gym.registry:
            known = sorted(k for k in gym.registry if k.startswith("RLHF-"))
            raise ValueError(f"env {env_id!r} is not registered; known: {known}")
        spec_kwargs = gym.registry[env_id].kwargs
        interface = spec_kwargs.get("interface", "select")
        for agent in cfg.agents:
            if agent.kind == "sb3" and agent.policy == "candidate" and interface != "select":
                raise ValueError(
                    f"agent {agent.name!r} uses the candidate-scoring policy, which needs the "
                    f"select interface; {env_id} uses {interface!r}"
                )
            if agent.kind == "sb3" and interface == "text":
                raise ValueError(
                    f"agent {agent.name!r} is an SB3 agent; SB3 has no policies for the text "
                    f"action space of {env_id} (use the select or tokens interface)"
                )
            if agent.kind == "random" and interface == "text":
                raise ValueError(
                    f"agent 'random' needs a Discrete action space; {env_id} takes text"
                )
    for kind, names, slug in (
        ("agent", [a.name for a in cfg.agents], _slug),
        ("env", cfg.envs, _slug),
        ("reward spec", cfg.rewards, reward_slug),
    ):
        folders: dict[str, Any] = {}
        for name in names:
            other = folders.setdefault(slug(name), name)
            if other != name:
                raise ValueError(
                    f"{kind}s {other!r} and {name!r} would share the results folder "
                    f"{slug(name)!r}; rename one"
                )
    runs = [
        Run(a, e, r, s)
        for a in cfg.agents
        for e in cfg.envs
        for r in cfg.rewards
        for s in cfg.seeds
    ]
    # Slowest first, so the last runs to finish are short ones.
    cost = {"recurrent-ppo": 3, "dqn": 2}
    return sorted(runs, key=lambda r: (not r.agent.trains, -cost.get(r.agent.algo or "", 1)))


def run_comparison(
    cfg: CompareConfig, out: str | Path, command: str | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) the comparison and write every output to ``out``.

    Returns:
        ``{"rows": leaderboard rows, "ran": runs executed now, "skipped": runs reused}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    revision = _git_revision()  # before the runs: the code they ran with
    runs = plan(cfg)
    results: dict[Run, dict[str, Any]] = {}
    todo = []
    for run in runs:
        done = load_finished(run, cfg, out)
        if done is None:
            todo.append(run)
        else:
            results[run] = done
    if progress:
        print(
            f"{len(runs)} runs: {len(results)} finished before, {len(todo)} to do, {min(cfg.jobs, max(1, len(todo)))} in parallel"
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
        command,
        started,
        revision,
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


class RunsFailedError(RuntimeError):
    """Some runs of a comparison raised; the message lists them and why."""


# ---------------------------------------------------------------------------------------
# Summaries


def _matrices(runs: list[Run], results: dict[Run, dict[str, Any]]) -> dict[str, np.ndarray]:
    """Per metric, ``(runs, scenarios)`` means over tries; success keeps its tries too."""
    ordered = sorted(runs, key=lambda r: r.seed)
    mats = {
        key: np.array([np.mean(results[r][key], axis=1) for r in ordered]) for key, _ in METRICS
    }
    mats["success_tries"] = np.array([results[r]["success"] for r in ordered], dtype=bool)
    return mats


def _by_group(runs: list[Run]) -> dict[tuple[str, str | None], dict[str, list[Run]]]:
    """Runs by (env, reward spec), then by agent name, in the order given."""
    groups: dict[tuple[str, str | None], dict[str, list[Run]]] = {}
    for run in runs:
        groups.setdefault((run.env_id, run.reward), {}).setdefault(run.agent.name, []).append(run)
    return groups


def leaderboard_rows(
    cfg: CompareConfig, runs: list[Run], results: dict[Run, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per (env, reward spec, agent), best mean gold first within each group."""
    rows = []
    for (env_id, reward), by_agent in _by_group(runs).items():
        mats = {name: _matrices(agent_runs, results) for name, agent_runs in by_agent.items()}
        ref = cfg.reference_agent
        group_rows = []
        for name, agent_runs in by_agent.items():
            m = mats[name]
            row: dict[str, Any] = {
                "env": env_id,
                "reward": reward or "default",
                "agent": name,
                "runs": len(agent_runs),
                "episodes": int(m["success_tries"].size),
            }
            for key, label in METRICS:
                mean, lo, hi = metrics.mean_ci(m[key])
                row.update({label: mean, f"{label}_lo": lo, f"{label}_hi": hi})
            row["gold_iqm"], row["gold_iqm_lo"], row["gold_iqm_hi"] = metrics.iqm_ci(m["gold"])
            row["p_improve"] = (
                metrics.probability_of_improvement(m["gold"], mats[ref]["gold"])
                if ref in mats
                else float("nan")
            )
            row["p_improve_over"] = ref
            for k in range(1, cfg.tries + 1):
                row[f"pass^{k}"] = metrics.pass_hat_k(m["success_tries"], k)
            row["train_minutes"] = (
                float(np.mean([results[r]["train_seconds"] for r in agent_runs])) / 60
            )
            row["deterministic"] = all(results[r]["deterministic"] for r in agent_runs)
            group_rows.append(row)
        rows.extend(sorted(group_rows, key=lambda r: -r["gold"]))
    return rows


def columns(cfg: CompareConfig) -> list[str]:
    cols = ["env", "reward", "agent", "runs", "episodes"]
    for _, label in METRICS:
        cols += [label, f"{label}_lo", f"{label}_hi"]
    cols += ["gold_iqm", "gold_iqm_lo", "gold_iqm_hi", "p_improve", "p_improve_over"]
    cols += [f"pass^{k}" for k in range(1, cfg.tries + 1)]
    return cols + ["train_minutes", "deterministic"]


def markdown(cfg: CompareConfig, rows: list[dict[str, Any]]) -> str:
    """The leaderboard as Markdown: one table per env and reward spec."""
    passes = [f"pass^{k}" for k in range(1, cfg.tries + 1)]
    parts = []
    for env_id, reward in dict.fromkeys((r["env"], r["reward"]) for r in rows):
        group = [r for r in rows if r["env"] == env_id and r["reward"] == reward]
        ref = group[0]["p_improve_over"]
        parts.append(f"### {env_id}, reward `{reward}`\n")
        parts.append(
            "| agent | return | gold reward | success | satisfaction | gold IQM | "
            f"P(> {ref}) | " + " | ".join(passes) + " | acts | train min |"
        )
        parts.append("|---" * (9 + len(passes)) + "|")
        for r in group:
            cells = [
                r["agent"],
                f"{r['return']:.2f} [{r['return_lo']:.2f}, {r['return_hi']:.2f}]",
                f"{r['gold']:.2f} [{r['gold_lo']:.2f}, {r['gold_hi']:.2f}]",
                f"{r['success']:.0%} [{r['success_lo']:.0%}, {r['success_hi']:.0%}]",
                f"{r['satisfaction']:.2f} [{r['satisfaction_lo']:.2f}, {r['satisfaction_hi']:.2f}]",
                f"{r['gold_iqm']:.2f} [{r['gold_iqm_lo']:.2f}, {r['gold_iqm_hi']:.2f}]",
                f"{r['p_improve']:.2f}",
                *[f"{r[p]:.2f}" for p in passes],
                "greedy" if r["deterministic"] else "sampled",
                f"{r['train_minutes']:.1f}",
            ]
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
    n_runs = len(cfg.seeds)
    budget = (
        f", {cfg.steps:,} training steps per learning agent"
        if any(a.trains for a in cfg.agents)
        else ""
    )
    parts.append(
        f"{cfg.scenarios} held-out scenarios x {cfg.tries} tries per run, {n_runs} seed(s) per agent{budget}. "
        "Intervals: 95% bootstrap over seeds and "
        "scenarios (IQM: stratified over seeds, as rliable). P(> ref): probability that the agent "
        "beats the reference agent's gold reward on a scenario (0.5 = no difference). pass^k: chance "
        "that k tries at the same scenario all succeed. return: the training reward; gold: the gold "
        "rubric's; satisfaction: the simulated user's, at the end."
    )
    return "\n".join(parts)


def _csv(rows: list[dict[str, Any]], cols: list[str]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=cols, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buffer.getvalue()


def improvement_csv(runs: list[Run], results: dict[Run, dict[str, Any]]) -> str:
    """P(row > column) on gold reward for every pair of agents, per env and reward spec."""
    lines = ["env,reward,agent," + "over_agent,p_improve"]
    for (env_id, reward), by_agent in _by_group(runs).items():
        gold = {name: _matrices(rs, results)["gold"] for name, rs in by_agent.items()}
        for x in gold:
            for y in gold:
                if x != y:
                    p = metrics.probability_of_improvement(gold[x], gold[y])
                    lines.append(f"{env_id},{reward or 'default'},{x},{y},{p:.4f}")
    return "\n".join(lines) + "\n"


def plot_curves(
    cfg: CompareConfig, runs: list[Run], results: dict[Run, dict[str, Any]], path: Path
) -> None:
    """Held-out gold reward and success vs training steps: one line per agent (mean over
    seeds) with a 95% bootstrap band; agents that do not learn are dashed flat lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r.env_id, r.reward) for r in runs))
    fig, axes = plt.subplots(len(groups), 2, figsize=(12, 4 * len(groups)), squeeze=False)
    for g, (env_id, reward) in enumerate(groups):
        present = {r.agent.name for r in runs if (r.env_id, r.reward) == (env_id, reward)}
        agents = [a.name for a in cfg.agents if a.name in present]  # legend in the order asked for
        for a, name in enumerate(agents):
            agent_runs = [
                r for r in runs if (r.env_id, r.reward, r.agent.name) == (env_id, reward, name)
            ]
            curves = [results[r]["curve"] for r in agent_runs]
            trains = agent_runs[0].agent.trains
            color = f"C{a % 10}"
            for col, key in enumerate(("gold", "success")):
                ax = axes[g][col]
                n_points = min(len(c) for c in curves)
                if n_points == 0:
                    continue
                steps = (
                    [curves[0][i]["step"] for i in range(n_points)] if trains else [0, cfg.steps]
                )
                stats = [
                    metrics.mean_ci(np.array([c[i][key] for c in curves]), n_boot=500)
                    for i in range(n_points)
                ]
                if not trains:
                    stats = stats * 2
                mean, lo, hi = (np.array(v) for v in zip(*stats))
                ax.plot(
                    steps,
                    mean,
                    color=color,
                    label=name,
                    linestyle="-" if trains else "--",
                    marker="o" if trains else None,
                    markersize=3,
                )
                ax.fill_between(steps, lo, hi, color=color, alpha=0.15)
        for col, label in enumerate(("gold reward per episode", "success rate")):
            ax = axes[g][col]
            ax.set_title(f"{env_id}, reward {reward or 'default'}: {label}")
            ax.set_xlabel("training steps")
            ax.grid(alpha=0.3)
        axes[g][1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(
        f"held-out curves ({cfg.curve_scenarios} scenarios per point, mean over {len(cfg.seeds)} seeds, 95% CI)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_transcripts(
    cfg: CompareConfig, runs: list[Run], results: dict[Run, dict[str, Any]], folder: Path
) -> None:
    """``transcripts/<env>/<reward>/<agent>.md``: the first seed's dialogues on the same
    held-out scenarios for every agent."""
    first_seed = min(cfg.seeds)
    for run in runs:
        if run.seed != first_seed:
            continue
        path = folder / _slug(run.env_id) / reward_slug(run.reward) / f"{_slug(run.agent.name)}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        parts = [
            f"# {run.agent.name} on {run.env_id} (reward {run.reward or 'default'}, seed {run.seed})\n"
        ]
        for t in results[run]["transcripts"]:
            parts.append(
                f"## scenario {t['scenario_seed']}: success={t['success']}, gold={t['gold']:.2f}\n"
            )
            parts.append("```text\n" + t["transcript"].rstrip() + "\n```\n")
        path.write_text("\n".join(parts))


def write_outputs(
    cfg: CompareConfig, runs: list[Run], results: dict[Run, dict[str, Any]], out: Path
) -> list[dict[str, Any]]:
    rows = leaderboard_rows(cfg, runs, results)
    (out / "leaderboard.md").write_text(markdown(cfg, rows) + "\n")
    (out / "leaderboard.csv").write_text(_csv(rows, columns(cfg)))
    (out / "improvement.csv").write_text(improvement_csv(runs, results))
    plot_curves(cfg, runs, results, out / "curves.png")
    write_transcripts(cfg, runs, results, out / "transcripts")
    return rows


def _git_revision() -> str | None:
    try:
        root = Path(__file__).resolve().parents[1]
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("rlhf-envs", "gymnasium", "stable-baselines3", "sb3-contrib", "torch", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def write_run_json(
    cfg: CompareConfig,
    out: Path,
    command: str | None,
    started: float,
    revision: str | None,
    ran: int,
    skipped: int,
) -> None:
    """``run.json``: the settings, versions and git revision of the latest invocation, and
    every invocation so far (a resumed comparison keeps the record of the earlier ones)."""
    path = out / "run.json"
    invocations = []
    if path.is_file():
        try:
            invocations = list(json.loads(path.read_text()).get("invocations", []))
        except (json.JSONDecodeError, AttributeError):
            invocations = []
    command = command or " ".join(shlex.quote(a) for a in sys.argv)
    invocations.append(
        {
            "command": command,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "wall_seconds": round(time.time() - started, 1),
            "runs_executed": ran,
            "runs_reused": skipped,
            "git_revision": revision,
        }
    )
    info = {
        "format": FORMAT,
        "command": command,
        "agents": [a.to_json() for a in cfg.agents],
        "envs": cfg.envs,
        "rewards": cfg.rewards,
        "seeds": cfg.seeds,
        "steps": cfg.steps,
        "scenario_seeds": scenario_seeds(cfg),
        "tries": cfg.tries,
        "episode_seed": f"scenario_seed + (try + 1) * {TRY_SEED_STRIDE}",
        "deterministic": cfg.deterministic,
        "curve_points": cfg.curve_points,
        "curve_scenarios": cfg.curve_scenarios,
        "n_envs": cfg.n_envs,
        "jobs": cfg.jobs,
        "reference": cfg.reference_agent,
        "versions": versions(),
        "git_revision": revision,
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "runs_executed": ran,
        "runs_reused": skipped,
        "invocations": invocations,
    }
    path.write_text(json.dumps(info, indent=2) + "\n")


# ---------------------------------------------------------------------------------------
# Command line


def _int_list(text: str) -> list[int]:
    """``"3"`` -> [0, 1, 2]; ``"0,5,7"`` -> [0, 5, 7]."""
    try:
        if "," in text:
            return [int(x) for x in text.split(",") if x.strip()]
        return list(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count (3) or a comma-separated list of seeds (0,5,7), got {text!r}"
        )


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rlhf-envs compare``."""
    p = subparsers.add_parser(
        "compare",
        help="train and evaluate agents x envs x seeds; write a leaderboard, curves and transcripts",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--agents",
        type=_names,
        default=_names("random,expert,ppo,a2c,dqn"),
        help="comma-separated agent names (built in: random, expert, best-of-n, ppo, ppo-mlp, a2c, dqn, "
        "maskable-ppo, recurrent-ppo; more from --config)",
    )
    p.add_argument("--envs", type=_names, default=["RLHF-Chat-v0"], help="comma-separated env ids")
    p.add_argument(
        "--rewards",
        type=_names,
        default=None,
        help="comma-separated reward specs to train against (default: each env's own)",
    )
    p.add_argument(
        "--seeds",
        type=_int_list,
        default=[0, 1, 2],
        help="a count (3 = seeds 0,1,2) or a list (0,5,7)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=100_000,
        help="training steps per learning agent (default 100000)",
    )
    p.add_argument("--scenarios", type=int, default=100, help="held-out scenarios (default 100)")
    p.add_argument(
        "--tries", type=int, default=4, help="tries per scenario, for pass^k (default 4)"
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML file of agent hyperparameters and new agents",
    )
    p.add_argument(
        "--stochastic",
        action="store_true",
        help="trained agents sample actions (default: greedy); DQN is then epsilon-greedy at its final epsilon",
    )
    p.add_argument(
        "--curve-points",
        type=int,
        default=10,
        help="held-out evaluations during training (default 10)",
    )
    p.add_argument(
        "--curve-scenarios", type=int, default=20, help="scenarios per curve point (default 20)"
    )
    p.add_argument(
        "--n-envs", type=int, default=4, help="parallel envs per training run (default 4)"
    )
    p.add_argument(
        "--transcripts", type=int, default=3, help="dialogues kept per agent (default 3)"
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=max(1, os.cpu_count() or 1),
        help="parallel processes (default: CPU count)",
    )
    p.add_argument(
        "--reference",
        default=None,
        help="agent that P(improvement) is measured against (default: random)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("results/compare"),
        help="results folder (default results/compare)",
    )
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    try:
        cfg = CompareConfig(
            agents=resolve_agents(args.agents, args.config),
            envs=args.envs,
            rewards=args.rewards or [None],
            seeds=args.seeds,
            steps=args.steps,
            scenarios=args.scenarios,
            tries=args.tries,
            deterministic=not args.stochastic,
            curve_points=args.curve_points,
            curve_scenarios=args.curve_scenarios,
            n_envs=args.n_envs,
            transcripts=args.transcripts,
            jobs=args.jobs,
            reference=args.reference,
        )
        plan(cfg)
    except (ValueError, FileNotFoundError) as err:
        print(f"rlhf-envs compare: error: {err}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        summary = run_comparison(
            cfg, args.out, command=" ".join(shlex.quote(a) for a in ["rlhf-envs", *sys.argv[1:]])
        )
    except RunsFailedError as err:
        print(f"rlhf-envs compare: error: {err}", file=sys.stderr)
        return 1
    print()
    print((args.out / "leaderboard.md").read_text())
    print(
        f"{summary['ran']} runs executed, {summary['skipped']} reused, in {time.perf_counter() - started:.0f} s; "
        f"results in {args.out}/ (leaderboard.md/.csv, curves.png, transcripts/, run.json)"
    )
    return 0
