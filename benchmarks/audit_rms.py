"""What the proxies of ``proxy_vs_gold.py`` reward: the reward-model audit of each.

Linear reward models trained on the first 100, 1,000 and 5,000 simulated pairs of
``FeedbackCollector("RLHF-Chat-v0", seed=0)``, by ``proxy_vs_gold.py``'s own
``train_proxies`` (same pairs, seed and procedure: the proxies whose PPO gold returns the
README reports), optionally checkpoints trained elsewhere (``--rm "NAME=PATH"``, repeatable:
a MiniLM model, a model trained on pairs and ratings),
and the gold rubric are audited (:mod:`rlhf_envs.rewards.audit`) on the same held-out
contexts and labels (seed 1, as proxy_vs_gold's 2,000 test pairs). The PPO gold return
each proxy led to is read from ``docs/proxy_vs_gold_summary.csv``, to set the audit's
ranking beside it.

Writes, in ``--out``: ``summary.md``, ``summary.csv`` (one row per model) and
``summary.png``; in ``--work``: the pairs, the checkpoints, each model's full audit
(``report.md``, ``audit.csv``, ``audit.png``) and ``run.json``.

    python benchmarks/audit_rms.py [--pairs 100,1000,5000] [--contexts 300] \\
        [--rm "MiniLM on 1000 pairs=PATH"] [--out docs/audit] [--work results/audit_rms]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.proxy_vs_gold import ENV_ID, train_proxies  # noqa: E402
from rlhf_agents.run_record import RunRecord, command_line  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PPO_RESULTS = ROOT / "docs" / "proxy_vs_gold_summary.csv"
COLUMNS = (
    "model",
    "held_out_accuracy",
    "accuracy_low",
    "accuracy_high",
    "accuracy_vs_gold",
    "ece",
    "length_spearman",
    "gold_length_spearman",
    "padded_copy",
    "keyword_stuffing",
    "repetition",
    "politeness_padding",
    "flattery",
    "forged_user_turn",
    "shuffled_words",
    "worst_failure_type",
    "worst_failure_rate",
    "ppo_gold_return",
    "audit_seconds",
)


def _ppo_gold_returns() -> dict[str, float]:
    """PPO's held-out gold return per run name, as the README reports it."""
    if not PPO_RESULTS.exists():
        return {}
    with open(PPO_RESULTS, newline="") as f:
        return {row["run"]: float(row["gold_return"]) for row in csv.DictReader(f)}


def summary_row(
    name: str, audit: Any, gold: Any, ppo: float | None, seconds: float
) -> dict[str, Any]:
    """One model's headline numbers (a row of ``summary.csv``)."""
    from rlhf_envs.rewards.audit import PADDED, PROBES

    acc = audit.get("calibration", "held_out_accuracy")
    gold_acc = gold.value("calibration", "held_out_accuracy")
    worst = audit.worst_failure_type()
    return {
        "model": name,
        "held_out_accuracy": acc.value,
        "accuracy_low": acc.low,
        "accuracy_high": acc.high,
        "accuracy_vs_gold": acc.value / gold_acc if acc.value and gold_acc else None,
        "ece": audit.value("calibration", "ece"),
        "length_spearman": audit.value("length", "spearman"),
        "gold_length_spearman": gold.value("length", "spearman"),
        "padded_copy": audit.value("length", PADDED),
        **{probe: audit.value("probes", probe) for probe in PROBES},
        "worst_failure_type": worst.measure if worst else None,
        "worst_failure_rate": worst.value if worst else None,
        "ppo_gold_return": ppo,
        "audit_seconds": round(seconds, 1),
    }


def _cell(value: Any, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return f"{value:.0%}" if percent else f"{value:.3f}"


def _worst(row: dict[str, Any]) -> str:
    if row["worst_failure_type"] is None:
        return "none"
    return f"{row['worst_failure_type']} {_cell(row['worst_failure_rate'], True)}"


def write_summary(
    rows: list[dict[str, Any]], audits: list[Any], out: Path, work: str, header: str
) -> None:
    """``summary.csv``, ``summary.md`` and ``summary.png`` in ``out`` (``work``: where the
    full audits are, as shown in the text)."""
    from rlhf_envs.rewards.audit import PROBES

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})
    shown = [
        "model",
        "acc",
        "ECE",
        "length rho",
        "padded",
        *PROBES,
        "worst failure type",
        "PPO gold return",
    ]
    lines = [
        "# Reward-model audit of the proxy-vs-gold reward models",
        "",
        header,
        "",
        "![audit summary](summary.png)",
        "",
        "| " + " | ".join(shown) + " |",
        "|" + "---|" * len(shown),
    ]
    for r in rows:
        cells = [
            r["model"],
            _cell(r["held_out_accuracy"]),
            _cell(r["ece"]),
            _cell(r["length_spearman"]),
            _cell(r["padded_copy"], True),
            *(_cell(r[p], True) for p in PROBES),
            _worst(r),
            _cell(r["ppo_gold_return"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "acc: accuracy on 2,000 held-out simulated labels (the gold's is the labels' ceiling). "
        "ECE: expected calibration error of P(a > b) = sigmoid(raw score difference), 10 bins "
        "(the gold's uses the annotators' own temperature and flip rate). Length rho: "
        "Spearman correlation of score and length differences over candidate pairs (the gold "
        "has one too: short no-progress distractors are bad). Padded and probes: share of "
        "contexts where the model scores the exploit strictly above the correct reply. Worst "
        "failure type: the distractor type that most often beats the correct reply. PPO gold "
        f"return: from `{PPO_RESULTS.relative_to(ROOT)}` (README, `make proxy-vs-gold`).",
        "",
        f"Each model's full audit (intervals, rubric components, reliability diagram) is "
        f"written to `{work}` (not kept in git; the command above regenerates it).",
    ]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    plot_summary(audits, out / "summary.png")


def plot_summary(audits: list[Any], path: Path) -> None:
    """Probes, failure types and reliability of every audited model in one figure."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    from rlhf_envs.rewards.audit import PADDED, PROBES
    from rlhf_envs.rewards.audit_report import plot_reliability

    fig, (probes, kinds, rel) = plt.subplots(1, 3, figsize=(17, 5))
    width = 0.8 / len(audits)
    panels = [
        (probes, {PADDED: "length", **dict.fromkeys(PROBES, "probes")}, "probes"),
        (
            kinds,
            {
                m.measure: "failure_types"
                for m in audits[0].measures
                if m.section == "failure_types"
            },
            "failure types",
        ),
    ]
    for ax, names, title in panels:
        y = np.arange(len(names))
        for k, audit in enumerate(audits):
            values = [audit.value(section, name) for name, section in names.items()]
            ax.barh(
                y + (k - (len(audits) - 1) / 2) * width,
                [np.nan if v is None else v for v in values],
                height=width,
                label=audit.name,
            )
        ax.set_yticks(y, list(names), fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of contexts where it beats the correct reply")
        ax.set_title(title)
    probes.legend(fontsize=7, loc="lower right")
    plot_reliability(rel, [(audit, audit.name) for audit in audits])
    fig.suptitle(f"{ENV_ID}: what the proxies reward (reward-model audit)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pairs", default="100,1000,5000", help="training-set sizes (default 100,1000,5000)"
    )
    parser.add_argument("--contexts", type=int, default=300, help="contexts (default 300)")
    parser.add_argument(
        "--label-pairs", type=int, default=2000, help="held-out labelled pairs (default 2000)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="training seed; held out: seed + 1 (default 0)"
    )
    parser.add_argument(
        "--rm",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another checkpoint folder to audit, with the name to show (repeatable)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "audit")
    parser.add_argument("--work", type=Path, default=ROOT / "results" / "audit_rms")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    import rlhf_envs  # noqa: F401
    from rlhf_envs.feedback.annotators import DEFAULT_PANEL, FeedbackCollector
    from rlhf_envs.rewards.audit import PROBES, AuditReport, audit_model, draw_contexts
    from rlhf_envs.rewards.audit_report import write_measures, write_report
    from rlhf_envs.rewards.learned import load_learned

    command = ["python", "benchmarks/audit_rms.py", *(argv if argv is not None else sys.argv[1:])]
    held_seed = args.seed + 1
    record = RunRecord(command_line(command), seeds={"seed": args.seed, "held_out_seed": held_seed})
    print(record.describe(), flush=True)
    started = time.perf_counter()
    sizes = sorted({int(n) for n in args.pairs.split(",") if n.strip()})

    print(f"Training linear proxies on {', '.join(map(str, sizes))} pairs (seed {args.seed})...")
    models: list[tuple[str, Any]] = [
        (f"RM on {n} pairs", model) for n, _, model in train_proxies(sizes, args.seed, args.work)
    ]
    train_seconds = time.perf_counter() - started
    for given in args.rm:
        name, sep, path = given.rpartition("=")
        if not sep or not name:
            parser.error(f"--rm takes NAME=PATH, got {given!r}")
        models.append((name, load_learned(path)))

    print(
        f"Drawing {args.contexts} held-out contexts and {args.label_pairs} labels "
        f"(seed {held_seed})..."
    )
    collector = FeedbackCollector(ENV_ID, seed=held_seed)
    contexts = draw_contexts((c.state for c in collector.contexts()), args.contexts, held_seed)
    labels = FeedbackCollector(ENV_ID, seed=held_seed).preferences(args.label_pairs, progress=False)
    # The gold's probabilities: the annotators' own model (the gold persona's temperature
    # and flip rate).
    annotator = next(a for a, _ in DEFAULT_PANEL if a.persona == "balanced")

    def audit(model: Any, name: str | None) -> tuple[Any, float]:
        begun = time.perf_counter()
        result = audit_model(
            model,
            contexts,
            collector.gold,
            labels,
            annotator.temperature,
            annotator.flip_rate,
            name=name,
            seed=held_seed,
        )
        return result, time.perf_counter() - begun

    gold, gold_seconds = audit(collector.gold, None)
    ppo = _ppo_gold_returns()
    audits, rows = [], []
    for name, model in [*models, ("gold rubric", None)]:
        result, seconds = (gold, gold_seconds) if model is None else audit(model, name)
        print(f"  audited {result.name} in {seconds:.1f} s")
        audits.append(result)
        rows.append(summary_row(name, result, gold, ppo.get(name), seconds))
        folder = args.work / result.name.replace(" ", "-")
        write_report(AuditReport(result, gold, {"command": f"`{record.command}`"}), folder)

    write_measures([m for a in audits for m in a.measures], args.work / "measures.csv")
    wall = time.perf_counter() - started
    header = (
        f"`{record.command}`: {ENV_ID}, {len(contexts)} held-out contexts and "
        f"{len(labels)} labels (seed {held_seed}); proxies trained on seed {args.seed}. "
        f"{record.describe().splitlines()[1]}. Took {wall:.0f} s "
        f"(training {train_seconds:.0f} s) with {args.threads} torch thread(s)."
    )
    work = args.work.resolve()
    shown_work = work.relative_to(ROOT) if work.is_relative_to(ROOT) else work
    write_summary(rows, audits, args.out, str(shown_work), header)
    record.write(
        args.work / "run.json",
        pairs=sizes,
        contexts=len(contexts),
        label_pairs=len(labels),
        extra_models=args.rm,
        rows=rows,
    )

    print(
        f"\n{'model':<18} {'acc':>6} {'/gold':>6} {'ECE':>6} {'len rho':>8} {'padded':>7} ", end=""
    )
    print(" ".join(f"{p[:10]:>10}" for p in PROBES), f" {'worst failure type':<26} PPO gold")
    for r in rows:
        worst = _worst(r)
        print(
            f"{r['model']:<18} {_cell(r['held_out_accuracy']):>6} "
            f"{_cell(r['accuracy_vs_gold']):>6} {_cell(r['ece']):>6} "
            f"{_cell(r['length_spearman']):>8} {_cell(r['padded_copy'], True):>7} ",
            " ".join(f"{_cell(r[p], True):>10}" for p in PROBES),
            f" {worst:<26} {_cell(r['ppo_gold_return']):>8}",
        )
    print(
        f"\nWrote {args.out}/summary.md, summary.csv, summary.png and {args.work} in {wall:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
