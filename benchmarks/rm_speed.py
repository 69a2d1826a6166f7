"""Learned reward-model scoring speed: pairs per second, and batched vs one-at-a-time.

For the linear and the MiniLM reward model: how many preference pairs (two replies in
context) each scores per second, batched 64 at a time; and the time to score the turns
of 16 sub-envs in one call versus 16 calls of one (the ratio is what batching across a
vector env's sub-envs saves). Both timings of a ratio are taken in this process, on the
same texts. Untrained models are timed unless checkpoints are given: speed does not
depend on the weights.

    python benchmarks/rm_speed.py [--threads 1] [--linear runs/rm] [--minilm runs/rm-minilm]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np
import torch


def _best_of(fn, repeats: int) -> float:
    """Fastest of ``repeats`` timings (seconds): the least disturbed by other processes."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--pairs", type=int, default=512, help="pairs timed per model (default 512)")
    parser.add_argument("--linear", help="a linear checkpoint to time instead of an untrained one")
    parser.add_argument("--minilm", help="a MiniLM checkpoint to time instead of an untrained one")
    parser.add_argument("--max-length", type=int, default=256, help="MiniLM input tokens (default 256)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    import gymnasium as gym

    import rlhf_envs  # noqa: F401
    from rlhf_envs.feedback.annotators import FeedbackCollector
    from rlhf_envs.rewards.learned import LearnedRewardModel
    from rlhf_envs.rewards.learned.linear import LinearScorer
    from rlhf_envs.rewards.learned.transformer import TransformerScorer
    from rlhf_envs.rewards.protocol import Exchange

    pairs = FeedbackCollector("RLHF-Chat-v0", seed=7).preferences(args.pairs, progress=False)
    # The turns of 16 sub-envs: 16 envs, each a few expert steps into its own episode.
    envs = [gym.make("RLHF-Chat-v0").unwrapped for _ in range(16)]
    exchanges = []
    for i, env in enumerate(envs):
        env.reset(seed=i)
        for _ in range(i % 4):
            _, _, terminated, _, _ = env.step(env.expert_action())
            if terminated:  # a short task already done: score its opening turn instead
                env.reset(seed=i)
                break
        state = env.state
        exchanges.append(Exchange(state.scenario, state.history, env.interface.candidates[0].text, state))

    models = {
        "linear": LearnedRewardModel.load(args.linear) if args.linear else LearnedRewardModel(LinearScorer()),
        "minilm": LearnedRewardModel.load(args.minilm) if args.minilm
        else LearnedRewardModel(TransformerScorer.from_pretrained("minilm", 1, args.max_length)),
    }
    print(f"torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}")
    print(f"{'model':<8} {'pairs/s':>10} {'16 turns batched':>18} {'16 one at a time':>18} {'ratio':>7}")
    for name, model in models.items():
        prompts = [p.prompt for p in pairs]
        texts = [p.chosen for p in pairs] + [p.rejected for p in pairs]
        featurizer = getattr(model.scorer, "featurizer", None)

        def fresh(featurizer=featurizer):
            # The linear model caches features per text; every turn of a real run is new.
            if featurizer is not None:
                featurizer._cache.clear()

        model.score_texts(prompts[:8] * 2, texts[:16])  # warm-up (first-call allocations)
        fresh()
        t = time.perf_counter()
        model.score_texts(prompts * 2, texts)
        pairs_per_s = len(pairs) / (time.perf_counter() - t)

        def batched(model=model, fresh=fresh):
            fresh()
            model.score(exchanges)

        def singly(model=model, fresh=fresh):
            fresh()
            for ex in exchanges:
                model.score([ex])

        repeats = 20 if name == "linear" else 5
        t_batch, t_single = _best_of(batched, repeats), _best_of(singly, repeats)
        print(f"{name:<8} {pairs_per_s:>10,.0f} {t_batch * 1e3:>15.2f} ms {t_single * 1e3:>15.2f} ms "
              f"{t_single / t_batch:>6.1f}x")
    print("ratio: one-at-a-time time / batched time for the same 16 turns (higher = batching saves more)")

    # End to end: 16 conversations stepped by the native vector env (one reward call per
    # step) and by Gymnasium's SyncVectorEnv (16 calls per step), same seeds and actions.
    print(f"\n{'model':<8} {'native vector env':>20} {'SyncVectorEnv':>16} {'ratio':>7}   (16 envs, turns/s)")
    for name, model in models.items():
        steps = 40 if name == "linear" else 10
        best = {"vector_entry_point": 0.0, "sync": 0.0}
        for _ in range(2):  # alternate the two, keep each one's best: fair to both
            for mode in best:
                vec = gym.make_vec("RLHF-Chat-v0", num_envs=16, vectorization_mode=mode, reward=model)
                vec.reset(seed=0)
                rng = np.random.default_rng(0)
                for _ in range(3):  # warm the encoders' caches
                    vec.step(rng.integers(6, size=16))
                t = time.perf_counter()
                for _ in range(steps):
                    vec.step(rng.integers(6, size=16))
                best[mode] = max(best[mode], 16 * steps / (time.perf_counter() - t))
                vec.close()
        native, sync = best["vector_entry_point"], best["sync"]
        print(f"{name:<8} {native:>20,.0f} {sync:>16,.0f} {native / sync:>6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
