"""Env speed: raw steps per second, and PPO training fps as a ratio to CartPole-v1.

Every figure is measured in this process, next to its reference, so the ratios hold on
any machine. Torch is held to one thread (the suite's default in parallel runs).

    python benchmarks/env_speed.py [--steps 20000] [--ppo-steps 8192]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import rlhf_envs
from agents.candidate_policy import CandidateActorCriticPolicy
from agents.training import HYPERPARAMS

TARGET_RATIO = 0.7


def env_steps_per_second(env_id: str, steps: int) -> float:
    env = gym.make(env_id)
    env.action_space.seed(0)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


class NullDialogueEnv(gym.Env):
    """RLHF-Chat-v0's spaces with no work behind them: one fixed observation, episodes of
    six steps. PPO's fps here is the ceiling any env with this observation can reach, so
    it separates the cost of the env from the cost of its observation size."""

    def __init__(self, render_mode=None):
        spec_env = gym.make("RLHF-Chat-v0")
        self.observation_space = spec_env.observation_space
        self.action_space = spec_env.action_space
        self._obs = self.observation_space.sample()
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs, {}

    def step(self, action):
        self._t += 1
        return self._obs, 0.0, self._t >= 6, False, {}


def ppo_fps(env_id, policy, steps: int, n_envs: int, params: dict) -> float:
    env_kwargs = {"render_mode": None} if isinstance(env_id, str) and env_id.startswith("RLHF") else None
    env = make_vec_env(env_id, n_envs=n_envs, seed=0, env_kwargs=env_kwargs)
    model = PPO(policy, env, seed=0, device="cpu", verbose=0, **params)
    rollout = params.get("n_steps", 2048) * n_envs
    model.learn(rollout)  # warm-up: caches, allocator, first update
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="random steps per env id")
    parser.add_argument("--ppo-steps", type=int, default=8_192, help="PPO steps per measured run")
    args = parser.parse_args()
    torch.set_num_threads(1)

    print(f"command: {' '.join(sys.argv)}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, gymnasium {gym.__version__}, "
          f"stable-baselines3 {stable_baselines3.__version__}, rlhf-envs {rlhf_envs.__version__}, torch threads 1\n")

    cartpole = env_steps_per_second("CartPole-v1", args.steps)
    print("| env | random steps/s | ratio to CartPole-v1 |\n|---|---|---|")
    print(f"| CartPole-v1 | {cartpole:,.0f} | 1 |")
    for env_id in sorted(i for i in gym.registry if i.startswith("RLHF-")):
        sps = env_steps_per_second(env_id, args.steps)
        print(f"| {env_id} | {sps:,.0f} | {sps / cartpole:.3f} |")

    configs = [
        ("SB3 defaults, 1 env", 1, {}),
        ("suite PPO settings, 4 envs", 4, HYPERPARAMS["ppo"]),
    ]
    print("\nPPO training fps (collection and updates), RLHF-Chat-v0 against CartPole-v1 and against")
    print("a null env with RLHF-Chat-v0's spaces and no work (the ceiling for this observation size).\n")
    print("| PPO configuration | policy | CartPole-v1 | null env (ratio) | RLHF-Chat-v0 (ratio to CartPole, to null env) |")
    print("|---|---|---|---|---|")
    worst = np.inf
    for label, n_envs, params in configs:
        ref = ppo_fps("CartPole-v1", "MlpPolicy", args.ppo_steps, n_envs, params)
        for name, policy in (("MultiInputPolicy", "MultiInputPolicy"), ("candidate", CandidateActorCriticPolicy)):
            null = ppo_fps(NullDialogueEnv, policy, args.ppo_steps, n_envs, params)
            fps = ppo_fps("RLHF-Chat-v0", policy, args.ppo_steps, n_envs, params)
            worst = min(worst, fps / ref)
            print(f"| {label} | {name} | {ref:,.0f} | {null:,.0f} ({null / ref:.2f}) "
                  f"| {fps:,.0f} ({fps / ref:.2f}, {fps / null:.2f}) |")
    print(f"\nlowest PPO fps ratio to CartPole-v1: {worst:.2f} (target {TARGET_RATIO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
