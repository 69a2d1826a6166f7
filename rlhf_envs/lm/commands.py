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


def add_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build-lm",
        help=(
            "build the task tokenizer and small reference LM (cached; envs build it on first "
            "use otherwise)"
        ),
        description=(
            "Generate expert transcripts of the built-in domains, train a byte-level BPE tokenizer "
            "and fine-tune a small GPT-2 on them, deterministically. Saved in the cache directory "
            "(RLHF_ENVS_CACHE or ~/.cache/rlhf-envs) unless --out is given."
        ),
    )
    parser.add_argument("--out", help="build into this folder instead of the cache")
    parser.add_argument(
        "--force",
        action="store_true",
        help="rebuild even if the cached model (or the LM in --out) exists",
    )
    parser.add_argument(
        "--episodes", type=int, default=LMBuildConfig.episodes, help="training transcripts"
    )
    parser.add_argument(
        "--held-out",
        type=int,
        default=LMBuildConfig.held_out,
        help=f"transcripts kept for the held-out perplexity (default {LMBuildConfig.held_out})",
    )
    parser.add_argument("--steps", type=int, default=SFTConfig.steps, help="fine-tuning steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=LMBuildConfig.threads,
        help=(
            f"torch threads of the fine-tuning (default {LMBuildConfig.threads}); part of the "
            "build, since another count gives slightly different weights (another cache folder)"
        ),
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.episodes < 10 or args.held_out < 1 or args.steps < 1 or args.threads < 1:
        raise SystemExit(
            "build-lm: --episodes must be at least 10, --held-out, --steps and --threads at "
            f"least 1 (got {args.episodes}, {args.held_out}, {args.steps}, {args.threads})"
        )
    config = LMBuildConfig(
        episodes=args.episodes,
        held_out=args.held_out,
        seed=args.seed,
        sft=SFTConfig(steps=args.steps, seed=args.seed),
        threads=args.threads,
    )
    if args.out:
        info = build_reference_lm(args.out, config, overwrite=args.force)
        folder = args.out
    else:
        folder = cache_dir() / "lm" / build_key(config)
        if args.force and (folder / LM_CONFIG_FILE).is_file():
            build_reference_lm(folder, config, overwrite=True)
        folder = default_lm_path(config)  # builds it when it is not in the cache
        info = json.loads((folder / LM_CONFIG_FILE).read_text())
    print(
        f"reference LM in {folder}\n"
        f"  {info['parameters']:,} parameters, vocabulary {info['vocab_size']}, "
        f"{info['corpus_tokens']:,} training tokens\n"
        f"  held-out perplexity {info['held_out_perplexity']:.2f} "
        f"(unigram model: {info['unigram_perplexity']:.1f})\n"
        f"  built in {info['build_seconds']:.0f} s with {info['torch_threads']} torch threads"
    )
    return 0
