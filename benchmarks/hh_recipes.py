"""Reward-model recipes on real human preferences: Anthropic HH-RLHF (harmless-base).

The 1,794 usable pairs of ``../shared/data/hh-rlhf/harmless-base-1800.jsonl`` are split
once, by prompt (seed 0): 300 test pairs, used only at the end; 300 validation pairs, on
which every recipe trained on the remaining ~1,194 pairs is compared; the rest for
training. Then the chosen default and the previous default are both trained on
train + validation and scored once on the test pairs, and the paired gain (same test
pairs) is reported with a 95% bootstrap interval. The linear model's out-of-fold
accuracy over all pairs (10 folds by prompt) gives a less noisy figure for it.

Each recipe's margins (chosen minus rejected, normalised score) are cached in
``--out/scores/<recipe>.json`` so a run can be resumed; ensembles are computed from the
cached members (mean of normalised scores; the members' spread is the uncertainty).
Times are reported beside CartPole-v1's random steps/s measured in the same process,
since machines differ up to 4x.

    python benchmarks/hh_recipes.py --stage val [--recipes a,b] [--threads 2]
    python benchmarks/hh_recipes.py --stage test --default RECIPE
    python benchmarks/hh_recipes.py --stage table
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hh-rlhf"
DATA_FILE = DATA / "harmless-base-1800.jsonl"

MINILM_NEW = {
    "pooling": "mean",
    "context_tokens": 0,
    "max_length": 96,
    "lr": 3e-5,
    "epochs": 3,
    "warmup": 0.1,
    "patience": 3,
}
RECIPES: dict[str, dict[str, Any]] = {
    "linear": {"model": "linear"},
    "minilm-previous": {"model": "minilm", "max_length": 128},  # the README's 0.605 recipe
    "minilm-mean-reply": {"model": "minilm", **MINILM_NEW},
    "minilm-mean-reply-2ep": {"model": "minilm", **MINILM_NEW, "epochs": 2},
    "minilm-mean-ctx32": {"model": "minilm", **MINILM_NEW, "context_tokens": 32, "max_length": 128},
    "minilm-mean-reply-embeddings": {"model": "minilm", **MINILM_NEW, "train_embeddings": True},
    "minilm-mean-reply-smooth0.1": {"model": "minilm", **MINILM_NEW, "label_smoothing": 0.1},
    "minilm-cls-reply": {"model": "minilm", **MINILM_NEW, "pooling": "cls"},
}
ENSEMBLES = {
    "ensemble: minilm-mean-reply + linear": ("minilm-mean-reply", "linear"),
    "ensemble: minilm-mean-reply-smooth0.1 + linear": ("minilm-mean-reply-smooth0.1", "linear"),
}


def split(pairs: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test, validation and training indices: whole prompts to one side, seed 0."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(p.prompt, []).append(i)
    order = list(groups.values())
    np.random.default_rng(0).shuffle(order)
    test: list[int] = []
    val: list[int] = []
    train: list[int] = []
    for members in order:
        (test if len(test) < 300 else val if len(val) < 300 else train).extend(members)
    return np.array(test), np.array(val), np.array(train)


def margins(model: Any, pairs: list) -> np.ndarray:
    prompts = [p.prompt for p in pairs]
    chosen = model.score_texts(prompts, [p.chosen for p in pairs])
    return chosen - model.score_texts(prompts, [p.rejected for p in pairs])


def run_recipe(name: str, train: list, evaluate: list, seed: int = 0) -> dict[str, Any]:
    from rlhf_envs.rewards.learned import train_reward_model

    settings = dict(RECIPES[name])
    started = time.perf_counter()
    # Validation inside training (early stopping) takes 10% of the training pairs.
    result = train_reward_model(train, settings.pop("model"), seed=seed, progress=False, **settings)
    seconds = time.perf_counter() - started
    m = margins(result.model, evaluate)
    return {
        "recipe": name,
        "margins": m.round(6).tolist(),
        "train_seconds": round(seconds, 1),
        "epochs_run": result.metrics["epochs_run"],
        "best_epoch": result.metrics["best_epoch"],
    }


def accuracy(m: np.ndarray) -> np.ndarray:
    return (m > 0) + 0.5 * (m == 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=("val", "test", "oof", "table"), required=True)
    parser.add_argument("--recipes", help="comma list (default: all) for --stage val")
    parser.add_argument("--default", default="minilm-mean-reply", help="recipe for --stage test")
    parser.add_argument("--previous", default="minilm-previous")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/hh_recipes"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    import warnings

    from rlhf_envs.preference_data.formats import read_preferences
    from rlhf_envs.statistics import bootstrap_ci

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from suite import steps_per_second

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 6 pairs with an empty reply are skipped, as counted
        pairs = list(read_preferences(DATA_FILE, skip_invalid=True))
    test, val, train = split(pairs)
    take = lambda idx: [pairs[i] for i in idx]  # noqa: E731
    scores = args.out / "scores"
    scores.mkdir(parents=True, exist_ok=True)
    cartpole = steps_per_second("CartPole-v1", 50_000)
    if args.stage == "val":
        for name in args.recipes.split(",") if args.recipes else RECIPES:
            path = scores / f"val-{name}.json"
            if path.exists():
                continue
            row = run_recipe(name, take(train), take(val))
            row["cartpole_steps_per_s"] = round(cartpole)
            path.write_text(json.dumps(row) + "\n")
            print(name, accuracy(np.array(row["margins"])).mean(), row["train_seconds"], flush=True)
    elif args.stage == "test":

        def test_margins(name: str) -> np.ndarray:
            if name in ENSEMBLES:
                return np.mean([test_margins(member) for member in ENSEMBLES[name]], axis=0)
            path = scores / f"test-{name}.json"
            if not path.exists():
                row = run_recipe(name, take(np.concatenate([train, val])), take(test))
                row["cartpole_steps_per_s"] = round(cartpole)
                path.write_text(json.dumps(row) + "\n")
            return np.array(json.loads(path.read_text())["margins"])

        new, old = (accuracy(test_margins(n)) for n in (args.default, args.previous))
        result = {
            "default": args.default,
            "previous": args.previous,
            "default_accuracy": bootstrap_ci(new),
            "previous_accuracy": bootstrap_ci(old),
            "paired_gain": bootstrap_ci(new - old),
            "test_pairs": len(test),
        }
        (args.out / "test.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result))
    elif args.stage == "oof":
        from rlhf_envs.rewards.learned import train_reward_model

        groups = {p.prompt: k for k, p in enumerate(pairs)}
        ids = np.array([groups[p.prompt] for p in pairs])
        fold = np.random.default_rng(1).permutation(ids.max() + 1)[ids] % 10
        ok = np.zeros(len(pairs))
        for f in range(10):
            model = train_reward_model(
                take(np.flatnonzero(fold != f)), "linear", progress=False
            ).model
            ok[fold == f] = accuracy(margins(model, take(np.flatnonzero(fold == f))))
        (args.out / "linear_oof.json").write_text(
            json.dumps({"out_of_fold_accuracy": bootstrap_ci(ok), "pairs": len(pairs), "folds": 10})
            + "\n"
        )
    write_table(args.out, len(val), bootstrap_ci)
    return 0


def write_table(out: Path, n_val: int, bootstrap_ci: Any) -> None:
    rows = {
        p.stem[4:]: json.loads(p.read_text()) for p in sorted((out / "scores").glob("val-*.json"))
    }
    if not rows:
        return
    base = accuracy(np.array(rows["linear"]["margins"])) if "linear" in rows else None
    lines = [
        f"Validation pairs: {n_val} (HH-RLHF harmless-base, split by prompt); trained on the "
        "other non-test pairs. Gain is paired against the linear model on the same pairs.",
        "",
        "| recipe | settings | val accuracy [95% CI] | gain vs linear [95% CI] | train minutes "
        "| CartPole steps/s beside it |",
        "|---|---|---|---|---|---|",
    ]

    def add(name: str, m: np.ndarray, settings: str, minutes: str, cartpole: str) -> None:
        ok = accuracy(m)
        mean, low, high = bootstrap_ci(ok)
        gain = (
            ""
            if base is None or name == "linear"
            else "{:+.3f} [{:+.3f}, {:+.3f}]".format(*bootstrap_ci(ok - base))
        )
        cells = [name, settings, f"{mean:.3f} [{low:.3f}, {high:.3f}]", gain, minutes, cartpole]
        lines.append("| " + " | ".join(cells) + " |")

    for name, row in rows.items():
        settings = ", ".join(f"{k}={v}" for k, v in RECIPES.get(name, {}).items() if k != "model")
        add(
            name,
            np.array(row["margins"]),
            settings or "defaults",
            f"{row['train_seconds'] / 60:.1f} ({row['epochs_run']} epochs)",
            str(row.get("cartpole_steps_per_s", "")),
        )
    for name, members in ENSEMBLES.items():
        if all(m in rows for m in members):
            stacked = np.array([rows[m]["margins"] for m in members])
            m = stacked.mean(axis=0)
            # The members' disagreement is the ensemble's uncertainty: where they disagree
            # on which reply is better, its verdict deserves less trust.
            agree = np.all(np.sign(stacked) == np.sign(stacked[0]), axis=0)
            note = (
                f"members agree on {agree.mean():.0%} of pairs: accuracy "
                f"{accuracy(m[agree]).mean():.3f} there, {accuracy(m[~agree]).mean():.3f} "
                "where they disagree"
            )
            add(name, m, note, "sum of members", "")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
