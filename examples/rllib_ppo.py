"""Train RLlib's PPO on RLHF-Chat-v0 with Ray: env runners in parallel, the env unchanged.

RLlib's new API stack builds each env runner's envs with ``gymnasium.make_vec``; with
``--vectorize vector_entry_point`` (the default here) that is the suite's batched vector
env, so each runner scores its sub-envs' replies in one reward-model call. The ``Dict``
observation goes through RLlib's ``FlattenObservations`` connector.

Locally (Ray starts on this machine)::

    pip install -e '.[rllib]'      # ray[rllib]; see README "Training on a Ray cluster"
    python examples/rllib_ppo.py --iterations 5 --env-runners 2

On a cluster, start Ray there and run the same script with ``--address auto``; a learned
reward model is named like any reward spec (``--reward learned:runs/rm``); see the README
for how its checkpoint reaches the workers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="RLHF-Chat-v0", help="registered env id")
    parser.add_argument(
        "--reward", default="rubric", help="reward spec (e.g. rubric:warm, learned:runs/rm)"
    )
    parser.add_argument("--iterations", type=int, default=5, help="PPO training iterations")
    parser.add_argument("--env-runners", type=int, default=2, help="Ray env-runner actors")
    parser.add_argument("--envs-per-runner", type=int, default=4, help="sub-envs per env runner")
    parser.add_argument(
        "--vectorize",
        default="vector_entry_point",
        choices=("vector_entry_point", "sync"),
        help="how runners build their envs: the batched vector env or Gymnasium's SyncVectorEnv",
    )
    parser.add_argument(
        "--batch", type=int, default=1024, help="train batch size per learner (env steps)"
    )
    parser.add_argument(
        "--address", default=None, help="Ray cluster address ('auto' on a cluster; default: local)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the per-iteration results as JSON here")
    return parser.parse_args(argv)


def absolute_reward_spec(spec: str) -> str:
    """The reward spec with any checkpoint path made absolute (env runners may start in
    another working directory)."""
    from rlhf_envs.rewards import make_reward_model

    canonical = make_reward_model(spec).spec
    return canonical if isinstance(canonical, str) else spec


def main(argv=None) -> int:
    args = parse_args(argv)
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.connectors.env_to_module import FlattenObservations

    # Each runner is its own process: one torch thread each keeps 2 cores from thrashing.
    ray.init(
        address=args.address,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
    )
    config = (
        PPOConfig()
        .environment(
            f"rlhf_envs:{args.env}", env_config={"reward": absolute_reward_spec(args.reward)}
        )
        .env_runners(
            num_env_runners=args.env_runners,
            num_envs_per_env_runner=args.envs_per_runner,
            gym_env_vectorize_mode=args.vectorize,
            env_to_module_connector=lambda env, spaces, device: FlattenObservations(),
        )
        .training(
            train_batch_size_per_learner=args.batch,
            minibatch_size=min(256, args.batch),
            num_epochs=4,
            lr=3e-4,
            gamma=0.95,
            lambda_=0.9,
            entropy_coeff=0.01,
        )
        .debugging(seed=args.seed)
    )
    algo = config.build_algo()
    history = []
    try:
        for i in range(args.iterations):
            start = time.perf_counter()
            result = algo.train()
            runners = result["env_runners"]
            row = {
                "iteration": i + 1,
                "env_steps": int(runners.get("num_env_steps_sampled_lifetime", 0)),
                "episodes": int(runners.get("num_episodes_lifetime", 0)),
                "episode_return_mean": float(runners.get("episode_return_mean", math.nan)),
                "episode_len_mean": float(runners.get("episode_len_mean", math.nan)),
                "seconds": round(time.perf_counter() - start, 2),
            }
            history.append(row)
            print(
                f"iteration {row['iteration']}: {row['env_steps']} env steps, "
                f"{row['episodes']} episodes, "
                f"return {row['episode_return_mean']:.2f}, length {row['episode_len_mean']:.1f}, "
                f"{row['seconds']} s",
                flush=True,
            )
    finally:
        algo.stop()
        ray.shutdown()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "history": history}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
