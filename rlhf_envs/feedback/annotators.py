"""Simulated annotators: preference pairs and ratings labelled by scripted raters.

Contexts come from rollouts of an env, played by a mix of behaviours so the data covers
what an RL agent will meet: the scripted expert, a random agent, and agents in between
(the expert's action with probability ``1 - epsilon``, else a random one; a stand-in for
partly trained policies, which ``behaviours`` can also supply as functions). At a turn,
two of the env's candidate replies in the same context form a pair.

An annotator scores both replies with a rubric persona and picks one through a
Bradley-Terry choice, ``P(a preferred) = sigmoid((r_a - r_b) / temperature)``, then flips
its answer with probability ``flip_rate`` (a slip, a misread). An annotator with a
``tie_strength`` ``nu > 0`` may also call a pair a tie, by Davidson's model (ties likeliest
when the replies are close). For a rating it adds
Gaussian noise to one reply's score and thresholds it (thumbs up above
``thumbs_threshold``; stars by ``star_cutpoints``). A panel mixes annotators of several
personas. Every pair records the noise-free gold margin (gold score of chosen minus
rejected) in its metadata, so the best accuracy a reward model can reach on the labels
(the "ceiling") can be measured. Everything is seeded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rlhf_envs.env_ids import check_env_id
from rlhf_envs.preference_data.records import RATING_SCALES, PreferencePair, Rating
from rlhf_envs.rewards.protocol import Exchange
from rlhf_envs.rewards.registry import RewardSpec, make_reward_model

Policy = Callable[[gym.Env, Any, np.random.Generator], Any]
"""A behaviour given as a function ``(env, observation, rng) -> action``."""


@dataclass(frozen=True)
class SimulatedAnnotator:
    """A scripted rater.

    Attributes:
        name: recorded in each label's metadata.
        persona: the rubric persona it judges by (``"rubric:<persona>"``): ``balanced``,
            ``stickler``, ``warm`` or ``busy``; or any reward spec.
        temperature: Bradley-Terry temperature T; lower is more decisive. Must be > 0.
        flip_rate: probability of reversing a choice, in ``[0, 0.5]``.
        rating_noise: standard deviation of the noise added to a score before rating it.
        thumbs_threshold: a noisy score above this is a thumbs up.
        star_cutpoints: four increasing scores separating 1..5 stars.
        tie_strength: Davidson's ``nu`` (>= 0): with ``z = (r_a - r_b) / temperature``,
            ``P(tie) = nu e^(-z/2) / (1 + e^-z + nu e^(-z/2))``. 0 (the default) never ties.
    """

    name: str = "balanced"
    persona: str = "balanced"
    temperature: float = 0.5
    flip_rate: float = 0.05
    rating_noise: float = 0.3
    thumbs_threshold: float = 0.0
    star_cutpoints: tuple[float, float, float, float] = (-2.0, -0.75, 0.0, 1.0)
    tie_strength: float = 0.0

    def __post_init__(self) -> None:
        if not (
            isinstance(self.tie_strength, (int, float))
            and 0 <= self.tie_strength
            and math.isfinite(self.tie_strength)
        ):
            raise ValueError(
                f"annotator {self.name!r}: tie_strength must be a finite number >= 0, "
                f"got {self.tie_strength!r}"
            )
        if not (
            isinstance(self.temperature, (int, float))
            and self.temperature > 0
            and math.isfinite(self.temperature)
        ):
            raise ValueError(
                f"annotator {self.name!r}: temperature must be a finite number > 0, "
                f"got {self.temperature!r}"
            )
        if not 0.0 <= self.flip_rate <= 0.5:
            raise ValueError(
                f"annotator {self.name!r}: flip_rate must be in [0, 0.5], got {self.flip_rate!r}"
            )
        if not self.rating_noise >= 0:
            raise ValueError(
                f"annotator {self.name!r}: rating_noise must be >= 0, got {self.rating_noise!r}"
            )
        cuts = tuple(self.star_cutpoints)
        if len(cuts) != 4 or any(b <= a for a, b in zip(cuts, cuts[1:], strict=False)):
            raise ValueError(
                f"annotator {self.name!r}: star_cutpoints must be 4 increasing numbers, "
                f"got {cuts!r}"
            )

    @property
    def reward_spec(self) -> str:
        """The reward spec this annotator scores with."""
        return (
            self.persona
            if ":" in self.persona or self.persona == "rubric"
            else f"rubric:{self.persona}"
        )

    def choose(self, score_a: float, score_b: float, rng: np.random.Generator) -> bool:
        """Whether reply a is preferred to reply b (Bradley-Terry choice, then a possible flip)."""
        z = (score_a - score_b) / self.temperature
        p_a = 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
        prefers_a = bool(rng.random() < p_a)
        if rng.random() < self.flip_rate:
            prefers_a = not prefers_a
        return prefers_a

    def judge(self, score_a: float, score_b: float, rng: np.random.Generator) -> str:
        """``"a"``, ``"b"`` or ``"tie"``: a tie by Davidson's model, else :meth:`choose`.

        Without ties (``tie_strength`` 0) this draws exactly what :meth:`choose` draws.
        """
        if self.tie_strength > 0:
            z = min(max((score_a - score_b) / self.temperature, -700.0), 700.0)
            tie = self.tie_strength * math.exp(-z / 2)
            if rng.random() < tie / (1.0 + math.exp(-z) + tie):
                return "tie"
        return "a" if self.choose(score_a, score_b, rng) else "b"

    def rate(self, score: float, scale: str, rng: np.random.Generator) -> int:
        """A rating of one reply on ``scale`` (``"thumbs"``: 0/1, ``"stars"``: 1-5)."""
        if scale not in RATING_SCALES:
            raise ValueError(
                f"unknown rating scale {scale!r}; accepted: {', '.join(RATING_SCALES)}"
            )
        noisy = score + self.rating_noise * float(rng.standard_normal())
        if scale == "thumbs":
            return int(noisy > self.thumbs_threshold)
        return 1 + int(np.searchsorted(np.asarray(self.star_cutpoints), noisy, side="right"))


DEFAULT_PANEL: tuple[tuple[SimulatedAnnotator, float], ...] = (
    (SimulatedAnnotator("balanced", "balanced"), 0.4),
    (SimulatedAnnotator("stickler", "stickler"), 0.2),
    (SimulatedAnnotator("warm", "warm"), 0.2),
    (SimulatedAnnotator("busy", "busy"), 0.2),
)
"""Four rubric personas; the balanced one (the gold rubric's) labels 40% of the data."""

DEFAULT_BEHAVIOURS: dict[str, tuple[float, float]] = {
    "expert": (0.0, 0.25),
    "partly_trained": (0.3, 0.3),
    "novice": (0.6, 0.25),
    "random": (1.0, 0.2),
}
"""Behaviour name -> (epsilon, share of episodes): the expert's action with probability
``1 - epsilon``, else a uniformly random one."""


@dataclass(frozen=True)
class Context:
    """A turn reached in a rollout: the exchange state and the candidate replies."""

    episode: int
    turn: int
    behaviour: str
    scenario: Any
    history: tuple
    state: Any
    candidates: tuple[str, ...]
    seed: int | None = None  # the env's reset seed for this episode

    def exchange(self, reply: str) -> Exchange:
        return Exchange(self.scenario, self.history, reply, self.state)

    def prompt(self) -> str:
        return self.exchange("").transcript()


class FeedbackCollector:
    """Draws contexts from env rollouts and has simulated annotators label them.

    Args:
        env: an env id (``"RLHF-Chat-v0"``) or a made env using the select interface.
        annotators: ``(annotator, weight)`` pairs; each label comes from one annotator
            drawn by weight.
        behaviours: name -> ``(epsilon, weight)`` or ``(policy function, weight)``.
        gold: the noise-free reward spec recorded as ``gold_margin``/``gold_score``.
        seed: seeds episodes, behaviours, pair choice and labels.
        env_kwargs: extra ``gymnasium.make`` arguments when ``env`` is an id.
    """

    def __init__(
        self,
        env: str | gym.Env = "RLHF-Chat-v0",
        annotators: Sequence[tuple[SimulatedAnnotator, float]] = DEFAULT_PANEL,
        behaviours: Mapping[str, tuple[float | Policy, float]] | None = None,
        gold: RewardSpec = "rubric",
        seed: int = 0,
        env_kwargs: Mapping[str, Any] | None = None,
    ):
        if isinstance(env, str):
            # Before making it: a text env would first build the reference LM.
            check_env_id(env, ("select",))
            env = gym.make(env, **dict(env_kwargs or {}))
        self.env = env
        base = self.env.unwrapped
        if not hasattr(base, "interface") or not hasattr(base.interface, "candidates"):
            raise ValueError(
                "the collector needs an rlhf-envs env with the select interface (candidate replies)"
            )
        self.annotators = _weighted(annotators, "annotators")
        names = [a.name for a, _ in self.annotators]
        if len(set(names)) != len(names):
            raise ValueError(f"annotator names must be unique, got {names}")
        self.behaviours = _weighted(
            [((name, how), w) for name, (how, w) in (behaviours or DEFAULT_BEHAVIOURS).items()],
            "behaviours",
        )
        for (_name, how), _w in self.behaviours:
            if not (callable(how) or (isinstance(how, (int, float)) and 0 <= how <= 1)):
                raise ValueError(
                    "a behaviour is an epsilon in [0, 1] or a function (env, obs, rng) -> action; "
                    f"got {how!r}"
                )
        self.gold = make_reward_model(gold)
        self._models = {a.name: make_reward_model(a.reward_spec) for a, _ in self.annotators}
        self.rng = np.random.default_rng(seed)
        self._episodes = (
            0  # episode ids stay unique across calls (the held-out split groups by them)
        )

    def contexts(self) -> Iterator[Context]:
        """Endless turns of seeded rollouts (each episode played by one behaviour)."""
        # (a DialogueEnv, checked in __init__; feedback sits below the env in the package's
        # layers, so its type is not named here)
        base: Any = self.env.unwrapped
        while True:
            episode = self._episodes
            self._episodes += 1
            name, how = _draw(self.behaviours, self.rng)
            seed = int(self.rng.integers(2**31))
            obs, _ = self.env.reset(seed=seed)
            turn = 0
            while True:
                state = base.state
                yield Context(
                    episode,
                    turn,
                    name,
                    state.scenario,
                    state.history,
                    state,
                    tuple(c.text for c in base.interface.candidates),
                    seed,
                )
                if callable(how):
                    action = how(self.env, obs, self.rng)
                elif self.rng.random() < how:
                    action = int(self.rng.integers(len(base.interface.candidates)))
                else:
                    action = base.expert_action()
                obs, _, terminated, truncated, _ = self.env.step(action)
                turn += 1
                if terminated or truncated:
                    break

    def preferences(self, n: int, progress: bool = True) -> list[PreferencePair]:
        """``n`` labelled pairs, one per visited turn (two distinct candidates there).

        Annotators with a ``tie_strength`` also label ties (``tie=True``; margins are then
        for the first reply over the second)."""
        from tqdm.auto import tqdm

        out: list[PreferencePair] = []
        with tqdm(total=n, desc="collect pairs", unit="pair", disable=not progress) as bar:
            for ctx in self.contexts():
                if len(out) >= n:
                    break
                if len(set(ctx.candidates)) < 2:
                    continue
                i, j = self.rng.choice(len(ctx.candidates), size=2, replace=False)
                a, b = ctx.candidates[i], ctx.candidates[j]
                if a == b:
                    continue
                annotator = _draw(self.annotators, self.rng)
                batch = (ctx.exchange(a), ctx.exchange(b))
                ra, rb = self._models[annotator.name].score(batch)
                ga, gb = self.gold.score(batch)
                verdict = annotator.judge(float(ra), float(rb), self.rng)
                chosen, rejected = (b, a) if verdict == "b" else (a, b)
                sign = -1.0 if verdict == "b" else 1.0
                out.append(
                    PreferencePair(
                        ctx.prompt(),
                        chosen,
                        rejected,
                        tie=verdict == "tie",
                        metadata={
                            "annotator": annotator.name,
                            "episode": ctx.episode,
                            "turn": ctx.turn,
                            "behaviour": ctx.behaviour,
                            "annotator_margin": round(sign * float(ra - rb), 6),
                            "gold_margin": round(sign * float(ga - gb), 6),
                        },
                    )
                )
                bar.update(1)
        return out

    def ratings(self, n: int, scale: str = "thumbs", progress: bool = True) -> list[Rating]:
        """``n`` ratings, one per visited turn, of a candidate drawn uniformly."""
        from tqdm.auto import tqdm

        if scale not in RATING_SCALES:
            raise ValueError(
                f"unknown rating scale {scale!r}; accepted: {', '.join(RATING_SCALES)}"
            )
        out: list[Rating] = []
        with tqdm(
            total=n, desc=f"collect {scale} ratings", unit="rating", disable=not progress
        ) as bar:
            for ctx in self.contexts():
                if len(out) >= n:
                    break
                reply = ctx.candidates[int(self.rng.integers(len(ctx.candidates)))]
                annotator = _draw(self.annotators, self.rng)
                batch = (ctx.exchange(reply),)
                score = float(self._models[annotator.name].score(batch)[0])
                label = annotator.rate(score, scale, self.rng)
                out.append(
                    Rating(
                        ctx.prompt(),
                        reply,
                        label,
                        scale,
                        {
                            "annotator": annotator.name,
                            "episode": ctx.episode,
                            "turn": ctx.turn,
                            "behaviour": ctx.behaviour,
                            "gold_score": round(float(self.gold.score(batch)[0]), 6),
                        },
                    )
                )
                bar.update(1)
        return out

    def close(self) -> None:
        self.env.close()


def _weighted(items: Sequence[tuple[Any, float]], what: str) -> list[tuple[Any, float]]:
    """``(item, probability)`` pairs from ``(item, weight)`` pairs, checked."""
    items = list(items)
    if not items:
        raise ValueError(f"{what}: give at least one (item, weight) pair")
    weights = np.array([w for _, w in items], dtype=float)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(
            f"{what}: weights must be finite, >= 0 and not all zero; got {weights.tolist()}"
        )
    return [(item, float(w)) for (item, _), w in zip(items, weights / weights.sum(), strict=True)]


def _draw(items: list[tuple[Any, float]], rng: np.random.Generator) -> Any:
    index = int(rng.choice(len(items), p=[w for _, w in items]))
    return items[index][0]


def parse_weights(text: str, what: str) -> dict[str, float]:
    """``"a=0.4,b=0.6"`` -> ``{"a": 0.4, "b": 0.6}`` (for command-line options)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value) if sep else 1.0
        except ValueError:
            raise ValueError(
                f"{what}: {part!r} is not NAME=WEIGHT (e.g. 'balanced=0.4,warm=0.6')"
            ) from None
    if not out:
        raise ValueError(f"{what}: empty; write NAME=WEIGHT pairs separated by commas")
    return out
