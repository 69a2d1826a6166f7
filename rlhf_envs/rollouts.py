"""Multi-turn rollouts of a language-model policy, token-exact, batched over conversations.

For LM trainers (TRL's GRPO through ``rollout_func``, or your own loop): the policy
writes every agent turn, the env plays the user and the system, and what comes back is
what the model actually saw and produced.

- :func:`play_episodes`: whole conversations of a ``RLHF-*Text-v0`` or
  ``RLHF-*Tokens-v0`` id, one per seed, stepped together in the native vector env (one
  batched sampling call per turn, one batched reward-model call). Each
  :class:`EpisodeRollout` holds the episode's token ids, a mask that is 1 exactly on the
  model's own tokens, the sampling log-probability of each of them, and per agent turn
  the prompt window, the reply's ids, the reply text the env received, the env's reward
  and the gold reward. ``best_of=n`` plays best-of-n instead (n samples per turn, the
  env's reward model picks).
- :func:`sample_reply_groups`: GRPO's unit. For each seed, the policy plays the
  conversation up to a turn (the *trunk*), then writes ``group_size`` replies to that
  same dialogue state; each is scored by the env's reward model. The replies of a group
  differ only in the reply, so their rewards compare like with like.

Token-exactness: the env's turns are encoded once, as they arrive
(:mod:`rlhf_envs.lm.chat_format`); the model's replies are kept as sampled, with their
stop token. Nothing is decoded and encoded again. Each prompt is a left-cut window of the
episode's id history: its last ``context_length - max_reply_tokens`` ids, ending with the
reply prefix (``"Agent:"`` or a chat template's assistant header).

The sample unit is the agent turn, not the episode: expert conversations run 180-560
tokens and a policy's up to 20 turns, longer than the reference LM's 256 positions; a
reply is judged by the env turn by turn, so a per-reply sample gets its own reward and
a group baseline drawn from the same state, instead of one return for 20 replies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlhf_envs.dialogue import MAX_TURNS, format_transcript
from rlhf_envs.interfaces.text import REPLY_CHARSET, UNKNOWN_CHARACTER
from rlhf_envs.interfaces.tokens import DEFAULT_CONTEXT_LENGTH
from rlhf_envs.lm.chat_format import TurnFormat, turn_format
from rlhf_envs.lm.reference import quiet_transformers
from rlhf_envs.lm.sampling import sample_replies
from rlhf_envs.rewards.protocol import Exchange
from rlhf_envs.vector import DialogueVectorEnv

ROLLOUT_INTERFACES = ("text", "tokens")


class LMPolicy:
    """A causal LM that writes replies: model, tokenizer, turn format, sampling settings.

    Args:
        model: a ``transformers`` causal LM (the one being trained: rollouts use it in
            evaluation mode and put its training mode back).
        tokenizer: its tokenizer.
        chat_template: use the tokenizer's chat template (default: if it has one).
        max_reply_tokens: the length cap of a reply.
        context_length: prompt window + reply, at most the model's positions (default
            256, or the model's positions if fewer).
        temperature: the sampling temperature.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        chat_template: bool | None = None,
        max_reply_tokens: int = 40,
        context_length: int | None = None,
        temperature: float = 1.0,
    ):
        self.model, self.tokenizer = model, tokenizer
        self.format: TurnFormat = turn_format(tokenizer, chat_template)
        positions = int(
            getattr(model.config, "n_positions", 0)
            or getattr(model.config, "max_position_embeddings", 0)
            or DEFAULT_CONTEXT_LENGTH
        )
        self.context_length = int(context_length or min(DEFAULT_CONTEXT_LENGTH, positions))
        self.max_reply_tokens = int(max_reply_tokens)
        if self.context_length > positions:
            raise ValueError(
                f"context_length {self.context_length} is longer than the model reads "
                f"({positions} positions)"
            )
        if not 1 <= self.max_reply_tokens <= self.context_length - 16:
            raise ValueError(
                f"max_reply_tokens must be 1 to context_length - 16 = "
                f"{self.context_length - 16}, got {max_reply_tokens}"
            )
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else tokenizer.eos_token_id)

    @classmethod
    def from_folder(cls, path: str | Path, **kwargs: Any) -> LMPolicy:
        """Load a Hugging Face causal LM folder (safetensors only) as a policy."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(path).expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise ValueError(f"{folder} is not a causal LM folder (no config.json)")
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                folder, local_files_only=True, use_safetensors=True
            )
        model.eval()
        return cls(model, tokenizer, **kwargs)

    @property
    def prompt_budget(self) -> int:
        """The longest prompt window: the context minus room for a reply."""
        return self.context_length - self.max_reply_tokens

    def sample(self, prompts: Sequence[Sequence[int]], generator: torch.Generator) -> list[Any]:
        """One reply per prompt (see :func:`rlhf_envs.lm.sampling.sample_replies`)."""
        was_training = self.model.training
        self.model.eval()
        try:
            return sample_replies(
                self.model,
                prompts,
                self.max_reply_tokens,
                self.format.stop_ids,
                self.pad_id,
                self.temperature,
                generator,
            )
        finally:
            self.model.train(was_training)

    def reply_text(self, ids: Sequence[int]) -> str:
        """The text a reply's ids spell (stop and special tokens dropped, stripped)."""
        kept = [i for i in ids if i not in self.format.stop_ids]
        return str(self.tokenizer.decode(kept, skip_special_tokens=True)).strip()


@dataclass
class AgentTurn:
    """One reply of the policy in an episode.

    Attributes:
        turn: its index among the agent's turns (0 first).
        reply_start: where the reply's ids start in the episode's ``token_ids``.
        prompt_ids: the window the model read: ``token_ids[reply_start - len(prompt_ids)
            : reply_start]``.
        reply_ids: the ids it produced (``token_ids[reply_start : reply_start +
            len(reply_ids)]``), the stop token included when one was drawn.
        logprobs: the sampling log-probability of each reply id.
        reply: the text the env received: the decoded ids (tokens ids: exactly; text ids:
            characters outside the text interface's charset shown as ``?``).
        reward: the env's reward for the reply (the training reward).
        gold: the gold reward; components: the reward model's parts.
    """

    turn: int
    reply_start: int
    prompt_ids: list[int]
    reply_ids: list[int]
    logprobs: list[float]
    reply: str
    reward: float = 0.0
    gold: float = 0.0
    components: dict[str, float] = field(default_factory=dict)


@dataclass
class EpisodeRollout:
    """One conversation as the policy saw and wrote it.

    Attributes:
        seed: the env seed of the episode.
        token_ids: the whole episode in the policy's format.
        agent_mask: 1 exactly on the ids the model produced, 0 on the env's turns and on
            format ids the model did not sample (reply prefix, a closing end-of-turn).
        logprobs: the sampling log-probability on agent ids, 0 elsewhere.
        turns: the agent's turns.
        success, terminated, truncated: how it ended (truncated: ``max_turns`` reached).
        transcript: the conversation as the env recorded it, ``Role: text`` lines.
    """

    seed: int
    token_ids: list[int] = field(default_factory=list)
    agent_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turns: list[AgentTurn] = field(default_factory=list)
    success: bool = False
    terminated: bool = False
    truncated: bool = False
    transcript: str = ""

    @property
    def rewards(self) -> list[float]:
        """The env's reward of each agent turn."""
        return [t.reward for t in self.turns]

    @property
    def gold(self) -> float:
        """The episode's gold reward (sum over turns)."""
        return float(sum(t.gold for t in self.turns))

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated

    def extend(self, ids: Sequence[int], agent: bool, logprobs: Sequence[float] = ()) -> None:
        self.token_ids.extend(int(i) for i in ids)
        self.agent_mask.extend([int(agent)] * len(ids))
        self.logprobs.extend(list(logprobs) if agent else [0.0] * len(ids))


@dataclass
class ReplyGroup:
    """``group_size`` replies of the policy to one dialogue state (GRPO's group).

    Attributes:
        seed: the env seed; turn: the agent turn answered (0 first).
        prompt_ids: the window every reply was sampled after.
        replies: one :class:`AgentTurn` per reply, scored.
        trunk: the leader's episode: the policy's trunk replies, then reply 0.
        returns, gold_returns: per reply, its env (gold) reward plus those of the next
            ``horizon`` agent turns the policy played after it in that copy of the
            conversation (:func:`sample_reply_groups`); with horizon 0, its own rewards.
    """

    seed: int
    turn: int
    prompt_ids: list[int]
    replies: list[AgentTurn]
    trunk: EpisodeRollout
    returns: list[float] = field(default_factory=list)
    gold_returns: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.returns = self.returns or [r.reward for r in self.replies]
        self.gold_returns = self.gold_returns or [r.gold for r in self.replies]


def rollout_env_kwargs(env_id: str, env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The env's ``make`` arguments, checked: a registered text or tokens id.

    Raises:
        ValueError: the id is not registered or has another interface.
    """
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        raise ValueError(
            f"{env_id!r} is not a registered env id ({exc}); LM rollouts need a text or "
            "tokens id such as RLHF-ChatText-v0 or RLHF-FinanceTokens-v0"
        ) from None
    kwargs = {**spec.kwargs, **(env_kwargs or {})}
    if kwargs.get("interface") not in ROLLOUT_INTERFACES:
        raise ValueError(
            f"{env_id} has the {kwargs.get('interface')!r} interface; LM rollouts need a "
            "text or tokens id (RLHF-*Text-v0, RLHF-*Tokens-v0)"
        )
    return kwargs


class _Conversations:
    """Sub-envs of one vector env, each with its token-exact id history."""

    def __init__(
        self,
        policy: LMPolicy,
        env_id: str,
        seeds: Sequence[int],
        env_kwargs: dict[str, Any] | None,
    ):
        kwargs = rollout_env_kwargs(env_id, env_kwargs)
        self.policy = policy
        self.venv = DialogueVectorEnv(num_envs=len(seeds), max_episode_steps=None, **kwargs)
        self.interface = kwargs["interface"]
        if self.interface == "tokens":
            lm = self.venv.envs[0].reference_lm
            assert lm is not None  # (the tokens interface always has its LM)
            if policy.format.name != "role-text" or len(policy.tokenizer) != len(lm.tokenizer):
                raise ValueError(
                    f"{env_id} acts in the vocabulary of its reference LM ({lm.path}); the "
                    "policy must use that tokenizer and the Role: text format (a text id takes "
                    "any LM)"
                )
            cap = int(getattr(self.venv.envs[0].interface, "max_reply_tokens", 0))
            if policy.max_reply_tokens > cap:
                raise ValueError(
                    f"the policy's max_reply_tokens {policy.max_reply_tokens} exceeds the env's "
                    f"reply cap {cap}"
                )
        self.venv.reset(seed=[int(s) for s in seeds])
        self.episodes = [EpisodeRollout(seed=int(s)) for s in seeds]
        for episode, env in zip(self.episodes, self.venv.envs, strict=True):
            assert env.state is not None
            opening = [(t.role, t.text) for t in env.state.history]
            episode.extend(policy.format.start_ids(opening), agent=False)
        self._seen_turns = [len(env.state.history) for env in self.venv.envs if env.state]

    def prompt(self, i: int) -> list[int]:
        """The window sub-env ``i``'s next reply is sampled after (prefix appended)."""
        episode = self.episodes[i]
        ids = episode.token_ids + self.policy.format.reply_prefix
        return ids[-self.policy.prompt_budget :]

    def exchange(self, i: int, reply: str) -> Exchange:
        state = self.venv.envs[i].state
        assert state is not None
        return Exchange(scenario=state.scenario, history=state.history, reply=reply, state=state)

    def env_reply(self, ids: Sequence[int]) -> Any:
        """What the env gets for a reply: its ids (tokens), or its text made acceptable
        to the text interface (characters outside the charset shown as ``?``)."""
        if self.interface == "tokens":
            return list(ids)
        text = self.policy.reply_text(ids)
        text = "".join(c if c in REPLY_CHARSET else UNKNOWN_CHARACTER for c in text)
        limit = int(getattr(self.venv.envs[0].interface, "max_reply_chars", len(text)))
        return text[:limit].strip() or "..."

    def send(
        self, chosen: dict[int, tuple[Any, list[float]]], score: Sequence[bool] | None = None
    ) -> dict[int, AgentTurn]:
        """Send each sub-env ``i`` in ``chosen`` its reply (sampled ids, log-probs), append
        the reply and the env's answer to its id history; the new agent turns."""
        replies: list[Any] = [None] * len(self.episodes)
        for i, (ids, _) in chosen.items():
            replies[i] = self.env_reply(ids)
        results = self.venv.step_replies(replies, score)
        turns: dict[int, AgentTurn] = {}
        fmt = self.policy.format
        for i, (ids, logprobs) in chosen.items():
            result = results[i]
            assert result is not None
            _, reward, terminated, _, info = result
            episode = self.episodes[i]
            prompt = self.prompt(i)
            episode.extend(fmt.reply_prefix, agent=False)
            turn = AgentTurn(
                turn=len(episode.turns),
                reply_start=len(episode.token_ids),
                prompt_ids=prompt,
                reply_ids=list(ids),
                logprobs=list(logprobs),
                reply=str(info["reply"]),
                reward=float(reward),
                gold=float(info["gold_reward"]),
                components=dict(info.get("reward_components", {})),
            )
            episode.extend(ids, agent=True, logprobs=logprobs)
            stopped = bool(ids) and ids[-1] in fmt.stop_ids
            episode.extend(fmt.after_stop if stopped else fmt.close_cut + fmt.after_stop, False)
            env = self.venv.envs[i]
            assert env.state is not None
            history = env.state.history
            # The env's turns after the reply: the user's answer and any system lines.
            for t in history[self._seen_turns[i] + 1 :]:
                episode.extend(fmt.turn_ids(t.role, t.text), agent=False)
            self._seen_turns[i] = len(history)
            episode.turns.append(turn)
            episode.success = bool(info["success"])
            episode.terminated = bool(terminated)
            turns[i] = turn
        return turns

    def finish(self, max_turns: int) -> list[EpisodeRollout]:
        for episode, env in zip(self.episodes, self.venv.envs, strict=True):
            episode.truncated = not episode.terminated and len(episode.turns) >= max_turns
            episode.transcript = format_transcript(env.state.history) if env.state else ""
        return self.episodes


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) % (2**63))


def play_episodes(
    policy: LMPolicy,
    env_id: str,
    seeds: Sequence[int],
    env_kwargs: dict[str, Any] | None = None,
    best_of: int = 1,
    seed: int = 0,
    max_turns: int = MAX_TURNS,
) -> list[EpisodeRollout]:
    """Play one whole conversation per seed, all at once, the policy writing every reply.

    Args:
        policy: the LM policy.
        env_id: a registered text or tokens id.
        seeds: the env seed of each episode.
        env_kwargs: ``gymnasium.make`` arguments (``reward``, ``gold``, ...).
        best_of: n > 1 samples n replies per turn and sends the one the env's reward
            model scores highest (best-of-n; its ids and log-probs are kept).
        seed: the sampling seed (with ``seeds``, the episodes are reproducible).
        max_turns: agent turns after which a conversation is truncated.

    Returns:
        one :class:`EpisodeRollout` per seed, in order.
    """
    if best_of < 1:
        raise ValueError(f"best_of must be at least 1, got {best_of}")
    talks = _Conversations(policy, env_id, seeds, env_kwargs)
    generator = _generator(seed * 1_000_003 + (int(seeds[0]) if seeds else 0))
    for _ in range(max_turns):
        active = [i for i, e in enumerate(talks.episodes) if not e.terminated]
        if not active:
            break
        prompts = [talks.prompt(i) for i in active for _ in range(best_of)]
        samples = policy.sample(prompts, generator)
        chosen: dict[int, tuple[Any, list[float]]] = {}
        for k, i in enumerate(active):
            options = samples[k * best_of : (k + 1) * best_of]
            pick = 0
            if best_of > 1:
                exchanges = [
                    talks.exchange(i, _as_text(talks.env_reply(s.ids), s.ids, policy))
                    for s in options
                ]
                pick = int(np.argmax(talks.venv.reward_model.score(exchanges)))
            chosen[i] = (options[pick].ids, options[pick].logprobs)
        talks.send(chosen)
    return talks.finish(max_turns)


def _as_text(reply: Any, ids: Sequence[int], policy: LMPolicy) -> str:
    return reply if isinstance(reply, str) else policy.reply_text(ids)


def sample_reply_groups(
    policy: LMPolicy,
    env_id: str,
    seeds: Sequence[int],
    group_size: int,
    env_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    max_turns: int = MAX_TURNS,
    horizon: int = 0,
) -> list[ReplyGroup]:
    """For each seed, ``group_size`` scored replies of the policy to one dialogue state.

    The policy plays the conversation (one trunk per seed, all batched) up to an agent
    turn drawn uniformly from 0 to ``max_turns - 1``, or to its last turn if it ends
    earlier. Copies of the conversation replay the trunk's replies (unscored) to reach
    the same state, and ``group_size`` replies sampled after that state's window (the
    trunk's own reply among them when it ended early) are scored by the env's reward
    model in one batch. With ``horizon`` h > 0 each copy goes on for h more agent turns
    written by the policy, and a reply's return adds their rewards: a reply that moves
    the task on is credited with what it makes possible, one that stalls it with what
    it costs (the reply-level reward alone cannot see progress).

    Returns:
        one :class:`ReplyGroup` per seed, in order.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    if horizon < 0:
        raise ValueError(f"horizon must be at least 0, got {horizon}")
    seeds = [int(s) for s in seeds]
    n, size = len(seeds), int(group_size)
    generator = _generator(seed * 1_000_003 + (seeds[0] if seeds else 0))
    branch_at = np.random.default_rng([seed, *seeds]).integers(0, max_turns, size=n)
    # Sub-env g * size + c is copy c of group g; copy 0 (the leader) plays the trunk.
    talks = _Conversations(policy, env_id, [s for s in seeds for _ in range(size)], env_kwargs)
    groups: dict[int, ReplyGroup] = {}
    for turn in range(max_turns):
        open_groups = [g for g in range(n) if g not in groups]
        if not open_groups:
            break
        trunk = [g for g in open_groups if branch_at[g] != turn]
        plan = [(g, size) for g in open_groups if branch_at[g] == turn]
        if trunk:
            samples = policy.sample([talks.prompt(g * size) for g in trunk], generator)
            talks.send({g * size: (s.ids, s.logprobs) for g, s in zip(trunk, samples, strict=True)})
            # A trunk that ended answers at its last turn: its reply and size - 1 more.
            plan += [(g, size - 1) for g in trunk if talks.episodes[g * size].terminated]
        groups.update(_branch(talks, plan, turn, size, generator))
    for _ in range(horizon):
        going = [
            i for i, e in enumerate(talks.episodes) if not e.terminated and len(e.turns) < MAX_TURNS
        ]
        if not going:
            break
        samples = policy.sample([talks.prompt(i) for i in going], generator)
        turns = talks.send({i: (s.ids, s.logprobs) for i, s in zip(going, samples, strict=True)})
        for i, later in turns.items():
            group = groups[i // size]
            group.returns[i % size] += later.reward
            group.gold_returns[i % size] += later.gold
    return [groups[g] for g in range(n)]


def _branch(
    talks: _Conversations,
    plan: list[tuple[int, int]],
    turn: int,
    size: int,
    generator: torch.Generator,
) -> dict[int, ReplyGroup]:
    """Complete the groups of ``plan`` (group, replies still to sample) at agent turn
    ``turn``: copies replay the leader's first ``turn`` replies, then answer."""
    if not plan:
        return {}
    for j in range(turn):
        replay: dict[int, tuple[Any, list[float]]] = {}
        for g, _ in plan:
            done = talks.episodes[g * size].turns[j]
            for c in range(1, size):
                replay[g * size + c] = (done.reply_ids, done.logprobs)
        talks.send(replay, score=[False] * len(talks.episodes))
    prompts, targets = [], []
    for g, missing in plan:
        leader = talks.episodes[g * size]
        window = leader.turns[turn].prompt_ids if missing < size else talks.prompt(g * size)
        for c in range(size - missing, size):
            if c > 0 and talks.prompt(g * size + c) != window:
                raise RuntimeError("a replayed copy reached another state than its trunk")
            prompts.append(window)
            targets.append(g * size + c)
    samples = talks.policy.sample(prompts, generator)
    turns = talks.send({i: (s.ids, s.logprobs) for i, s in zip(targets, samples, strict=True)})
    out = {}
    for g, _ in plan:
        leader = talks.episodes[g * size]
        replies = [leader.turns[turn]] + [turns[g * size + c] for c in range(1, size)]
        out[g] = ReplyGroup(
            seed=leader.seed,
            turn=turn,
            prompt_ids=replies[0].prompt_ids,
            replies=replies,
            trunk=leader,
        )
    return out
