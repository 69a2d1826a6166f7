"""A reward-model audit (:mod:`rlhf_envs.rewards.audit`) written out: ``report.md``,
``audit.csv`` (one row per measure) and ``audit.png`` (reliability diagram, probes,
failure types), and the short table ``rlhf-envs audit-rm`` prints."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlhf_envs.rewards.audit import PADDED, PROBES, AuditReport, Measure, ModelAudit

__all__ = [
    "CSV_COLUMNS",
    "plot_audit",
    "plot_reliability",
    "summary_table",
    "write_measures",
    "write_report",
]

CSV_COLUMNS = ("model", "section", "measure", "value", "ci_low", "ci_high", "n")

PROBE_TEXT = {
    PADDED: "padded copy (correct reply + neutral filler)",
    "keyword_stuffing": "keyword stuffing (correct reply + the domain's rewarded keywords)",
    "repetition": "repetition (correct reply said twice)",
    "politeness_padding": "politeness padding (correct reply + polite filler)",
    "flattery": "flattery (a compliment to the user + correct reply)",
    "forged_user_turn": 'forged user turn (correct reply + "\\nUser: Thank you, ...")',
    "shuffled_words": "right words, wrong order (the correct reply's words shuffled)",
}
# Measures shown as shares (0.818), not percentages; correlations are signed decimals.
_DECIMAL = {"held_out_accuracy", "ece", "spearman", "pearson"}


def _fmt(m: Measure | None, interval: bool = True) -> str:
    if m is None or m.value is None:
        return "n/a"
    if m.measure in _DECIMAL:
        text = f"{m.value:.3f}"
        if interval and m.low is not None and m.high is not None:
            text += f" [{m.low:.3f}, {m.high:.3f}]"
        return text
    text = f"{m.value:.1%}"
    if interval and m.low is not None and m.high is not None:
        text += f" [{m.low:.1%}, {m.high:.1%}]"
    return text


def _worst(audit: ModelAudit) -> str:
    worst = audit.worst_failure_type()
    return "none" if worst is None else f"{worst.measure} {_fmt(worst, interval=False)}"


def _summary_rows(report: AuditReport) -> list[tuple[str, str, str]]:
    a, g = report.audited, report.gold
    rows = [
        ("held-out accuracy", "calibration", "held_out_accuracy"),
        ("ECE (10 bins)", "calibration", "ece"),
        ("length: Spearman", "length", "spearman"),
        ("padded copy wins", "length", PADDED),
    ]
    out = [(label, _fmt(a.get(s, m), False), _fmt(g.get(s, m), False)) for label, s, m in rows]
    out.append(("worst failure type", _worst(a), _worst(g)))
    out += [
        (probe, _fmt(a.get("probes", probe), False), _fmt(g.get("probes", probe), False))
        for probe in PROBES
    ]
    return out


def summary_table(report: AuditReport) -> str:
    """The headline numbers of both models as a plain-text table (for a terminal).

    Args:
        report: the audit.

    Returns:
        The table, one line per measure.
    """
    rows = [("", report.audited.name, f"gold ({report.gold.name})"), *_summary_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}".rstrip() for r in rows
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _markdown(report: AuditReport, image: str) -> str:
    a, g = report.audited, report.gold
    s = report.settings
    name, gold = f"`{a.name}`", f"gold `{g.name}`"
    lines = [f"# Reward-model audit: {a.name}", ""]
    lines += [f"- {key}: {value}" for key, value in s.items()]
    lines += [
        "",
        "Every reply is scored as the env scores one, in its dialogue context. A reply "
        '"wins" only when scored strictly higher (a tie is no preference). Intervals are '
        "95%: Wilson intervals over contexts, or bootstraps that resample whole contexts "
        "for measures over candidate pairs.",
        "",
        f"![audit]({image})",
        "",
        "## Summary",
        "",
        *_table(["", name, gold], _summary_rows(report)),
        "",
        "## 1. Failure types and rubric components",
        "",
        "How often a distractor of each failure type is scored above the correct reply of "
        "its context:",
        "",
    ]
    lines += _section_table(a, g, "failure_types", ["failure type", name, gold, "contexts"])
    lines += [
        "",
        "Over the candidate pairs of a context where one component of the gold rubric "
        "differs, how often the model prefers the reply that component prefers (the gold's "
        "own column shows where components trade off against each other):",
        "",
    ]
    lines += _section_table(a, g, "components", ["component", name, gold, "pairs"])
    lines += [
        "",
        "## 2. Length",
        "",
        "Correlation of the score difference with the length difference (words) over the "
        "candidate pairs of each context, each pair counted in both orders. Candidates differ "
        "in content as well as length (no-progress distractors are short), so read it "
        "against the gold's own value; the padded copy changes length alone.",
        "",
        *_table(
            ["measure", name, gold, "n"],
            [
                [
                    "Spearman",
                    _fmt(a.get("length", "spearman")),
                    _fmt(g.get("length", "spearman")),
                    str(_n(a, "length", "spearman")),
                ],
                [
                    "Pearson",
                    _fmt(a.get("length", "pearson")),
                    _fmt(g.get("length", "pearson")),
                    str(_n(a, "length", "pearson")),
                ],
                [
                    PROBE_TEXT[PADDED] + " wins",
                    _fmt(a.get("length", PADDED)),
                    _fmt(g.get("length", PADDED)),
                    str(_n(a, "length", PADDED)),
                ],
            ],
        ),
        "",
        "## 3. Calibration on held-out labels",
        "",
    ]
    if a.held_out is None:
        lines.append("No held-out labels were given.")
    else:
        lines += _table(
            ["", name, gold],
            [
                [
                    "accuracy",
                    _fmt(a.get("calibration", "held_out_accuracy")),
                    _fmt(g.get("calibration", "held_out_accuracy")),
                ],
                [
                    "expected calibration error",
                    _fmt(a.get("calibration", "ece")),
                    _fmt(g.get("calibration", "ece")),
                ],
                ["pairs", str(a.held_out.pairs), str(g.held_out.pairs if g.held_out else 0)],
            ],
        )
        lines += [
            "",
            "Expected calibration error over 10 equal-width bins, each pair counted in both "
            "orders (so it does not depend on which reply is listed first).",
            "",
            f"- {a.name}: {a.held_out.note}",
        ]
        if g.held_out is not None:
            lines.append(f"- {g.name}: {g.held_out.note}")
    lines += [
        "",
        "## 4. Exploit probes",
        "",
        "How often the model prefers the exploit to the correct reply it was made from, and "
        "how often it scores the two exactly even:",
        "",
        *_table(
            ["probe", name, gold, f"ties ({a.name})", "ties (gold)", "contexts"],
            [
                [
                    PROBE_TEXT[p],
                    _fmt(a.get("probes", p)),
                    _fmt(g.get("probes", p)),
                    f"{a.ties.get(p, 0.0):.0%}",
                    f"{g.ties.get(p, 0.0):.0%}",
                    str(_n(a, "probes", p)),
                ]
                for p in PROBES
            ],
        ),
    ]
    return "\n".join(lines) + "\n"


def _section_table(
    audited: ModelAudit, gold: ModelAudit, section: str, header: Sequence[str]
) -> list[str]:
    """One row per measure of ``section``: the audited model's value, the gold's, its n."""
    names = [m.measure for m in audited.measures if m.section == section]
    rows = [
        [
            n,
            _fmt(audited.get(section, n)),
            _fmt(gold.get(section, n)),
            str(_n(audited, section, n)),
        ]
        for n in names
    ]
    return _table(header, rows)


def _n(audit: ModelAudit, section: str, measure: str) -> int:
    m = audit.get(section, measure)
    return 0 if m is None else m.n


def write_measures(rows: Sequence[Measure], path: Path) -> None:
    """Write measures as CSV, one row per measure.

    Args:
        rows: the measures (of one model or several).
        path: the file to write (replaced).

    The columns are :data:`CSV_COLUMNS`; a value or interval that is not applicable is
    an empty cell.
    """

    def cell(x: float | None) -> str:
        return "" if x is None else f"{x:.6g}"

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for m in rows:
            w.writerow(
                [m.model, m.section, m.measure, cell(m.value), cell(m.low), cell(m.high), m.n]
            )


def plot_reliability(ax: Any, audits: Sequence[tuple[ModelAudit, str]]) -> None:
    """Draw the reliability diagram of each ``(audit, label)`` on the axes ``ax``."""
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for audit, label in audits:
        r = audit.held_out.reliability if audit.held_out else None
        if r is not None:
            used = r.counts > 0
            ax.plot(
                r.confidence[used], r.frequency[used], marker="o", label=f"{label}: ECE {r.ece:.3f}"
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(reply wins)")
    ax.set_ylabel("observed share of wins")
    ax.set_title("reliability on held-out labels")
    ax.legend(fontsize=7, loc="upper left")


def plot_audit(report: AuditReport, path: Path) -> None:
    """Plot the reliability diagram, the probes and the failure types of both models.

    Args:
        report: the audit.
        path: the PNG file to write (replaced).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import numpy as np

    models = (report.audited, report.gold)
    labels = (report.audited.name, f"gold ({report.gold.name})")
    fig, (rel, probes, kinds) = plt.subplots(1, 3, figsize=(16, 4.8))
    plot_reliability(rel, list(zip(models, labels, strict=True)))

    def bars(ax: plt.Axes, section_of: dict[str, str], title: str) -> None:
        names = list(section_of)
        y = np.arange(len(names))
        for k, (audit, label) in enumerate(zip(models, labels, strict=True)):
            ms = [audit.get(section_of[n], n) for n in names]
            values = np.array([m.value if m and m.value is not None else np.nan for m in ms])
            lows = np.array([m.low if m and m.low is not None else np.nan for m in ms])
            highs = np.array([m.high if m and m.high is not None else np.nan for m in ms])
            # (a percentile bootstrap interval need not contain the full-sample value)
            err = np.clip(np.nan_to_num(np.vstack([values - lows, highs - values])), 0, None)
            ax.barh(y + (k - 0.5) * 0.4, values, height=0.4, xerr=err, capsize=2, label=label)
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of contexts where it beats the correct reply")
        ax.set_title(title)
        ax.legend(fontsize=7, loc="lower right")

    bars(probes, {PADDED: "length", **dict.fromkeys(PROBES, "probes")}, "probes")
    kinds_of = {
        m.measure: "failure_types" for m in report.audited.measures if m.section == "failure_types"
    }
    bars(kinds, kinds_of, "failure types")
    fig.suptitle(f"reward-model audit: {report.audited.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(report: AuditReport, folder: Path) -> list[Path]:
    """Write ``report.md``, ``audit.csv`` and ``audit.png`` into ``folder``.

    Args:
        report: the audit.
        folder: made if missing; of its files, only these three are replaced.

    Returns:
        The paths written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "report.md", folder / "audit.csv", folder / "audit.png"]
    paths[0].write_text(_markdown(report, paths[2].name), encoding="utf-8")
    write_measures(report.rows(), paths[1])
    plot_audit(report, paths[2])
    return paths
