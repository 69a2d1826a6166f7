"""Best-of-n: sample n replies from the reference LM, send the one a reward model likes best.

A strong baseline that needs no RL: its gain over n = 1 (plain sampling from the
reference) shows how much a reward model can buy at inference time, and its gold reward
shows whether optimising the proxy that hard over-optimises it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rlhf_envs.dialogue import format_transcript
from rlhf_envs.interfaces.tokens import DEFAULT_CONTEXT_LENGTH, resolve_lm
from rlhf_envs.lm.reference import ReferenceLM
from rlhf_envs.rewards.protocol import Exchange
from rlhf_envs.rewards.registry import RewardSpec, make_reward_model
from rlhf_envs.words import stable_hash


class BestOfNAgent:
    """Each turn: n samples from the reference LM, scored by ``reward``, best one sent.

    Works on the tokens interface (the chosen reply is then emitted token by token) and
    on the text interface (sent as a string). On the select interface the env's K
    proposals are the candidates (``n`` is not used and no LM is needed): the agent picks
    the proposal the reward model scores highest, which shows what greedy optimisation of
    that reward model, with no learning, achieves. The LM reads the same window as the tokens
    interface: the dialogue's last ``context_length - max_reply_tokens`` tokens.

    Args:
        n: samples per turn (1 = sampling from the reference LM).
        reward: the reward spec that picks (a proxy: a rubric persona, ``learned:PATH``).
        lm: the reference LM (default: the env's, or the project's).
        context_length, max_reply_tokens: as the tokens interface (default: its default).
        seed: sampling seed (combined with the transcript, so episodes are reproducible).
    """

    def __init__(
        self,
        n: int,
        reward: RewardSpec = "rubric",
        lm: str | ReferenceLM | None = None,
        context_length: int | None = None,
        max_reply_tokens: int = 40,
        seed: int = 0,
    ):
        if int(n) < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        self.n = int(n)
        self.reward_model = make_reward_model(reward)
        self._lm = lm
        self.context_length, self.max_reply_tokens, self.seed = (
            context_length,
            max_reply_tokens,
            seed,
        )
        self._queue: list[int] = []
        self.last_scores: np.ndarray | None = None

    def reset(self) -> None:
        """Start of an episode: drop what is left of a reply cut off by the step limit."""
        self._queue = []

    def _lm_for(self, env: gym.Env) -> ReferenceLM:
        if self._lm is None or not isinstance(self._lm, ReferenceLM):
            self._lm = getattr(env.unwrapped, "reference_lm", None) or resolve_lm(self._lm)
        return self._lm

    def choose(self, env: gym.Env) -> tuple[str, list[int]]:
        """The best of n sampled replies to the env's current state, and its token ids."""
        lm = self._lm_for(env)
        state = env.unwrapped.state
        length = self.context_length or min(DEFAULT_CONTEXT_LENGTH, lm.max_positions)
        context = lm.prompt_ids(state.history, length - self.max_reply_tokens)
        seed = stable_hash(format_transcript(state.history), self.seed)
        samples = lm.sample(context, self.n, self.max_reply_tokens, seed=seed)
        replies = [lm.reply_text(s) for s in samples]
        exchanges = [
            Exchange(scenario=state.scenario, history=state.history, reply=r, state=state)
            for r in replies
        ]
        self.last_scores = self.reward_model.score(exchanges)
        best = int(np.argmax(self.last_scores))
        return replies[best], samples[best]

    def choose_proposal(self, env: gym.Env) -> int:
        """Select interface: the index of the proposal the reward model scores highest."""
        state = env.unwrapped.state
        exchanges = [
            Exchange(scenario=state.scenario, history=state.history, reply=c.text, state=state)
            for c in env.unwrapped.interface.candidates
        ]
        self.last_scores = self.reward_model.score(exchanges)
        return int(np.argmax(self.last_scores))

    def act(self, obs: Any, env: gym.Env) -> Any:
        if env.unwrapped.interface.name == "select":
            return self.choose_proposal(env)
        if isinstance(env.action_space, gym.spaces.Text):
            reply, _ = self.choose(env)
            return reply or "..."
        if not self._queue:
            _, tokens = self.choose(env)
            eot = self._lm_for(env).eot_id
            # A sample cut at the length cap ends the turn without end-of-turn.
            done = (tokens and tokens[-1] == eot) or len(tokens) >= self.max_reply_tokens
            self._queue = list(tokens) if done else list(tokens) + [eot]
        return self._queue.pop(0)
