"""Language-model agents on a text id, next to the scripted expert and random: a leaderboard.

Starts ``rlhf-envs serve-lm`` on the reference LM, then runs ``rlhf-envs compare`` with

- ``random`` (random characters) and ``expert`` (the policy book, scripted);
- ``reference-lm``: ``hf:`` the reference LM in process (the SFT policy, sampled);
- ``reference-lm-served``: the same model through the OpenAI-compatible endpoint
  (``openai:reference@URL``): the same prompts and seeds, so the same play;
- ``policy`` (with ``--policy PATH``): a folder written by ``rlhf-envs train-lm``
  (``OUT/policy``), e.g. the GRPO-trained policy.

    python benchmarks/llm_agents.py [--env RLHF-ChatText-v0] [--scenarios 20] [--tries 3]
        [--policy docs/train_lm/chat/policy] [--out results/llm_agents]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from rlhf_envs.lm.build import default_lm_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="RLHF-ChatText-v0")
    parser.add_argument("--scenarios", type=int, default=20)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--policy", type=Path, default=None, help="a train-lm policy folder")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/llm_agents"))
    args = parser.parse_args()
    reference = default_lm_path()  # built first, announced, if missing
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    args.out.mkdir(parents=True, exist_ok=True)
    config = args.out / "agents.yaml"
    lines = [
        f"reference-lm:\n  base: hf\n  model: {reference}\n",
        f"reference-lm-served:\n  base: openai\n  model: reference@{url}\n",
    ]
    agents = ["random", "expert", "reference-lm", "reference-lm-served"]
    if args.policy is not None:
        lines.append(f"policy:\n  base: hf\n  model: {args.policy.resolve()}\n")
        agents.append("policy")
    config.write_text("".join(lines))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlhf_envs.cli",
            "serve-lm",
            str(reference),
            "--port",
            str(port),
            "--name",
            "reference",
            "--threads",
            "1",
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "rlhf_envs.cli",
                "compare",
                "--envs",
                args.env,
                "--agents",
                ",".join(agents),
                "--config",
                str(config),
                "--seeds",
                "1",
                "--scenarios",
                str(args.scenarios),
                "--tries",
                str(args.tries),
                "--jobs",
                str(args.jobs),
                "--reference",
                "reference-lm",
                "--out",
                str(args.out),
            ],
            check=True,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    print((args.out / "leaderboard.md").read_text())


if __name__ == "__main__":
    main()
