"""Reporting a comparison: what its results folder shows a reader (the files are listed in
:mod:`rlhf_agents.compare`): the leaderboard, the improvement matrix, the curves, the
transcripts and the run record, all from the finished runs' results.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from rlhf_agents import metrics
from rlhf_agents.comparison_plan import (
    FORMAT,
    METRICS,
    TRY_SEED_STRIDE,
    CompareConfig,
    Run,
    reward_slug,
    slug,
)
from rlhf_agents.run_record import RunRecord


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
            for k in range(1, cfg.tries + 1):
                row[f"pass@{k}"] = metrics.pass_at_k(m["success_tries"], k)
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
    cols += [f"pass@{k}" for k in range(1, cfg.tries + 1)]
    return cols + ["train_minutes", "deterministic"]


def pass_k_rows(
    cfg: CompareConfig, runs: list[Run], results: dict[Run, dict[str, Any]]
) -> list[dict[str, Any]]:
    """pass^k and pass@k per (env, reward spec, agent, task), and over all tasks
    (``task`` = ``"all"``); a task is a subflow, over the scenarios that drew it."""
    rows = []
    for (env_id, reward), by_agent in _by_group(runs).items():
        for name, agent_runs in by_agent.items():
            tries = np.concatenate(
                [np.array(results[r]["success"], dtype=bool) for r in agent_runs]
            )
            tasks = [t for r in agent_runs for t in results[r].get("tasks", [])]
            groups = {"all": np.ones(len(tries), dtype=bool)}
            if len(tasks) == len(tries):  # (results written before tasks were recorded lack them)
                for task in sorted(set(tasks)):
                    groups[task] = np.array([t == task for t in tasks])
            for task, chosen in groups.items():
                row: dict[str, Any] = {
                    "env": env_id,
                    "reward": reward or "default",
                    "agent": name,
                    "task": task,
                    "scenarios": int(chosen.sum()),
                }
                for k in range(1, cfg.tries + 1):
                    row[f"pass^{k}"] = metrics.pass_hat_k(tries[chosen], k)
                for k in range(1, cfg.tries + 1):
                    row[f"pass@{k}"] = metrics.pass_at_k(tries[chosen], k)
                rows.append(row)
    return rows


def markdown(cfg: CompareConfig, rows: list[dict[str, Any]]) -> str:
    """The leaderboard as Markdown: one table per env and reward spec."""
    passes = [f"pass^{k}" for k in range(1, cfg.tries + 1)] + [f"pass@{cfg.tries}"]
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
        f"{cfg.scenarios} held-out scenarios x {cfg.tries} tries per run, "
        f"{n_runs} seed(s) per agent{budget}. "
        "Intervals: 95% bootstrap over seeds and "
        "scenarios (IQM: stratified over seeds, as rliable). P(> ref): probability that the agent "
        "beats the reference agent's gold reward on a scenario (0.5 = no difference). "
        "pass^k: chance that k tries at the same scenario all succeed; pass@k: that at least "
        "one of k does (per task: pass_k.csv). "
        "return: the training reward; gold: the gold "
        "rubric's; satisfaction: the simulated user's, at the end."
    )
    return "\n".join(parts)


def _csv(rows: list[dict[str, Any]], cols: list[str]) -> str:
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
                mean, lo, hi = (np.array(v) for v in zip(*stats, strict=True))
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
        f"held-out curves ({cfg.curve_scenarios} scenarios per point, "
        f"mean over {len(cfg.seeds)} seeds, 95% CI)"
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
        path = folder / slug(run.env_id) / reward_slug(run.reward) / f"{slug(run.agent.name)}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        parts = [
            f"# {run.agent.name} on {run.env_id} "
            f"(reward {run.reward or 'default'}, seed {run.seed})\n"
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
    pass_rows = pass_k_rows(cfg, runs, results)
    pass_cols = ["env", "reward", "agent", "task", "scenarios"]
    pass_cols += [f"pass{s}{k}" for s in "^@" for k in range(1, cfg.tries + 1)]
    (out / "pass_k.csv").write_text(_csv(pass_rows, pass_cols))
    plot_curves(cfg, runs, results, out / "curves.png")
    write_transcripts(cfg, runs, results, out / "transcripts")
    return rows


def write_run_json(
    cfg: CompareConfig, out: Path, record: RunRecord, ran: int, skipped: int
) -> None:
    """``run.json``: the run record (command, seeds, versions, git revision, host,
    timings) and the settings of the latest invocation, and every invocation so far (a
    resumed comparison keeps the record of the earlier ones)."""
    path = out / "run.json"
    invocations = []
    if path.is_file():
        try:
            invocations = list(json.loads(path.read_text()).get("invocations", []))
        except (json.JSONDecodeError, AttributeError):
            invocations = []
    latest = record.to_json(
        agents=[a.to_json() for a in cfg.agents],
        envs=cfg.envs,
        rewards=cfg.rewards,
        steps=cfg.steps,
        tries=cfg.tries,
        episode_seed=f"scenario_seed + (try + 1) * {TRY_SEED_STRIDE}",
        deterministic=cfg.deterministic,
        curve_points=cfg.curve_points,
        curve_scenarios=cfg.curve_scenarios,
        n_envs=cfg.n_envs,
        jobs=cfg.jobs,
        reference=cfg.reference_agent,
    )
    invocations.append(
        {
            "command": latest["command"],
            "started": latest["started"],
            "wall_seconds": latest["wall_seconds"],
            "runs_executed": ran,
            "runs_reused": skipped,
            "git_revision": latest["git_revision"],
        }
    )
    info = {
        "format": FORMAT,
        **latest,
        "runs_executed": ran,
        "runs_reused": skipped,
        "invocations": invocations,
    }
    path.write_text(json.dumps(info, indent=2) + "\n")
