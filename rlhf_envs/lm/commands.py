"""``rlhf-envs build-lm``: build the task tokenizer and reference LM ahead of time."""

from __future__ import annotations

import argparse
import json

from rlhf_envs.lm.build import (
    LMBuildConfig,
    build_key,
    build_reference_lm,
    cache_dir,
    default_lm_path,
)
from rlhf_envs.lm.reference import LM_CONFIG_FILE
from rlhf_envs.lm.sft import SFTConfig


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "build-lm",
        help="build the task tokenizer and small reference LM (cached; envs build it on first use otherwise)",
        description=(
            "Generate expert transcripts of the built-in domains, train a byte-level BPE tokenizer "
            "and fine-tune a small GPT-2 on them, deterministically. Saved in the cache directory "
            "(RLHF_ENVS_CACHE or ~/.cache/rlhf-envs) unless --out is given."
        ),
    )
    parser.add_argument("--out", help="build into this folder instead of the cache")
    parser.add_argument(
        "--force", action="store_true", help="rebuild even if the cached model exists"
    )
    parser.add_argument(
        "--episodes", type=int, default=LMBuildConfig.episodes, help="training transcripts"
    )
    parser.add_argument("--steps", type=int, default=SFTConfig.steps, help="fine-tuning steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.episodes < 10 or args.steps < 1:
        raise SystemExit(
            f"build-lm: --episodes must be at least 10 and --steps at least 1 (got {args.episodes}, {args.steps})"
        )
    config = LMBuildConfig(
        episodes=args.episodes, seed=args.seed, sft=SFTConfig(steps=args.steps, seed=args.seed)
    )
    if args.out:
        info = build_reference_lm(args.out, config)
        folder = args.out
    else:
        folder = cache_dir() / "lm" / build_key(config)
        if args.force and (folder / LM_CONFIG_FILE).is_file():
            build_reference_lm(folder, config)
        folder = default_lm_path(config)  # builds it when it is not in the cache
        info = json.loads((folder / LM_CONFIG_FILE).read_text())
    print(
        f"reference LM in {folder}\n"
        f"  {info['parameters']:,} parameters, vocabulary {info['vocab_size']}, "
        f"{info['corpus_tokens']:,} training tokens\n"
        f"  held-out perplexity {info['held_out_perplexity']:.2f} (unigram model: {info['unigram_perplexity']:.1f})\n"
        f"  built in {info['build_seconds']:.0f} s with {info['torch_threads']} torch threads"
    )
    return 0
