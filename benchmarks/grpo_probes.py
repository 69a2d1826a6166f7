"""Short GRPO probes: which recipe change moves held-out gold, at a fraction of a full run.

Each probe trains the reference LM with TRL's GRPO for ``--steps`` steps under the
default recipe with some fields changed (``--set horizon=2 algo=rloo ...``, any field
of :class:`rlhf_agents.grpo.GRPORecipe`), then plays ``--episodes`` held-out episodes
and reports the trained policy's gold per episode minus the sampled SFT start's on the
same seeds (paired; the SFT episodes are played once and cached in the results folder),
the KL per token, and the training return per reply at the start and end of training.
One probe costs 10-25 minutes on one core; run two side by side with ``--threads 1``.

Appends one JSON line per probe to ``--out``/probes.jsonl (default
``docs/train_lm/probes.jsonl``) and prints it.

    python benchmarks/grpo_probes.py --name horizon2 --steps 100 --set horizon=2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlhf_agents.evaluation import held_out_seeds
from rlhf_agents.grpo import GRPORecipe, build_trainer, evaluate_policy
from rlhf_agents.run_record import command_line
from rlhf_envs.rollouts import LMPolicy


def recipe_overrides(items: list[str]) -> dict[str, Any]:
    """``["horizon=2", "algo=rloo"]`` -> typed GRPORecipe fields (named errors)."""
    fields = {f.name: f for f in dataclasses.fields(GRPORecipe)}
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or name not in fields:
            raise SystemExit(
                f"--set takes FIELD=VALUE with FIELD one of {sorted(fields)}: {item!r}"
            )
        default = fields[name].default
        kind = type(default) if default not in (None, dataclasses.MISSING) else str
        try:
            out[name] = kind(text)
        except ValueError:
            raise SystemExit(f"--set {name} takes a {kind.__name__}, got {text!r}") from None
    return out


def mean_of(logs: list[dict[str, float]], key: str) -> float:
    values = [row[key] for row in logs if key in row]
    return round(float(np.mean(values)), 3) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="the probe's name in the results")
    parser.add_argument("--env", default=GRPORecipe.env_id)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=40, help="held-out episodes")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lm", help="LM folder (default: the project's reference LM)")
    parser.add_argument("--out", default="docs/train_lm")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    from rlhf_envs.lm.build import default_lm_path

    try:
        recipe = GRPORecipe(env_id=args.env, steps=args.steps, **recipe_overrides(args.set))
    except ValueError as exc:
        raise SystemExit(f"grpo_probes: {exc}") from None
    lm = Path(args.lm) if args.lm else default_lm_path()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = held_out_seeds(args.episodes)
    start = LMPolicy.from_folder(
        lm, max_reply_tokens=recipe.max_reply_tokens, temperature=recipe.temperature
    )
    # The SFT start's episodes depend only on the LM, env, seeds and temperature.
    cache = out / f"probe_sft_{args.env}_{args.episodes}_{recipe.temperature}.json"
    if cache.exists():
        sft = np.array(json.loads(cache.read_text()))
    else:
        sft = evaluate_policy("SFT", start, args.env, seeds).gold
        cache.write_text(json.dumps(sft.tolist()))
    trainer = build_trainer(recipe, lm, out / "probe_trainer" / args.name)
    began = time.perf_counter()
    trainer.train()
    minutes = (time.perf_counter() - began) / 60
    trainer.model.eval()
    trained = LMPolicy(
        trainer.model,
        start.tokenizer,
        max_reply_tokens=recipe.max_reply_tokens,
        temperature=recipe.temperature,
    )
    result = evaluate_policy("RL", trained, args.env, seeds, reference=start.model)
    gain = result.gold - sft
    logs = [row for row in trainer.state.log_history if "loss" in row]
    quarter = max(1, len(logs) // 4)
    row = {
        "name": args.name,
        "env": args.env,
        "steps": args.steps,
        "set": args.set,
        "train_minutes": round(minutes, 1),
        "step_seconds": mean_of(logs, "step_time"),
        "episodes": args.episodes,
        "sft": round(float(sft.mean()), 3),
        "rl": round(float(result.gold.mean()), 3),
        "gain": round(float(gain.mean()), 3),
        "gain_se": round(float(gain.std(ddof=1) / np.sqrt(len(gain))), 3),
        "kl_per_token": round(float(result.kl_per_token or 0.0), 3),
        "return_first": mean_of(logs[:quarter], "rewards/env_reward/mean"),
        "return_last": mean_of(logs[-quarter:], "rewards/env_reward/mean"),
        "command": command_line(["python", "benchmarks/grpo_probes.py", *(argv or sys.argv[1:])]),
    }
    print(json.dumps(row), flush=True)
    with open(out / "probes.jsonl", "a") as handle:
        handle.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
