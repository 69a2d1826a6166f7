"""The benchmark suite: where an RLHF env's time goes, in one command.

    python benchmarks/suite.py [--quick | --smoke] [--threads 1] [--out results/bench]

Sections (each figure is timed in this process next to its reference, so the ratios hold
on any machine; torch is held to ``--threads`` threads):

1. ``env``: random-action steps/s of every registered id (interface x domain), as a
   ratio to CartPole-v1. Target for RLHF-Chat-v0: >= 0.04.
2. ``ppo``: PPO training fps on RLHF-Chat-v0 (through :class:`rlhf_envs.sb3.SB3VecEnv`)
   as a ratio to a null env with RLHF-Chat-v0's spaces and no work (the ceiling for this
   observation size and policy), both next to CartPole-v1 with the same settings (SB3's
   defaults with 1 env, the suite's with 4). Target >= 0.7 of the null env. The five
   models of a setting (CartPole, then null env and RLHF-Chat-v0 per policy) take turns
   training, 2 rounds (``--quick``), 1 (``--smoke``) or 4, and each keeps its best round.
   Each RLHF-Chat-v0 model also reports the microseconds per env step its best round
   spent in the vector env's ``step_wait``: the env's share of training, next to the null
   env's and to what the target leaves it.
3. ``learned-rm``: for a linear and a MiniLM reward model (untrained: speed does not
   depend on the weights): preference pairs scored per second; 16 turns scored in one
   call vs 16 calls; and turns/s of N = 1, 4, 16, 64 conversations, the batched vector
   env (one reward-model call per step) vs Gymnasium's SyncVectorEnv of single envs (N
   calls). Target >= 4x at 16 envs.
4. ``kl``: the tokens env with and without KL shaping (``kl_coef``), single env and 16
   envs (one batched reference-LM forward per step vs one per sub-env).
5. ``memory``: peak resident memory of a process that makes each env and steps it, and
   of one that only imports the package (its baseline).
6. ``length``: step cost at turn 1 and at turn 20 of a conversation (the simulated user
   is made endlessly patient so conversations last). Target: turn 20 within 1.5x of turn 1.

Prints one Markdown table per section and writes every row to ``<out>/benchmarks.csv``
(section, case, value, unit, reference, ratio, target) and ``<out>/run.json``.
"""

from __future__ import annotations

import argparse
import csv
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import rlhf_envs
from rlhf_agents.run_record import RunRecord, command_line

ROOT = Path(__file__).resolve().parents[1]
PPO_TARGET = 0.7
STEP_TARGET = 0.04  # RLHF-Chat-v0's random steps/s over CartPole-v1's
BATCH_TARGET = 4.0
LENGTH_TARGET = 1.5


@dataclass
class Row:
    section: str
    case: str
    value: float
    unit: str
    reference: float | None = None  # the same measure of the reference run
    ratio: float | None = None  # value / reference (or the section's stated ratio)
    target: str = ""

    def met(self) -> str:
        if not self.target or self.ratio is None:
            return ""
        op, bound = self.target.split(" ")
        ok = self.ratio >= float(bound) if op == ">=" else self.ratio <= float(bound)
        return "yes" if ok else "NO"


def sized(args, full: Any, quick: Any, smoke: Any) -> Any:
    """The size of a run for the suite's level: ``full`` by default, ``quick`` with
    ``--quick``, ``smoke`` with ``--smoke`` (every code path once: for checking that the
    command works, not for figures)."""
    return smoke if args.smoke else quick if args.quick else full


def best_of(fn, repeats: int) -> float:
    """Fastest of ``repeats`` timings in seconds (the least disturbed by other work)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


# --- 1. env steps/s -----------------------------------------------------------------------


def random_actor(env: gym.Env, rng: np.random.Generator):
    """Random actions a step can take: any candidate, any allowed token, a short string."""
    unwrapped = env.unwrapped
    if getattr(unwrapped, "interface", None) is not None and unwrapped.interface.name == "tokens":
        allowed = np.flatnonzero(unwrapped.action_masks())
        return lambda: int(rng.choice(allowed))
    if isinstance(env.action_space, gym.spaces.Text):
        words = (
            "sure",
            "let",
            "me",
            "check",
            "your",
            "order",
            "please",
            "thanks",
            "account",
            "refund",
        )
        return lambda: " ".join(rng.choice(words, size=int(rng.integers(3, 12))))
    env.action_space.seed(int(rng.integers(1 << 31)))
    return env.action_space.sample


_SEEDS = iter(range(1_000_000))


def steps_per_second(env_id: str, steps: int, seed: int | None = None) -> float:
    """Random-action steps/s of a new ``env_id`` env. Each call plays other episodes
    (a fresh seed unless ``seed`` is given): encoder and reading caches are shared by
    the process's envs, and replaying episodes an earlier call played would time cache
    hits rather than steps."""
    seed = next(_SEEDS) if seed is None else seed
    env = gym.make(env_id)
    env.reset(seed=seed)
    act = random_actor(env, np.random.default_rng(seed))
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(act())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def bench_env(args) -> list[Row]:
    steps = sized(args, 10_000, 2_000, 200)
    cartpole = steps_per_second("CartPole-v1", steps * 5)
    rows = [Row("env", "CartPole-v1", cartpole, "steps/s", cartpole, 1.0)]
    for env_id in sorted(i for i in gym.registry if i.startswith("RLHF-")):
        kwargs = gym.spec(env_id).kwargs
        n = steps * 4 if kwargs.get("interface") == "tokens" else steps
        sps = steps_per_second(env_id, n)
        case = f"{env_id} ({kwargs.get('interface')}, {kwargs.get('domain')})"
        target = f">= {STEP_TARGET}" if env_id == "RLHF-Chat-v0" else ""
        rows.append(Row("env", case, sps, "steps/s", cartpole, sps / cartpole, target))
    return rows


# --- 2. PPO fps ---------------------------------------------------------------------------


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


class PPOTrainer:
    """A PPO model on ``env_id``, warmed up by one rollout and update. Calling it trains
    ``steps`` more steps and gives the fps (collection and updates). ``best_fps`` is the
    best of its rounds so far and ``env_us`` that round's microseconds per env step spent
    inside the vector env's ``step_wait`` (the env's share of training, as it runs
    between the policy's forwards)."""

    def __init__(self, env_id, policy, n_envs: int, params: dict):
        from stable_baselines3 import PPO
        from stable_baselines3.common.env_util import make_vec_env

        from rlhf_agents.training import make_training_env

        if isinstance(env_id, str) and env_id.startswith("RLHF"):
            venv = make_training_env(env_id, n_envs, 0)  # the batched vector env (SB3VecEnv)
        else:
            venv = make_vec_env(env_id, n_envs=n_envs, seed=0)
        self.model = PPO(policy, venv, seed=0, device="cpu", verbose=0, **params)
        self.model.learn(params.get("n_steps", 2048) * n_envs)
        self._in_env = 0.0
        step_wait = venv.step_wait

        def timed_step_wait():
            start = time.perf_counter()
            try:
                return step_wait()
            finally:
                self._in_env += time.perf_counter() - start

        venv.step_wait = timed_step_wait  # (VecEnv.step calls self.step_wait)
        self.best_fps, self.env_us = 0.0, float("nan")

    def __call__(self, steps: int) -> float:
        self._in_env = 0.0
        start = time.perf_counter()
        self.model.learn(steps, reset_num_timesteps=False)
        fps = steps / (time.perf_counter() - start)
        if fps > self.best_fps:
            self.best_fps, self.env_us = fps, self._in_env / steps * 1e6
        return fps


def best_alternated(trainers: list[PPOTrainer], steps: int, rounds: int) -> list[float]:
    """Each trainer's best fps over ``rounds`` rounds, the trainers taking turns in each
    round: a machine whose speed drifts (shared CPUs) slows all of them alike, so their
    ratios hold where a single run of each would not."""
    for _ in range(rounds):
        for train in trainers:
            train(steps)
    return [train.best_fps for train in trainers]


def bench_ppo(args) -> list[Row]:
    from rlhf_agents.candidate_policy import CandidateActorCriticPolicy
    from rlhf_agents.training import HYPERPARAMS

    steps, rounds = sized(args, (8_192, 4), (4_096, 2), (2_048, 1))
    rows = []
    configs = [("SB3 defaults, 1 env", 1, {}), ("suite settings, 4 envs", 4, HYPERPARAMS["ppo"])]
    for label, n_envs, params in configs:
        policies = (
            ("MultiInputPolicy", "MultiInputPolicy"),
            ("candidate policy", CandidateActorCriticPolicy),
        )
        trainers = [PPOTrainer("CartPole-v1", "MlpPolicy", n_envs, params)]
        for _, policy in policies:
            trainers.append(PPOTrainer(NullDialogueEnv, policy, n_envs, params))
            trainers.append(PPOTrainer("RLHF-Chat-v0", policy, n_envs, params))
        ref, *others = best_alternated(trainers, steps, rounds)
        rows.append(Row("ppo", f"{label}: CartPole-v1, MlpPolicy", ref, "fps", ref, 1.0))
        pairs = zip(
            policies, others[::2], others[1::2], trainers[1::2], trainers[2::2], strict=True
        )
        for (name, _), null, fps, null_trainer, chat_trainer in pairs:
            rows.append(
                Row(
                    "ppo",
                    f"{label}: null env with RLHF-Chat-v0's spaces, {name} (ceiling)",
                    null,
                    "fps",
                    ref,
                    null / ref,
                )
            )
            rows.append(
                Row(
                    "ppo",
                    f"{label}: RLHF-Chat-v0, {name} (vs the null env; {fps / ref:.2f} of CartPole)",
                    fps,
                    "fps",
                    null,
                    fps / null,
                    f">= {PPO_TARGET}",
                )
            )
            # Where the gap goes: the env's own step as it runs inside training (between
            # the policy's forwards, it costs more than in a loop of random steps). The
            # target needs the env to add at most (1 / target - 1) of the null env's step.
            allowed = (1 / PPO_TARGET - 1) * 1e6 / null
            rows.append(
                Row(
                    "ppo",
                    f"{label}: RLHF-Chat-v0, {name}: us per env step in the vector env's "
                    f"step_wait (vs the null env's; the target allows {allowed:.0f} us more)",
                    chat_trainer.env_us,
                    "us/step",
                    null_trainer.env_us,
                    chat_trainer.env_us / null_trainer.env_us,
                )
            )
    return rows


# --- 3. learned reward models: batched vector env vs SyncVectorEnv ------------------------


def learned_models(args) -> dict:
    from rlhf_envs.rewards.learned import LearnedRewardModel
    from rlhf_envs.rewards.learned.linear import LinearScorer
    from rlhf_envs.rewards.learned.transformer import TransformerScorer

    # Untrained weights: speed does not depend on them.
    return {
        "linear": LearnedRewardModel(LinearScorer()),
        "minilm": LearnedRewardModel(TransformerScorer.from_pretrained("minilm", 1, 256)),
    }


def vector_turns_per_second(mode: str, n: int, model, steps: int) -> float:
    vec = gym.make_vec("RLHF-Chat-v0", num_envs=n, vectorization_mode=mode, reward=model)
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    featurizer = getattr(model.scorer, "featurizer", None)
    for _ in range(2):  # into the conversations: longer contexts, as in training
        vec.step(rng.integers(6, size=n))
    if featurizer is not None:
        featurizer._cache.clear()  # every turn of a real run is new text
    start = time.perf_counter()
    for _ in range(steps):
        vec.step(rng.integers(6, size=n))
    elapsed = time.perf_counter() - start
    vec.close()
    return n * steps / elapsed


def sixteen_turns():
    """The turns of 16 conversations, each a few expert steps in (scoring inputs)."""
    from rlhf_envs.rewards.protocol import Exchange

    exchanges = []
    for i in range(16):
        env = gym.make("RLHF-Chat-v0").unwrapped
        env.reset(seed=i)
        for _ in range(i % 4):
            env.step(env.expert_action())
            if env.state.ended:
                env.reset(seed=i)
                break
        exchanges.append(
            Exchange(
                env.state.scenario, env.state.history, env.interface.candidates[0].text, env.state
            )
        )
    return exchanges


def bench_learned_rm(args) -> list[Row]:
    from rlhf_envs.feedback.annotators import FeedbackCollector

    rows = []
    pairs = FeedbackCollector("RLHF-Chat-v0", seed=7).preferences(
        sized(args, 512, 128, 32), progress=False
    )
    exchanges = sixteen_turns()
    sizes = sized(args, (1, 4, 16, 64), (1, 4, 16), (1, 16))
    for name, model in learned_models(args).items():
        featurizer = getattr(model.scorer, "featurizer", None)

        def fresh(featurizer=featurizer):
            if featurizer is not None:  # every turn of a real run is new text
                featurizer._cache.clear()

        prompts = [p.prompt for p in pairs] * 2
        texts = [p.chosen for p in pairs] + [p.rejected for p in pairs]
        model.score_texts(prompts[:16], texts[:16])  # warm-up
        fresh()
        pairs_per_s = len(pairs) / best_of(
            lambda m=model, c=prompts, r=texts: m.score_texts(c, r), 1
        )
        rows.append(
            Row(
                "learned-rm",
                f"{name}: preference pairs scored, 64 per call",
                pairs_per_s,
                "pairs/s",
            )
        )
        repeats = 10 if name == "linear" else 3
        batched = best_of(
            lambda model=model, fresh=fresh: (fresh(), model.score(exchanges)), repeats
        )
        single = best_of(
            lambda model=model, fresh=fresh: (fresh(), [model.score([e]) for e in exchanges]),
            repeats,
        )
        rows.append(
            Row(
                "learned-rm",
                f"{name}: 16 turns scored in one call vs 16 calls (scoring only)",
                16 / batched,
                "turns/s",
                16 / single,
                single / batched,
            )
        )
        for n in sizes:
            turns = (200 if name == "linear" else 24) * sized(args, 2, 1, 1)
            steps = max(2, turns // n)
            best = {"vector_entry_point": 0.0, "sync": 0.0}
            for _ in range(2):  # alternate the two, keep each one's best: fair to both
                for mode in best:
                    best[mode] = max(best[mode], vector_turns_per_second(mode, n, model, steps))
            native, sync = best["vector_entry_point"], best["sync"]
            target = f">= {BATCH_TARGET}" if n == 16 else ""
            rows.append(
                Row(
                    "learned-rm",
                    f"{name}, {n} envs: batched vector env vs SyncVectorEnv",
                    native,
                    "turns/s",
                    sync,
                    native / sync,
                    target,
                )
            )
    return rows


# --- 4. KL shaping ------------------------------------------------------------------------


def tokens_vector_steps_per_second(mode: str, n: int, kl_coef: float, steps: int) -> float:
    vec = gym.make_vec(
        "RLHF-ChatTokens-v0", num_envs=n, vectorization_mode=mode, kl_coef=kl_coef, gold="rubric"
    )
    vec.reset(seed=0)
    first = vec.envs[0] if hasattr(vec, "envs") else None
    allowed = np.flatnonzero(first.unwrapped.action_masks())
    rng = np.random.default_rng(0)
    vec.step(rng.choice(allowed, size=n))
    start = time.perf_counter()
    for _ in range(steps):
        vec.step(rng.choice(allowed, size=n))
    elapsed = time.perf_counter() - start
    vec.close()
    return n * steps / elapsed


def bench_kl(args) -> list[Row]:
    steps = sized(args, 2_000, 400, 64)
    rows = []
    single = {}
    for kl in (0.0, 0.1):
        env = gym.make("RLHF-ChatTokens-v0", kl_coef=kl, gold="rubric")
        env.reset(seed=0)
        act = random_actor(env, np.random.default_rng(0))

        def run(env=env, act=act):
            for _ in range(steps):
                _, _, terminated, truncated, _ = env.step(act())
                if terminated or truncated:
                    env.reset()

        single[kl] = steps / best_of(run, 2)
    rows.append(Row("kl", "tokens, 1 env, kl_coef=0", single[0.0], "steps/s", single[0.0], 1.0))
    rows.append(
        Row(
            "kl",
            "tokens, 1 env, kl_coef=0.1",
            single[0.1],
            "steps/s",
            single[0.0],
            single[0.1] / single[0.0],
        )
    )
    vec_steps = max(10, steps // 16)
    best = {"vector_entry_point": 0.0, "sync": 0.0}
    for _ in range(2):
        for mode in best:
            best[mode] = max(best[mode], tokens_vector_steps_per_second(mode, 16, 0.1, vec_steps))
    rows.append(
        Row(
            "kl",
            "tokens, 16 envs, kl_coef=0.1: batched vector env vs SyncVectorEnv",
            best["vector_entry_point"],
            "steps/s",
            best["sync"],
            best["vector_entry_point"] / best["sync"],
        )
    )
    return rows


# --- 5. memory ----------------------------------------------------------------------------

_MEMORY_CHILD = """
import sys, gymnasium as gym, numpy as np, torch
torch.set_num_threads(1)
import rlhf_envs
sys.path.insert(0, {root!r})
env_id = sys.argv[1]
if env_id != "-":
    from benchmarks.suite import random_actor
    env = gym.make(env_id)
    env.reset(seed=0)
    act = random_actor(env, np.random.default_rng(0))
    for _ in range(int(sys.argv[2])):
        _, _, terminated, truncated, _ = env.step(act())
        if terminated or truncated:
            env.reset()
# VmHWM: this process's peak (ru_maxrss would carry the parent's peak over fork+exec).
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024)
"""


def peak_rss_mb(env_id: str, steps: int) -> float:
    code = _MEMORY_CHILD.format(root=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code, env_id, str(steps)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def bench_memory(args) -> list[Row]:
    steps = sized(args, 2_000, 300, 50)
    base = peak_rss_mb("-", 0)
    rows = [Row("memory", "import rlhf_envs (baseline)", base, "MB peak RSS", base, 1.0)]
    for env_id in sorted(i for i in gym.registry if i.startswith("RLHF-")):
        rss = peak_rss_mb(env_id, steps)
        rows.append(Row("memory", f"{env_id}, {steps} steps", rss, "MB peak RSS", base, rss / base))
    return rows


# --- 6. step cost vs dialogue length ------------------------------------------------------


def turn_costs(env_id: str, episodes: int, turns: int = 20, **kwargs) -> np.ndarray:
    """Median seconds per step at each agent turn (1..turns), over ``episodes`` long
    conversations: the user never runs out of patience and the agent never does the
    step that is due, so every conversation lasts ``turns`` turns. (Medians: a garbage
    collection or a cache being emptied costs one step tens of milliseconds, which
    would swamp a mean over 20 steps.)"""
    env = gym.make(env_id, **kwargs).unwrapped
    tokens = env.interface.name == "tokens"
    rng = np.random.default_rng(0)
    if tokens:  # random words of exactly max_reply_tokens tokens: no early end-of-turn
        eot = env.reference_lm.eot_id
        allowed = np.array([t for t in np.flatnonzero(env.action_masks()) if t != eot])
    samples: list[list[float]] = [[] for _ in range(turns)]
    for episode in range(episodes):
        env.reset(seed=episode)
        env.mood.patience = 10**9
        for turn in range(turns):
            if tokens:
                reply = [int(t) for t in rng.choice(allowed, size=env.interface.max_reply_tokens)]
            elif env.interface.name == "text":
                reply = ["Let me look into that for you, one moment please."]
            else:
                expert = env.expert_action()
                reply = [int(rng.choice([a for a in range(env.action_space.n) if a != expert]))]
            for action in reply:
                if env.state.ended:
                    break
                start = time.perf_counter()
                env.step(action)
                samples[turn].append(time.perf_counter() - start)
            if env.state.ended:
                break
    return np.array([np.median(found) if found else 0.0 for found in samples])


def length_row(label: str, costs: np.ndarray, target: str = "") -> Row:
    """Turns 19-20 against turns 1-2 (pairs of turns: less noise), with turns 9-10 named
    so growth that stops once a model's window is full shows as such."""
    first, middle, last = costs[:2].mean(), costs[8:10].mean(), costs[-2:].mean()
    return Row(
        "length",
        f"{label}: turns 19-20 vs 1-2 (turns 9-10: {middle * 1e3:.3g} ms)",
        last * 1e3,
        "ms/step",
        first * 1e3,
        last / first,
        target,
    )


def bench_length(args) -> list[Row]:
    episodes = sized(args, 40, 10, 2)
    rows = []
    cases = [
        ("RLHF-Chat-v0", {}, "select, rubric"),
        ("RLHF-ChatText-v0", {}, "text, rubric + fluency"),
        (
            "RLHF-ChatTokens-v0",
            {"kl_coef": 0.1},
            "tokens, rubric + fluency, kl_coef=0.1 (per token)",
        ),
    ]
    for env_id, kwargs, label in cases:
        n = max(2, episodes // 4) if "Tokens" in env_id else episodes
        rows.append(
            length_row(
                f"{env_id} ({label})", turn_costs(env_id, n, **kwargs), f"<= {LENGTH_TARGET}"
            )
        )
    for name, model in learned_models(args).items():
        costs = turn_costs("RLHF-Chat-v0", sized(args, 10, 4, 2), reward=model)
        rows.append(length_row(f"RLHF-Chat-v0 (select, learned {name})", costs))
    return rows


# Sections that make tokens or text envs, which need the reference LM.
LM_SECTIONS = {"env", "kl", "memory", "length"}
SECTIONS = {
    "env": bench_env,
    "ppo": bench_ppo,
    "learned-rm": bench_learned_rm,
    "kl": bench_kl,
    "memory": bench_memory,
    "length": bench_length,
}


def fmt(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, from {', '.join(SECTIONS)}",
    )
    level = parser.add_mutually_exclusive_group()
    level.add_argument("--quick", action="store_true", help="fewer steps (noisier figures)")
    level.add_argument(
        "--smoke",
        action="store_true",
        help="the fewest steps that run every case once: checks the command, not the figures",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--out", default="results/bench", help="folder for benchmarks.csv and run.json"
    )
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    torch.set_num_threads(args.threads)
    import stable_baselines3

    # Every section uses seed 0 (env resets, action sampling, PPO): the figures are timings.
    command = ["python", "benchmarks/suite.py", *(sys.argv[1:] if argv is None else argv)]
    record = RunRecord(command_line(command), seeds={"seed": 0})
    header = (
        f"python {platform.python_version()}, "
        f"torch {torch.__version__} ({args.threads} thread(s)), "
        f"gymnasium {gym.__version__}, stable-baselines3 {stable_baselines3.__version__}, "
        f"rlhf-envs {rlhf_envs.__version__}, {platform.machine()}"
    )
    print(f"{record.describe()}\ntorch threads: {args.threads}, {platform.machine()}\n", flush=True)
    if LM_SECTIONS & set(sections):
        # The tokens and text ids need the reference LM: build it now, as a step of its
        # own, so no section times (or silently waits for) a build.
        from rlhf_envs.lm.build import LMBuildConfig, default_lm_path

        t = time.perf_counter()
        print(
            f"## reference LM (needed by {', '.join(s for s in sections if s in LM_SECTIONS)})",
            flush=True,
        )
        path = default_lm_path()
        print(
            f"{path} ready in {time.perf_counter() - t:.0f} s "
            f"(a build runs on {LMBuildConfig.threads} torch threads)\n",
            flush=True,
        )
    rows: list[Row] = []
    for section in sections:
        t = time.perf_counter()
        found = SECTIONS[section](args)
        rows.extend(found)
        print(f"## {section} ({time.perf_counter() - t:.0f} s)\n")
        print(
            "| case | value | unit | reference | ratio | target | met |\n"
            "|---|---|---|---|---|---|---|"
        )
        for r in found:
            print(
                f"| {r.case} | {fmt(r.value)} | {r.unit} | {fmt(r.reference)} | "
                f"{'' if r.ratio is None else f'{r.ratio:.3g}'} | {r.target} | {r.met()} |"
            )
        print(flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "benchmarks.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[*asdict(rows[0]).keys(), "met"])
        writer.writeheader()
        for r in rows:
            writer.writerow({**asdict(r), "met": r.met()})
    record.write(
        out / "run.json",
        sections=sections,
        quick=args.quick,
        smoke=args.smoke,
        threads=args.threads,
        environment=header,
        seconds=round(time.time() - record.started),
        peak_rss_mb_of_suite=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    print(
        f"wrote {out / 'benchmarks.csv'} ({len(rows)} rows) in {time.time() - record.started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
