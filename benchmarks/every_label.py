"""Every label used: does training on ties and ratings raise held-out accuracy at the
same labelling budget?

Simulated annotators (the default panel of four rubric personas, each able to call a
close pair a tie by Davidson's model with ``nu = --tie-strength``) label pairs of
candidate replies on RLHF-Chat-v0 and rate single replies on 1-5 stars. One labelling
budget of ``B`` judgements is spent as ``B/2`` pair labels plus ``B/2`` ratings, and
three linear reward models are trained on it:

- ``pairs only``: the strict pairs (what ``retrain`` did before: ties and ratings unused);
- ``pairs + ties``: Davidson's Bradley-Terry with ties;
- ``pairs + ties + ratings``: the joint loss (ratings through ordinal thresholds).

Each is scored on the same 2,000 strict test pairs from other episodes (labelled by the
same panel), and the gain over ``pairs only`` is reported per test pair, paired, with a
95% bootstrap interval over test pairs pooled across seeds.

Writes ``results.csv`` (budget x seed x recipe), ``table.md`` and ``run.json`` to --out.

    python benchmarks/every_label.py [--budgets 200,1000] [--seeds 5] [--out docs/every_label]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from rlhf_agents.run_record import RunRecord, command_line

RECIPES = ("pairs only", "pairs + ties", "pairs + ties + ratings")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", default="200,1000", help="labels per budget (comma list)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tie-strength", type=float, default=1.0)
    parser.add_argument("--test-pairs", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("results/every_label"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # linear models: one thread is as fast, and leaves a core free
    from rlhf_envs.feedback.annotators import DEFAULT_PANEL, FeedbackCollector
    from rlhf_envs.rewards.learned import train_reward_model
    from rlhf_envs.statistics import bootstrap_ci

    budgets = sorted({int(b) for b in args.budgets.split(",") if b.strip()})
    record = RunRecord(
        command_line(["python", *sys.argv]), {"seeds": list(range(args.seeds)), "test_seed": 1000}
    )
    panel = [
        (type(a)(**{**a.__dict__, "tie_strength": args.tie_strength}), w) for a, w in DEFAULT_PANEL
    ]
    test = [
        p
        for p in FeedbackCollector("RLHF-Chat-v0", panel, seed=1000).preferences(
            int(args.test_pairs * 1.5), progress=False
        )
        if not p.tie
    ][: args.test_pairs]
    prompts = [p.prompt for p in test]
    rows: list[dict] = []
    correct: dict[tuple[int, str], list[np.ndarray]] = {}
    for budget in budgets:
        for seed in range(args.seeds):
            collector = FeedbackCollector("RLHF-Chat-v0", panel, seed=seed)
            pairs = collector.preferences(budget // 2, progress=False)
            ratings = collector.ratings(budget - budget // 2, "stars", progress=False)
            data = {
                RECIPES[0]: [p for p in pairs if not p.tie],
                RECIPES[1]: pairs,
                RECIPES[2]: [*pairs, *ratings],
            }
            for recipe, records in data.items():
                started = time.perf_counter()
                model = train_reward_model(records, "linear", seed=seed, progress=False).model
                margins = model.score_texts(
                    prompts, [p.chosen for p in test], normalise=False
                ) - model.score_texts(prompts, [p.rejected for p in test], normalise=False)
                ok = (margins > 0) + 0.5 * (margins == 0)
                correct.setdefault((budget, recipe), []).append(ok)
                rows.append(
                    {
                        "budget": budget,
                        "seed": seed,
                        "recipe": recipe,
                        "pairs": sum(not p.tie for p in pairs),
                        "ties": sum(p.tie for p in pairs) if recipe != RECIPES[0] else 0,
                        "ratings": len(ratings) if recipe == RECIPES[2] else 0,
                        "accuracy": round(float(ok.mean()), 4),
                        "seconds": round(time.perf_counter() - started, 2),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"Linear reward models, {args.seeds} seeds per budget, accuracy on {len(test)} strict "
        "test pairs; gain over pairs only is paired per test pair (95% bootstrap CI).",
        "",
        "| labels (pairs + ratings) | recipe | trained on (mean per seed) | accuracy [95% CI] "
        "| gain over pairs only [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for budget in budgets:
        base = np.concatenate(correct[(budget, RECIPES[0])])
        for recipe in RECIPES:
            ok = np.concatenate(correct[(budget, recipe)])
            mean, low, high = bootstrap_ci(ok)
            mine = [r for r in rows if r["budget"] == budget and r["recipe"] == recipe]
            used = (
                f"{np.mean([r['pairs'] for r in mine]):.0f} pairs, "
                f"{np.mean([r['ties'] for r in mine]):.0f} ties, "
                f"{np.mean([r['ratings'] for r in mine]):.0f} ratings"
            )
            gain = (
                ""
                if recipe == RECIPES[0]
                else "{:+.3f} [{:+.3f}, {:+.3f}]".format(*bootstrap_ci(ok - base))
            )
            lines.append(
                f"| {budget // 2} + {budget - budget // 2} | {recipe} | {used} | "
                f"{mean:.3f} [{low:.3f}, {high:.3f}] | {gain} |"
            )
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    (args.out / "run.json").write_text(
        json.dumps(
            record.to_json(budgets=budgets, tie_strength=args.tie_strength),
            indent=2,
        )
        + "\n"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
