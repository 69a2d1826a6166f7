"""PPO throughput with the LM policy on RLHF-ChatTokens-v0: shared-prefix forward
passes against one pass per window, in the same process.

A PPO minibatch holds many tokens of the same reply, whose windows are prefixes of one
another; :class:`~rlhf_agents.lm_policy.LMActorCriticPolicy` runs each such group once
(``share_prefixes=True``, the default). This prints environment steps per second of
``PPO.learn`` (rollouts and updates) both ways and their ratio, for a few batch sizes,
after the run record (command, seed, versions, git revision).

Run::

    python benchmarks/lm_policy_speed.py [--timesteps 4096] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from stable_baselines3 import PPO

import rlhf_envs  # noqa: F401  (registers the ids)
from rlhf_agents.lm_policy import LMActorCriticPolicy
from rlhf_agents.run_record import RunRecord, command_line
from rlhf_envs.lm.build import default_lm_path
from rlhf_envs.sb3 import make_sb3_vec_env


def steps_per_second(
    lm: str, share: bool, batch_size: int, n_steps: int, timesteps: int, seed: int = 0
) -> float:
    venv = make_sb3_vec_env(
        "RLHF-ChatTokens-v0", n_envs=4, seed=seed, env_kwargs={"lm": lm, "kl_coef": 0.1}
    )
    model = PPO(
        LMActorCriticPolicy,
        venv,
        n_steps=n_steps,
        batch_size=batch_size,
        n_epochs=2,
        gamma=1.0,
        learning_rate=1e-4,
        seed=seed,
        policy_kwargs={"lm": lm, "share_prefixes": share},
    )
    start = time.perf_counter()
    model.learn(timesteps)
    return model.num_timesteps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lm", help="reference LM folder (default: the project's, built if needed)"
    )
    parser.add_argument("--timesteps", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    record = RunRecord(
        command_line(["python", "benchmarks/lm_policy_speed.py", *sys.argv[1:]]),
        seeds={"seed": 0},
    )
    print(record.describe())
    lm = args.lm or str(default_lm_path())
    print(
        f"PPO.learn({args.timesteps}) on RLHF-ChatTokens-v0, 4 envs, 2 epochs, "
        f"{args.threads} threads"
    )
    for n_steps, batch_size in [(256, 128), (512, 512)]:
        each = steps_per_second(lm, False, batch_size, n_steps, args.timesteps)
        shared = steps_per_second(lm, True, batch_size, n_steps, args.timesteps)
        print(
            f"n_steps {n_steps:>3} x 4 envs, batch {batch_size:>3}: "
            f"one pass per window {each:6.1f} steps/s, "
            f"shared prefixes {shared:6.1f} steps/s, ratio {shared / each:.2f}",
            flush=True,
        )
    print(f"{record.wall_seconds:.0f} s in all")


if __name__ == "__main__":
    main()
