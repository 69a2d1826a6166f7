"""What a step costs through ``rlhf-envs serve`` (OpenEnv, WebSocket) against the same env in
process, measured in one run.

The scripted expert's replies are recorded in process first (the same seeds), then:

1. in process: a fresh env replays them; each ``step()`` is timed;
2. served, 1 session: one OpenEnv client replays them over the WebSocket;
3. served, 8 sessions: 8 clients at once (asyncio), each replaying its own episodes.

Printed per setting: steps/s over all sessions (wall time of the whole replay, resets
included), and the p50/p99 latency of one step as the client sees it (the round trip),
with the ratio to the in-process figure. The server runs
one torch thread; the client and server share the machine's cores, as they would on a
laptop.

    python benchmarks/serve_latency.py [--env RLHF-ChatText-v0] [--episodes 16] [--out docs/serve]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import rlhf_envs  # noqa: F401  (registers the ids)


def record(env_id: str, seeds: list[int]) -> dict[int, list[str]]:
    """The expert's replies of each episode, played in process."""
    env = gym.make(env_id)
    out = {}
    for seed in seeds:
        env.reset(seed=seed)
        actions, done = [], False
        while not done:
            action = env.unwrapped.expert_action()
            actions.append(action)
            _, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        out[seed] = actions
    return out


def in_process(env_id: str, episodes: dict[int, list[str]]) -> tuple[list[float], float]:
    env = gym.make(env_id)
    times = []
    begin = time.perf_counter()
    for seed, actions in episodes.items():
        env.reset(seed=seed)
        for action in actions:
            start = time.perf_counter()
            env.step(action)
            times.append(time.perf_counter() - start)
    return times, time.perf_counter() - begin


async def served(
    url: str, episodes: dict[int, list[str]], sessions: int
) -> tuple[list[float], float]:
    from openenv.core import GenericEnvClient

    seeds = list(episodes)
    shares = [seeds[i::sessions] for i in range(sessions)]
    times: list[float] = []

    async def session(share: list[int]) -> None:
        async with GenericEnvClient(base_url=url) as client:
            for seed in share:
                await client.reset(seed=seed)
                for action in episodes[seed]:
                    start = time.perf_counter()
                    await client.step({"message": action})
                    times.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(session(s) for s in shares if s))
    return times, time.perf_counter() - start


def summary(times: list[float], wall: float) -> dict[str, float]:
    ms = np.array(times) * 1000
    return {
        "steps": len(times),
        "steps_per_s": len(times) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="RLHF-ChatText-v0")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(2000, 2000 + args.episodes))
    episodes = record(args.env, seeds)
    results = {"in process": summary(*in_process(args.env, episodes))}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlhf_envs.cli",
            "serve",
            args.env,
            "--port",
            str(port),
            "--threads",
            "1",
            "--max-sessions",
            "8",
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        # One untimed episode first: the server's first session loads the reference LM.
        first = next(iter(episodes))
        asyncio.run(served(url, {first: episodes[first]}, 1))
        for sessions in (1, 8):
            times, wall = asyncio.run(served(url, episodes, sessions))
            results[f"served, {sessions} session{'s' * (sessions > 1)}"] = summary(times, wall)
    finally:
        server.terminate()
        server.wait(timeout=30)

    base = results["in process"]
    print(f"{args.env}: {args.episodes} expert episodes, {base['steps']} steps per setting")
    print(
        f"{'setting':<20} {'steps/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'steps/s vs in process':>22}"
    )
    for name, r in results.items():
        ratio = r["steps_per_s"] / base["steps_per_s"]
        print(
            f"{name:<20} {r['steps_per_s']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{ratio:>22.2f}"
        )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "latency.json").write_text(
            json.dumps({"env": args.env, "episodes": args.episodes, "results": results}, indent=2)
            + "\n"
        )


if __name__ == "__main__":
    main()
