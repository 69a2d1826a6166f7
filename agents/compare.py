"""The comparison harness: agents x envs x reward specs x seeds, one leaderboard.

``rlhf-envs compare`` trains every learning agent on every env, reward spec and seed with
the same step budget, evaluates every agent on the same held-out scenarios, and writes a
results folder::

    leaderboard.md, leaderboard.csv   per agent, env and reward spec: mean return, gold
                                      reward, success and satisfaction with 95% bootstrap
                                      intervals; IQM of gold (rliable); P(improvement)
                                      over a reference agent; pass^1..pass^k, pass@k
    pass_k.csv                        pass^k and pass@k per agent and task, and overall
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

Evaluation: held-out scenario ``j`` is drawn from ``scenario_seed = 1_000_000 + j``
(:func:`rlhf_agents.evaluation.held_out_seeds`) and played ``tries`` times with different
episode seeds (the user's wording and the order of proposals change; the task does not)
through ``reset(options={"scenario_seed": ...})``. Trained agents act greedily unless
``--stochastic`` (the leaderboard says which).

This module is the command line and the harness's public face; the work is done by
:mod:`rlhf_agents.comparison_plan` (settings, runs, resuming),
:mod:`rlhf_agents.comparison_execution` (training and evaluating the runs),
:mod:`rlhf_agents.comparison_report` (leaderboards, curves, transcripts, run.json) and
:mod:`rlhf_agents.run_record` (what makes the numbers reproducible).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rlhf_agents.comparison_execution import (
    LearningCurve,
    RunsFailedError,
    execute,
    play,
    run_comparison,
)
from rlhf_agents.comparison_plan import (
    FORMAT,
    METRICS,
    TRY_SEED_STRIDE,
    CompareConfig,
    Run,
    episode_seed,
    load_finished,
    plan,
    previous_training,
    reward_slug,
    scenario_seeds,
)
from rlhf_agents.comparison_report import (
    columns,
    improvement_csv,
    leaderboard_rows,
    markdown,
    plot_curves,
    write_outputs,
    write_run_json,
    write_transcripts,
)
from rlhf_agents.evaluation import HELD_OUT_SEED_BASE as SCENARIO_SEED_BASE
from rlhf_agents.registry import resolve_agents
from rlhf_agents.run_record import command_line
from rlhf_agents.run_record import package_versions as versions

__all__ = [
    "FORMAT",
    "METRICS",
    "SCENARIO_SEED_BASE",
    "TRY_SEED_STRIDE",
    "CompareConfig",
    "LearningCurve",
    "Run",
    "RunsFailedError",
    "add_command",
    "columns",
    "episode_seed",
    "execute",
    "improvement_csv",
    "leaderboard_rows",
    "load_finished",
    "markdown",
    "plan",
    "play",
    "plot_curves",
    "previous_training",
    "reward_slug",
    "run_command",
    "run_comparison",
    "scenario_seeds",
    "versions",
    "write_outputs",
    "write_run_json",
    "write_transcripts",
]


def _int_list(text: str) -> list[int]:
    """``"3"`` -> [0, 1, 2]; ``"0,5,7"`` -> [0, 5, 7]."""
    try:
        if "," in text:
            return [int(x) for x in text.split(",") if x.strip()]
        return list(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count (3) or a comma-separated list of seeds (0,5,7), got {text!r}"
        ) from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rlhf-envs compare``."""
    p = subparsers.add_parser(
        "compare",
        help="train and evaluate agents x envs x seeds; "
        "write a leaderboard, curves and transcripts",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--agents",
        type=_names,
        default=_names("random,expert,ppo,a2c,dqn"),
        help="comma-separated agent names (built in: random, expert, best-of-n, ppo, ppo-mlp, "
        "a2c, dqn, maskable-ppo, recurrent-ppo; language models on the text ids: hf:PATH "
        "(a local causal LM folder), openai:MODEL@URL (an OpenAI-compatible endpoint, key "
        "in OPENAI_API_KEY); more from --config)",
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
        "--tries", type=int, default=4, help="tries per scenario, for pass^k and pass@k (default 4)"
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
        help="trained agents sample actions (default: greedy); "
        "DQN is then epsilon-greedy at its final epsilon",
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
        summary = run_comparison(cfg, args.out, command=command_line(["rlhf-envs", *sys.argv[1:]]))
    except RunsFailedError as err:
        print(f"rlhf-envs compare: error: {err}", file=sys.stderr)
        return 1
    print()
    print((args.out / "leaderboard.md").read_text())
    print(
        f"{summary['ran']} runs executed, {summary['skipped']} reused, "
        f"in {time.perf_counter() - started:.0f} s; "
        f"results in {args.out}/ (leaderboard.md/.csv, curves.png, transcripts/, run.json)"
    )
    return 0
