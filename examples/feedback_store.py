"""The feedback store from Python: what the labelling app does, scripted.

    python examples/feedback_store.py --db runs/feedback.sqlite --pairs 300

1. Open (or create) a feedback database and register two annotators.
2. Draw pairs of replies from RLHF-Chat-v0 rollouts with a ``PairSource`` (random pairs
   until a reward model is promoted, then the ones it is least sure about) and label them.
   Here a noisy simulated rater stands in for each person (it reads the rubric's margin
   that the source stores with each pair); in the app a human presses 1 or 2.
3. Retrain a reward model on the labels and promote it if it is not worse.
4. Export the labels as TRL preference JSON Lines (pseudonymous annotator ids only).

Then ``rlhf-envs label --db runs/feedback.sqlite`` serves the same database to people.
"""

from __future__ import annotations

import argparse
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import rlhf_envs  # noqa: F401  (registers RLHF-Chat-v0)
from rlhf_envs.feedback.agreement import annotator_agreement
from rlhf_envs.feedback.annotators import SimulatedAnnotator
from rlhf_envs.feedback.pairs import PairSource
from rlhf_envs.feedback.retraining import retrain_reward_model
from rlhf_envs.feedback.store import FeedbackStore


@dataclass
class Args:
    db: str = "runs/feedback.sqlite"
    rm_dir: str = "runs/feedback-rms"
    pairs: int = 300  # pairs per round; two rounds
    seed: int = 0


def main(args: Args) -> dict[str, float]:
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    with FeedbackStore(args.db) as store:
        rng = np.random.default_rng(args.seed)
        people = {
            store.annotator("Ada"): SimulatedAnnotator("ada", temperature=0.5, flip_rate=0.05),
            store.annotator("Grace"): SimulatedAnnotator("grace", temperature=1.0, flip_rate=0.1),
        }
        source = PairSource(store, "RLHF-Chat-v0", mode="active", overlap=0.2, seed=args.seed)
        results = []
        for _ in range(2):  # label, retrain, label more (now actively), retrain
            for annotator, person in people.items():
                for _ in range(args.pairs // 2):
                    comparison = source.next_for(
                        annotator
                    )  # a pair someone else wants a second label on, or new
                    margin = comparison.metadata["gold_margin"]  # rubric score of A minus B
                    choice = "a" if person.choose(margin, 0.0, rng) else "b"
                    store.add_label(f"ex-{secrets.token_hex(8)}", comparison.id, annotator, choice)
            results.append(retrain_reward_model(store, args.rm_dir, seed=args.seed))
            print(results[-1].summary())
        source.close()
        agreement = annotator_agreement(store.overlapping_labels())
        print(
            f"{store.counts()['labels']} labels; "
            f"{agreement.items} pairs labelled twice, kappa {agreement.kappa:.2f}"
        )
        written = store.export_preferences(Path(args.db).with_suffix(".jsonl"))
        print(f"exported {written} preference pairs to {Path(args.db).with_suffix('.jsonl')}")
        return {"accuracy": results[-1].accuracy, "kappa": agreement.kappa, "exported": written}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in vars(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    main(Args(**vars(parser.parse_args())))
