"""An SB3 policy whose actor is a causal language model: RLHF with Stable-Baselines3's PPO.

For ``RLHF-ChatTokens-v0``: the actor is a trainable copy of the reference LM (the
next-token distribution at the last position of the observed window), the critic a
value head on the LM's last hidden state. SB3's ``PPO`` (and sb3-contrib's
``MaskablePPO`` with :class:`MaskableLMActorCriticPolicy`) train it unchanged::

    from stable_baselines3 import PPO
    from rlhf_agents.lm_policy import KLPenaltyCallback, LMActorCriticPolicy

    env = make_sb3_vec_env("RLHF-ChatTokens-v0", n_envs=4, env_kwargs={"kl_coef": 0.1})
    model = PPO(LMActorCriticPolicy, env, gamma=1.0, learning_rate=1e-4,
                policy_kwargs={"lm": env.get_attr("reference_lm")[0].path})
    model.learn(20_000, callback=KLPenaltyCallback())

KL regularisation: the env adds ``beta * log pi_ref(token)`` to each token's reward;
:class:`KLPenaltyCallback` adds the policy's own ``-beta * log pi(token)`` as the rollout
is collected, so the return PPO maximises is exactly ``R - beta * sum(log pi - log
pi_ref)``, and logs the mean KL. (SB3's ``ent_coef`` would only approximate this: it
enters the loss, not the return.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from rlhf_envs.lm.reference import position_ids, quiet_transformers

VALUE_HEAD_FILE = "value_head.safetensors"
POLICY_FILE = "lm_policy.json"


class _ScaledLinear(nn.Linear):
    """A linear layer whose output is multiplied by ``scale`` (weights initialised
    ``1/scale`` smaller): with Adam this trains it ``scale`` times faster than the LM,
    which SB3's single learning rate cannot do with parameter groups."""

    def __init__(self, n_in: int, n_out: int, scale: float):
        super().__init__(n_in, n_out)
        self.scale = scale
        with torch.no_grad():
            self.weight.div_(scale)
            self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.scale


class _CausalLMCore:
    """What both policy classes share: the LM actor, the value head, saving."""

    def _build(self, lr_schedule) -> None:  # called by ActorCriticPolicy.__init__
        from transformers import AutoModelForCausalLM

        if self.lm_path is None:
            raise ValueError("the LM policy needs policy_kwargs={'lm': <reference LM folder>}")
        folder = Path(self.lm_path)
        # A fresh load is the trainable copy; the env keeps its own frozen reference.
        with quiet_transformers():
            self.lm = AutoModelForCausalLM.from_pretrained(
                folder, local_files_only=True, use_safetensors=True
            )
        self.lm.requires_grad_(True)
        width = self.lm.config.hidden_size
        self.value_head = nn.Sequential(
            nn.Linear(width, 64), nn.Tanh(), _ScaledLinear(64, 1, self.value_scale)
        )
        vocab = self.lm.get_output_embeddings().weight.shape[0]
        if vocab != self.action_space.n:
            raise ValueError(
                f"the LM in {folder} has {vocab} tokens "
                f"but the env's action space is Discrete({self.action_space.n})"
            )
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _run(self, obs) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-token logits and state values of a batch of left-padded observation windows."""
        ids = obs["input_ids"].long()
        mask = obs["attention_mask"].long()
        if self.share_prefixes:
            hidden = _last_hidden_shared(self.lm.base_model, ids, mask)
        else:
            out = self.lm.base_model(
                input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)
            )
            hidden = out.last_hidden_state[:, -1]
        logits = self.lm.get_output_embeddings()(hidden)  # only where an action is taken
        if self.detach_value:
            hidden = hidden.detach()
        return logits.float(), self.value_head(hidden)

    def predict_values(self, obs) -> torch.Tensor:
        return self._run(obs)[1]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            lm=self.lm_path,
            detach_value=self.detach_value,
            value_scale=self.value_scale,
            share_prefixes=self.share_prefixes,
        )
        return data

    def save_pretrained(self, folder: str | Path) -> Path:
        """Save the tuned LM as a Hugging Face folder (loadable as a reference LM, e.g.
        for best-of-n or as ``lm=`` of another env) plus the value head; safetensors only."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.lm.save_pretrained(folder, safe_serialization=True)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (Path(self.lm_path) / name).is_file():
                shutil.copy(Path(self.lm_path) / name, folder / name)
        save_file(
            {k: v.contiguous() for k, v in self.value_head.state_dict().items()},
            folder / VALUE_HEAD_FILE,
        )
        (folder / POLICY_FILE).write_text(
            json.dumps({"base_lm": str(self.lm_path), "value_scale": self.value_scale}) + "\n"
        )
        return folder

    def load_value_head(self, folder: str | Path) -> None:
        self.value_head.load_state_dict(load_file(Path(folder) / VALUE_HEAD_FILE))


def _init_core(policy, lm, detach_value, value_scale, share_prefixes) -> None:
    policy.lm_path = None if lm is None else str(Path(lm).expanduser().resolve())
    policy.share_prefixes = bool(share_prefixes)
    policy.detach_value = bool(detach_value)
    policy.value_scale = float(value_scale)


def _prefix_groups(
    ids: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group left-padded windows that are prefixes of one another.

    Returns ``(group, aligned, lengths)``: ``group[i]`` is the index of the longest
    window that window ``i`` is a prefix of (lowest index among equals), ``aligned`` the
    windows left-aligned (real tokens first, then zeros), ``lengths`` their real lengths.
    """
    batch, width = ids.shape
    lengths = mask.sum(1)
    # Real tokens first, in order: a stable sort on "is padding".
    order = torch.argsort(1 - mask, dim=1, stable=True)
    aligned = ids.gather(1, order) * mask.gather(1, order)
    inside = torch.arange(width, device=ids.device)[None, :] < lengths[:, None]
    # covers[i, j]: window i is a prefix of window j (in row blocks to bound memory).
    covers = torch.cat(
        [
            ((aligned[rows, None, :] == aligned[None, :, :]) | ~inside[rows, None, :]).all(-1)
            for rows in torch.arange(batch, device=ids.device).split(256)
        ]
    ) & (lengths[:, None] <= lengths[None, :])
    index = torch.arange(batch, device=ids.device)
    score = torch.where(covers, lengths[None, :] * (batch + 1) + (batch - index)[None, :], -1)
    return score.argmax(1), aligned, lengths


def _last_hidden_shared(
    transformer: nn.Module, ids: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The last position's hidden state of each left-padded window, running the
    transformer once per group of windows that are prefixes of one another.

    A PPO minibatch holds many tokens of the same reply, and the window of token t of a
    reply is the window of token t-1 plus that token (the tokens interface never slides
    the window mid-reply). A causal LM's hidden state at a position depends only on
    the tokens up to it, so one forward pass of the longest window of a group serves
    every window in it, exactly. Windows run left-aligned (right padding cannot change
    earlier positions under a causal mask) and cut to the longest one.
    """
    group, aligned, lengths = _prefix_groups(ids, mask)
    leaders, slot = torch.unique(group, return_inverse=True)
    longest = int(lengths.max().clamp(min=1))
    lead_ids = aligned[leaders, :longest]
    lead_mask = (torch.arange(longest, device=ids.device)[None, :] < lengths[leaders, None]).long()
    hidden = transformer(input_ids=lead_ids, attention_mask=lead_mask).last_hidden_state
    return hidden[slot, (lengths - 1).clamp(min=0)]


class LMActorCriticPolicy(_CausalLMCore, ActorCriticPolicy):
    """Actor: a trainable copy of a causal LM; critic: a value head on its last hidden state.

    Observation: the tokens interface's ``Dict`` (``input_ids``, ``attention_mask``,
    left-padded). Action: the next token.

    Args (``policy_kwargs``):
        lm: folder of the LM to start from (the env's reference LM:
            ``env.unwrapped.reference_lm.path``).
        detach_value: the value loss does not train the LM (default ``True``: keeps the
            actor a language model while the critic learns).
        value_scale: how many times faster the value head learns than the LM.
        share_prefixes: run the LM once per group of windows that are prefixes of one
            another (the tokens of one reply), which gives the same outputs several times
            faster on PPO minibatches; ``False`` runs every window.
    """

    def __init__(
        self,
        observation_space,
        action_space,
        lr_schedule,
        lm: str | None = None,
        detach_value: bool = True,
        value_scale: float = 10.0,
        share_prefixes: bool = True,
        **kwargs,
    ):
        _init_core(self, lm, detach_value, value_scale, share_prefixes)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
        self.action_dist = CategoricalDistribution(action_space.n)

    def forward(self, obs, deterministic: bool = False):
        logits, values = self._run(obs)
        dist = self.action_dist.proba_distribution(action_logits=logits)
        actions = dist.get_actions(deterministic=deterministic)
        return actions, values, dist.log_prob(actions)

    def evaluate_actions(self, obs, actions):
        logits, values = self._run(obs)
        dist = self.action_dist.proba_distribution(action_logits=logits)
        return values, dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs):
        return self.action_dist.proba_distribution(action_logits=self._run(obs)[0])


class MaskableLMActorCriticPolicy(_CausalLMCore, MaskableActorCriticPolicy):
    """:class:`LMActorCriticPolicy` for sb3-contrib's ``MaskablePPO``: the env's
    ``action_masks()`` (padding and special tokens) are applied to the LM's logits."""

    def __init__(
        self,
        observation_space,
        action_space,
        lr_schedule,
        lm: str | None = None,
        detach_value: bool = True,
        value_scale: float = 10.0,
        share_prefixes: bool = True,
        **kwargs,
    ):
        _init_core(self, lm, detach_value, value_scale, share_prefixes)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
        self.action_dist = MaskableCategoricalDistribution(action_space.n)

    def _dist(self, logits, action_masks):
        dist = self.action_dist.proba_distribution(action_logits=logits)
        if action_masks is not None:
            dist.apply_masking(action_masks)
        return dist

    def forward(self, obs, deterministic: bool = False, action_masks=None):
        logits, values = self._run(obs)
        dist = self._dist(logits, action_masks)
        actions = dist.get_actions(deterministic=deterministic)
        return actions, values, dist.log_prob(actions)

    def evaluate_actions(self, obs, actions, action_masks=None):
        logits, values = self._run(obs)
        dist = self._dist(logits, action_masks)
        return values, dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs, action_masks=None):
        return self._dist(self._run(obs)[0], action_masks)


class KLPenaltyCallback(BaseCallback):
    """Makes PPO's return the KL-regularised one and logs the KL to the reference.

    At each rollout step it subtracts ``beta * log pi(token)`` (the policy's own
    log-probability of the token it sampled, known only to the agent) from the reward,
    where the env has already added ``beta * log pi_ref(token)``; beta is the env's
    ``kl_coef``. With ``gamma=1`` the return of a reply is then ``R - beta * sum(log pi
    - log pi_ref)``. Logs ``rollout/kl_per_token`` (mean of ``log pi - log pi_ref``
    over the rollout's tokens) and ``rollout/kl_per_episode``.

    With ``reply_horizon=True`` (the default) returns also stop at the end of each reply,
    as in single-turn RLHF: the reward model already judges a reply in its context, and
    a return over the rest of the conversation mostly adds variance (and rewards
    ending the conversation early). The hook does it by marking each reply's last step
    as done in the rollout, so GAE does not bootstrap across replies; place callbacks
    that count episodes from ``dones`` before this one.

    Args:
        kl_coef: beta; ``None`` reads it from the env (``kl_coef`` attribute).
        reply_horizon: cut returns at the end of each reply.
    """

    def __init__(self, kl_coef: float | None = None, reply_horizon: bool = True, verbose: int = 0):
        super().__init__(verbose)
        self.kl_coef = kl_coef
        self.reply_horizon = reply_horizon
        self.history: list[float] = []  # mean KL per token of each rollout

    def _on_training_start(self) -> None:
        if self.kl_coef is None:
            self.kl_coef = float(self.training_env.get_attr("kl_coef")[0])
        self._reset_sums()

    def _reset_sums(self) -> None:
        self._kl_sum, self._tokens, self._episodes = 0.0, 0, 0

    def _on_step(self) -> bool:
        rewards = self.locals["rewards"]
        log_probs = self.locals["log_probs"].detach().cpu().numpy().reshape(-1)
        for i, info in enumerate(self.locals["infos"]):
            ref = info.get("ref_logprob")
            if ref is None:
                continue
            rewards[i] -= self.kl_coef * float(log_probs[i])
            self._kl_sum += float(log_probs[i]) - float(ref)
            self._tokens += 1
        dones = self.locals["dones"]
        self._episodes += int(np.sum(dones))
        if self.reply_horizon:
            for i, info in enumerate(self.locals["infos"]):
                if "reply" in info:  # the last token of a reply
                    dones[i] = True
        return True

    def _on_rollout_end(self) -> None:
        if self._tokens:
            kl = self._kl_sum / self._tokens
            self.history.append(kl)
            self.logger.record("rollout/kl_per_token", kl)
            if self._episodes:
                self.logger.record("rollout/kl_per_episode", self._kl_sum / self._episodes)
        self._reset_sums()
