"""Leaderboard tables from evaluations: Markdown for people, CSV for tools."""

from __future__ import annotations

import csv
import io
from typing import Sequence

from agents.evaluation import Evaluation

COLUMNS = ("agent", "return", "return_lo", "return_hi", "gold", "gold_lo", "gold_hi",
           "success", "success_lo", "success_hi", "satisfaction", "episodes")


def rows(evaluations: Sequence[Evaluation]) -> list[dict[str, float | str]]:
    """One row per agent: means with 95% bootstrap intervals, best gold reward first."""
    out = []
    for ev in evaluations:
        row: dict[str, float | str] = {"agent": ev.agent}
        for metric, key in (("ret", "return"), ("gold", "gold"), ("success", "success")):
            mean, lo, hi = ev.mean_ci(metric)
            row.update({key: mean, f"{key}_lo": lo, f"{key}_hi": hi})
        row["satisfaction"] = float(ev.values("satisfaction").mean())
        row["episodes"] = len(ev.episodes)
        out.append(row)
    return sorted(out, key=lambda r: -float(r["gold"]))


def markdown(evaluations: Sequence[Evaluation]) -> str:
    """The leaderboard as a Markdown table."""
    lines = [
        "| agent | mean return (95% CI) | mean gold reward (95% CI) | success rate (95% CI) | satisfaction | episodes |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows(evaluations):
        lines.append(
            f"| {r['agent']} | {r['return']:.2f} [{r['return_lo']:.2f}, {r['return_hi']:.2f}] "
            f"| {r['gold']:.2f} [{r['gold_lo']:.2f}, {r['gold_hi']:.2f}] "
            f"| {r['success']:.0%} [{r['success_lo']:.0%}, {r['success_hi']:.0%}] "
            f"| {r['satisfaction']:.2f} | {r['episodes']} |"
        )
    return "\n".join(lines)


def to_csv(evaluations: Sequence[Evaluation]) -> str:
    """The leaderboard as CSV text."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for r in rows(evaluations):
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buffer.getvalue()
