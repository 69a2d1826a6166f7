"""RLHF proper: fine-tune the reference LM token by token with PPO, a proxy reward and a
KL penalty, on RLHF-ChatTokens-v0.

    python examples/rlhf_tokens.py --steps 60000

1. The env writes replies one token at a time in the reference LM's vocabulary; the
   proxy reward (``rubric:stickler``, one annotator persona) scores each finished reply,
   and ``kl_coef`` adds ``beta * log pi_ref`` per token.
2. SB3's PPO trains :class:`~rlhf_agents.lm_policy.LMActorCriticPolicy` (a trainable copy of
   the reference LM plus a value head) unchanged; :class:`~rlhf_agents.lm_policy.KLPenaltyCallback`
   adds the policy's ``-beta * log pi`` so the return is KL-regularised (and ends each
   return at the end of its reply), and logs the KL.
3. The gold reward (full rubric plus fluency) on held-out seeds compares the tuned
   policy with the reference it started from; the tuned LM is saved as a Hugging Face
   folder (safetensors), usable as ``lm=`` of any tokens env.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
from stable_baselines3 import PPO

import rlhf_envs  # noqa: F401  (registers RLHF-ChatTokens-v0)
from rlhf_agents.baselines import SB3Agent
from rlhf_agents.evaluation import evaluate, held_out_seeds
from rlhf_agents.lm_policy import KLPenaltyCallback, LMActorCriticPolicy
from rlhf_envs.sb3 import make_sb3_vec_env

ENV_ID = "RLHF-ChatTokens-v0"


@dataclass
class Args:
    steps: int = 60_000  # PPO environment steps (tokens)
    kl_coef: float = 0.1  # beta
    proxy: str = "rubric:stickler"  # the training reward
    episodes: int = 30  # evaluation episodes (held-out seeds)
    out: str = "runs/rlhf-tokens"
    seed: int = 0
    threads: int = 2  # torch threads (the test runs it with 1 beside another worker)


def main(args: Args) -> dict[str, float]:
    torch.set_num_threads(args.threads)
    env_kwargs = {"reward": args.proxy, "kl_coef": args.kl_coef}
    venv = make_sb3_vec_env(ENV_ID, n_envs=4, seed=args.seed, env_kwargs=env_kwargs)
    lm_path = str(venv.get_attr("reference_lm")[0].path)
    model = PPO(
        LMActorCriticPolicy,
        venv,
        n_steps=256,
        batch_size=128,
        n_epochs=2,
        gamma=1.0,
        learning_rate=1e-4,
        target_kl=0.05,
        seed=args.seed,
        policy_kwargs={"lm": lm_path},
    )
    seeds = held_out_seeds(args.episodes)
    torch.manual_seed(args.seed)
    before = evaluate(SB3Agent(model, "reference", deterministic=False), ENV_ID, seeds, env_kwargs)
    kl = KLPenaltyCallback()
    model.learn(args.steps, callback=kl, progress_bar=True)
    torch.manual_seed(args.seed)
    after = evaluate(SB3Agent(model, "ppo", deterministic=False), ENV_ID, seeds, env_kwargs)
    folder = model.policy.save_pretrained(Path(args.out))
    for ev in (before, after):
        print(
            f"{ev.agent:>10}: proxy return {ev.values('ret').mean():6.2f}, "
            f"gold {ev.values('gold').mean():6.2f}, "
            f"success {ev.values('success').mean():.0%}"
        )
    print(
        f"mean KL to the reference per token (last rollout): {kl.history[-1]:.4f}; "
        f"tuned LM saved in {folder}"
    )
    return {
        "reference_gold": float(before.values("gold").mean()),
        "ppo_gold": float(after.values("gold").mean()),
        "kl": float(kl.history[-1]),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Args()).items():
        parser.add_argument(
            f"--{name.replace('_', '-')}", dest=name, type=type(default), default=default
        )
    main(Args(**vars(parser.parse_args())))
