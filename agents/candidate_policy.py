"""Permutation-equivariant policies for the "select" interface.

In the select interface the env proposes ``K`` candidate replies each turn, in a random
order, and the action is the index of the reply the agent picks. A plain
``MultiInputPolicy`` flattens everything into one vector, so it has to learn what a good
reply looks like separately for every slot: a lesson learned about slot 0 does not carry
to slot 3. Because the order is random, that is both wasteful and slow.

The policies here use one shared network, :class:`CandidateScorer`, that scores each
candidate in the context of the dialogue. The action head reads those per-candidate scores
directly (logits = scores for PPO/A2C, Q-values = scores for DQN), so the policy is
*equivariant*: permuting the candidates (and their stats) permutes the action
distribution, exactly. The value function reads a summary pooled over candidates (mean and
max), so it is *invariant* to their order.

Public names:

* :func:`candidate_layout` reads ``(K, D, S)`` from the spaces and checks them.
* :class:`CandidateScorer` is the shared scorer (a plain ``nn.Module``).
* :class:`CandidateFeaturesExtractor` wraps it for stable-baselines3.
* :class:`CandidateActorCriticPolicy` is for ``PPO`` and ``A2C``,
  :class:`MaskableCandidateActorCriticPolicy` for sb3-contrib's ``MaskablePPO``.
* :class:`CandidateQNetwork` and :class:`CandidateQPolicy` are for ``DQN``.

Example::

    from stable_baselines3 import PPO
    from rlhf_agents.candidate_policy import CandidateActorCriticPolicy

    model = PPO(CandidateActorCriticPolicy, env, policy_kwargs=dict(hidden_size=64))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

__all__ = [
    "OBS_KEYS",
    "CandidateActorCriticPolicy",
    "CandidateFeaturesExtractor",
    "CandidateQNetwork",
    "CandidateQPolicy",
    "CandidateScorer",
    "candidate_layout",
]

#: Keys of the select interface's observation, in the order they are documented.
OBS_KEYS: tuple[str, ...] = ("dialogue", "last_turn", "candidates", "candidate_stats", "turn")

_EXPECTED_LAYOUT = (
    "expected a spaces.Dict with flat float Boxes 'dialogue' (D,), 'last_turn' (D,), "
    "'candidates' (K*D,), 'candidate_stats' (K*S,) and 'turn' (1,), with K = action_space.n"
)


def _flat_box(observation_space: spaces.Dict, key: str) -> spaces.Box:
    space = observation_space.spaces[key]
    if not isinstance(space, spaces.Box):
        raise ValueError(  # noqa: TRY004 (one exception type for every layout problem)
            f"observation_space[{key!r}] must be a gymnasium.spaces.Box, got {space!r}; "
            f"{_EXPECTED_LAYOUT}"
        )
    if len(space.shape) != 1:
        raise ValueError(
            f"observation_space[{key!r}] must be flat (1-D), got shape {space.shape}; "
            f"{_EXPECTED_LAYOUT}"
        )
    if not np.issubdtype(space.dtype, np.floating):
        raise ValueError(
            f"observation_space[{key!r}] must have a float dtype, got {space.dtype}; "
            f"{_EXPECTED_LAYOUT}"
        )
    return space


def candidate_layout(
    observation_space: spaces.Space, action_space: spaces.Space
) -> tuple[int, int, int]:
    """Read the candidate layout ``(K, D, S)`` of a select-interface env and check it.

    ``K`` is the number of candidates (``action_space.n``), ``D`` the size of one text
    encoding (``observation_space["dialogue"].shape[0]``) and ``S`` the number of numeric
    features per candidate (``candidate_stats`` size // ``K``). Keys other than
    :data:`OBS_KEYS` are allowed and ignored by the policies here.

    Args:
        observation_space: the env's observation space, a ``spaces.Dict``.
        action_space: the env's action space, a ``spaces.Discrete`` starting at 0.

    Returns:
        ``(K, D, S)``.

    Raises:
        ValueError: naming what is wrong (a missing key, a size that is not a multiple of
            ``K``, ...) and what layout is expected.
    """
    if not isinstance(action_space, spaces.Discrete):
        raise ValueError(  # noqa: TRY004 (one exception type for every layout problem)
            f"action_space must be gymnasium.spaces.Discrete(K) (the index of the chosen "
            f"candidate), got {action_space!r}"
        )
    if int(action_space.start) != 0:
        raise ValueError(
            f"action_space must start at 0 (action i picks candidate i), got "
            f"start={int(action_space.start)}"
        )
    n_candidates = int(action_space.n)
    if n_candidates < 1:
        raise ValueError(f"action_space must have at least one action, got n={n_candidates}")
    if not isinstance(observation_space, spaces.Dict):
        raise ValueError(  # noqa: TRY004 (one exception type for every layout problem)
            f"observation_space must be a gymnasium.spaces.Dict, got "
            f"{type(observation_space).__name__}; {_EXPECTED_LAYOUT}"
        )
    missing = [key for key in OBS_KEYS if key not in observation_space.spaces]
    if missing:
        raise ValueError(
            f"observation_space is missing key(s) {missing} (it has "
            f"{sorted(observation_space.spaces)}); {_EXPECTED_LAYOUT}"
        )
    boxes = {key: _flat_box(observation_space, key) for key in OBS_KEYS}

    obs_dim = boxes["dialogue"].shape[0]
    if obs_dim < 1:
        raise ValueError(f"observation_space['dialogue'] must not be empty; {_EXPECTED_LAYOUT}")
    if boxes["last_turn"].shape != (obs_dim,):
        raise ValueError(
            f"observation_space['last_turn'] must have the same shape as 'dialogue' "
            f"({obs_dim},), got {boxes['last_turn'].shape}; {_EXPECTED_LAYOUT}"
        )
    if boxes["candidates"].shape != (n_candidates * obs_dim,):
        raise ValueError(
            f"observation_space['candidates'] must have shape (K*D,) = "
            f"({n_candidates}*{obs_dim},) = ({n_candidates * obs_dim},) for K={n_candidates} "
            f"candidates of size D={obs_dim}, got {boxes['candidates'].shape}; "
            f"{_EXPECTED_LAYOUT}"
        )
    stats_size = boxes["candidate_stats"].shape[0]
    if stats_size % n_candidates != 0:
        raise ValueError(
            f"observation_space['candidate_stats'] size {stats_size} is not a multiple of "
            f"K={n_candidates} (it must be K*S for S features per candidate); "
            f"{_EXPECTED_LAYOUT}"
        )
    if boxes["turn"].shape != (1,):
        raise ValueError(
            f"observation_space['turn'] must have shape (1,), got {boxes['turn'].shape}; "
            f"{_EXPECTED_LAYOUT}"
        )
    return n_candidates, obs_dim, stats_size // n_candidates


def _orthogonal_init(module: nn.Module, gain: float) -> None:
    # SB3's PPO/A2C initialisation, applied here so the scorer is initialised the same way
    # whichever algorithm builds it.
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight, gain=gain)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class CandidateScorer(nn.Module):
    """One shared network that scores every candidate reply in the context of the dialogue.

    A context encoder turns ``dialogue``, ``last_turn`` and ``turn`` into a vector ``h``.
    Each candidate ``i`` is projected to ``c_i``; the candidate network then reads
    ``[c_i, candidate_stats_i, h, c_i * g(h)]`` (the elementwise product lets a small MLP
    express "this reply matches this context" directly) and outputs a hidden vector
    ``z_i`` and a scalar score. The same weights serve every slot, so scores are
    equivariant to the order of the candidates; the pooled summary
    ``[mean_i z_i, max_i z_i, h]`` is invariant to it.

    Args:
        n_candidates: ``K``, candidates per turn.
        obs_dim: ``D``, size of one text encoding.
        stats_dim: ``S``, numeric features per candidate (may be 0).
        hidden_size: width of every hidden layer.
        activation_fn: activation class used between layers.
        ortho_init: initialise the layers orthogonally (gain sqrt(2)) like SB3's PPO.
        score_init_gain: orthogonal gain of the score output layer when ``ortho_init``;
            a small value starts PPO near the uniform policy.
    """

    def __init__(
        self,
        n_candidates: int,
        obs_dim: int,
        stats_dim: int,
        hidden_size: int = 64,
        activation_fn: type[nn.Module] = nn.ReLU,
        ortho_init: bool = True,
        score_init_gain: float = 0.01,
    ) -> None:
        super().__init__()
        self.n_candidates = int(n_candidates)
        self.obs_dim = int(obs_dim)
        self.stats_dim = int(stats_dim)
        self.hidden_size = int(hidden_size)
        h = self.hidden_size
        self.context_net = nn.Sequential(
            nn.Linear(2 * self.obs_dim + 1, h), activation_fn(), nn.Linear(h, h), activation_fn()
        )
        self.candidate_proj = nn.Linear(self.obs_dim, h)
        self.context_proj = nn.Linear(h, h)
        self.candidate_net = nn.Sequential(
            nn.Linear(3 * h + self.stats_dim, h), activation_fn(), nn.Linear(h, h), activation_fn()
        )
        self.score_head = nn.Linear(h, 1)
        if ortho_init:
            self.apply(lambda m: _orthogonal_init(m, gain=float(np.sqrt(2))))
            _orthogonal_init(self.score_head, gain=score_init_gain)

    @property
    def summary_dim(self) -> int:
        """Size of the pooled summary: mean and max of the candidate vectors, plus ``h``."""
        return 3 * self.hidden_size

    def forward(self, obs: Mapping[str, th.Tensor]) -> tuple[th.Tensor, th.Tensor]:
        """Score the candidates.

        Args:
            obs: the observation dict, each value a float tensor of shape ``(batch, size)``.

        Returns:
            ``(scores, summary)``: scores of shape ``(batch, K)``, one per candidate in
            the order given, and a permutation-invariant summary ``(batch, summary_dim)``.
        """
        k, d, s = self.n_candidates, self.obs_dim, self.stats_dim
        batch = obs["dialogue"].shape[0]
        context = th.cat([obs["dialogue"], obs["last_turn"], obs["turn"]], dim=-1)
        h = self.context_net(context)
        c = self.candidate_proj(obs["candidates"].reshape(batch, k, d))
        stats = obs["candidate_stats"].reshape(batch, k, s)
        g = self.context_proj(h).unsqueeze(1)
        x = th.cat([c, stats, h.unsqueeze(1).expand(-1, k, -1), c * g], dim=-1)
        z = self.candidate_net(x)
        scores = self.score_head(z).squeeze(-1)
        summary = th.cat([z.mean(dim=1), z.amax(dim=1), h], dim=-1)
        return scores, summary


class CandidateFeaturesExtractor(BaseFeaturesExtractor):
    """A :class:`CandidateScorer` as an SB3 features extractor.

    Its output is the flat tensor ``[scores (K), summary]``: SB3 hands features extractor
    outputs around as one tensor, and the policies here split it again (the first ``K``
    columns are the scores).

    Args:
        observation_space: the select interface's observation space.
        n_candidates: ``K`` (the features extractor is not given the action space).
        hidden_size: width of the scorer's hidden layers.
        activation_fn: activation class of the scorer.
        ortho_init: initialise the scorer orthogonally.
        score_init_gain: gain of the scorer's output layer when ``ortho_init``.
        include_summary: append the pooled summary after the scores (the value function
            needs it; a Q-network does not).
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        n_candidates: int,
        hidden_size: int = 64,
        activation_fn: type[nn.Module] = nn.ReLU,
        ortho_init: bool = True,
        score_init_gain: float = 0.01,
        include_summary: bool = True,
    ) -> None:
        k, d, s = candidate_layout(observation_space, spaces.Discrete(n_candidates))
        scorer = CandidateScorer(
            k,
            d,
            s,
            hidden_size=hidden_size,
            activation_fn=activation_fn,
            ortho_init=ortho_init,
            score_init_gain=score_init_gain,
        )
        super().__init__(observation_space, k + (scorer.summary_dim if include_summary else 0))
        self.scorer = scorer
        self.n_candidates = k
        self.include_summary = include_summary

    def forward(self, observations: Mapping[str, th.Tensor]) -> th.Tensor:
        scores, summary = self.scorer(observations)
        if not self.include_summary:
            return scores
        return th.cat([scores, summary], dim=-1)


class _CandidateHeads(nn.Module):
    """Stands in for SB3's ``MlpExtractor``: scores to the actor, summary to the critic.

    The actor latent is the scores themselves (no layer that could mix slots); the critic
    latent is an MLP over the invariant summary.
    """

    def __init__(
        self,
        n_candidates: int,
        summary_dim: int,
        value_net_arch: Sequence[int],
        activation_fn: type[nn.Module],
    ) -> None:
        super().__init__()
        self.n_candidates = n_candidates
        layers: list[nn.Module] = []
        size = summary_dim
        for width in value_net_arch:
            layers += [nn.Linear(size, int(width)), activation_fn()]
            size = int(width)
        self.value_net = nn.Sequential(*layers)
        self.latent_dim_pi = n_candidates
        self.latent_dim_vf = size

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        return features[:, : self.n_candidates]

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        return self.value_net(features[:, self.n_candidates :])


class _CandidateActorCritic:
    """Actor-critic policy for PPO and A2C whose logits are the candidates' scores.

    Built on SB3's ``ActorCriticPolicy``: a :class:`CandidateFeaturesExtractor` computes
    ``[scores, summary]``, the actor latent is the scores and ``action_net`` is the
    identity, so the categorical logits are exactly the scores and the action distribution
    is equivariant to the candidates' order. The value is ``value_net(MLP(summary))``,
    invariant to that order. SB3's own ``forward``, ``evaluate_actions``,
    ``get_distribution``, ``predict_values`` and ``_predict`` are used unchanged.

    Use it as ``PPO(CandidateActorCriticPolicy, env, policy_kwargs=dict(...))``.

    Args:
        observation_space: the select interface's observation space (see
            :func:`candidate_layout`).
        action_space: ``Discrete(K)``.
        lr_schedule: learning-rate schedule (passed by the algorithm).
        hidden_size: width of the scorer's hidden layers.
        value_net_arch: hidden layer widths of the value MLP on the pooled summary.
        activation_fn: activation class of the scorer and the value MLP.
        ortho_init: orthogonal initialisation, as in SB3.
        score_init_gain: gain of the score output layer; small, so PPO starts near the
            uniform policy.
        share_features_extractor: share one scorer between actor and critic (``False``
            gives the critic its own scorer).
        normalize_images: passed to SB3 (no image keys here, so it has no effect).
        optimizer_class: optimizer class.
        optimizer_kwargs: optimizer keyword arguments besides the learning rate.
        use_sde: passed by PPO/A2C; must be ``False`` (actions are discrete).
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        hidden_size: int = 64,
        value_net_arch: Sequence[int] = (64,),
        activation_fn: type[nn.Module] = nn.ReLU,
        ortho_init: bool = True,
        score_init_gain: float = 0.01,
        share_features_extractor: bool = True,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        use_sde: bool = False,
    ) -> None:
        n_candidates, _, _ = candidate_layout(observation_space, action_space)
        if use_sde:
            raise ValueError(f"{type(self).__name__} has discrete actions; use_sde must be False")
        self.hidden_size = int(hidden_size)
        self.value_net_arch = [int(w) for w in value_net_arch]
        self.score_init_gain = float(score_init_gain)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=[],  # unused: _build_mlp_extractor below replaces SB3's MlpExtractor
            activation_fn=activation_fn,
            ortho_init=ortho_init,
            **self._base_kwargs,
            features_extractor_class=CandidateFeaturesExtractor,
            features_extractor_kwargs={
                "n_candidates": n_candidates,
                "hidden_size": self.hidden_size,
                "activation_fn": activation_fn,
                "ortho_init": ortho_init,
                "score_init_gain": self.score_init_gain,
                "include_summary": True,
            },
            share_features_extractor=share_features_extractor,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )

    def _build_mlp_extractor(self) -> None:
        extractor = self.pi_features_extractor
        assert isinstance(extractor, CandidateFeaturesExtractor)
        self.mlp_extractor = _CandidateHeads(
            extractor.n_candidates,
            extractor.scorer.summary_dim,
            self.value_net_arch,
            self.activation_fn,
        ).to(self.device)

    def _build(self, lr_schedule: Schedule) -> None:
        # Replaces ActorCriticPolicy._build, which would add a dense action_net
        # (Linear(latent_pi, K)) that mixes slots and breaks equivariance, and whose
        # orthogonal init would overwrite the scorer's small output gain.
        self._build_mlp_extractor()
        self.action_net = nn.Identity()
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        if self.ortho_init:
            # The scorer initialised itself (see CandidateScorer); only the heads are left.
            self.mlp_extractor.apply(lambda m: _orthogonal_init(m, gain=float(np.sqrt(2))))
            _orthogonal_init(self.value_net, gain=1.0)
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        # ActorCriticPolicy's version lists arguments this class does not take (net_arch,
        # log_std_init, features_extractor_class, ...) and omits share_features_extractor.
        data = BasePolicy._get_constructor_parameters(self)
        data.update(
            {
                "lr_schedule": self._dummy_schedule,
                "hidden_size": self.hidden_size,
                "value_net_arch": list(self.value_net_arch),
                "activation_fn": self.activation_fn,
                "ortho_init": self.ortho_init,
                "score_init_gain": self.score_init_gain,
                "share_features_extractor": self.share_features_extractor,
                "optimizer_class": self.optimizer_class,
                "optimizer_kwargs": self.optimizer_kwargs,
            }
        )
        return data

    def candidate_scores(self, obs: PyTorchObs) -> th.Tensor:
        """The action logits, one per candidate, shape ``(batch, K)``."""
        features = BasePolicy.extract_features(self, obs, self.pi_features_extractor)
        return self.mlp_extractor.forward_actor(features)


class CandidateActorCriticPolicy(_CandidateActorCritic, ActorCriticPolicy):
    __doc__ = _CandidateActorCritic.__doc__
    _base_kwargs: ClassVar[dict[str, Any]] = {"use_sde": False}


class MaskableCandidateActorCriticPolicy(_CandidateActorCritic, MaskableActorCriticPolicy):
    """:class:`CandidateActorCriticPolicy` for sb3-contrib's ``MaskablePPO``: the same
    scorer, and masked candidates (``env.action_masks()``) get probability zero.

    Use it as ``MaskablePPO(MaskableCandidateActorCriticPolicy, env)``; the arguments are
    those of :class:`CandidateActorCriticPolicy`.
    """

    _base_kwargs: ClassVar[dict[str, Any]] = {}


class CandidateQNetwork(QNetwork):
    """DQN's Q-network with one Q-value per candidate, from the shared scorer.

    ``features_extractor`` must be a :class:`CandidateFeaturesExtractor` without the
    summary, so its output is already the ``K`` Q-values; ``q_net`` is the identity.

    Args:
        observation_space: the select interface's observation space.
        action_space: ``Discrete(K)``.
        features_extractor: a ``CandidateFeaturesExtractor(include_summary=False)``.
        features_dim: its output size; must equal ``K``.
        net_arch: ignored (accepted because ``DQNPolicy`` passes it).
        activation_fn: ignored here (the scorer has its own).
        normalize_images: passed to SB3.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Discrete,
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
    ) -> None:
        if features_dim != int(action_space.n):
            raise ValueError(
                f"CandidateQNetwork needs one feature per candidate (features_dim == K = "
                f"{int(action_space.n)}), got features_dim={features_dim}; build the "
                f"extractor with include_summary=False"
            )
        super().__init__(
            observation_space,
            action_space,
            features_extractor=features_extractor,
            features_dim=features_dim,
            net_arch=[],
            activation_fn=activation_fn,
            normalize_images=normalize_images,
        )
        # QNetwork always builds a dense q_net (Linear(features_dim, K) with net_arch=[]),
        # which would mix slots; the scores are the Q-values as they are.
        self.q_net = nn.Identity()  # type: ignore[assignment]


class CandidateQPolicy(DQNPolicy):
    """DQN policy whose Q-values are the shared scorer's per-candidate scores.

    The online and target Q-networks are two :class:`CandidateQNetwork` built by SB3's own
    ``DQNPolicy._build`` (so target updates, ``_predict`` and exploration work
    unchanged); the Q-values are equivariant to the candidates' order.

    Use it as ``DQN(CandidateQPolicy, env, policy_kwargs=dict(...))``.

    Args:
        observation_space: the select interface's observation space.
        action_space: ``Discrete(K)``.
        lr_schedule: learning-rate schedule (passed by DQN).
        hidden_size: width of the scorer's hidden layers.
        activation_fn: activation class of the scorer.
        ortho_init: orthogonal initialisation of the scorer.
        score_init_gain: gain of the score (Q-value) output layer.
        normalize_images: passed to SB3 (no effect here).
        optimizer_class: optimizer class.
        optimizer_kwargs: optimizer keyword arguments besides the learning rate.
    """

    q_net: CandidateQNetwork
    q_net_target: CandidateQNetwork

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        hidden_size: int = 64,
        activation_fn: type[nn.Module] = nn.ReLU,
        ortho_init: bool = True,
        score_init_gain: float = 1.0,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        n_candidates, _, _ = candidate_layout(observation_space, action_space)
        self.hidden_size = int(hidden_size)
        self.ortho_init = bool(ortho_init)
        self.score_init_gain = float(score_init_gain)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=[],
            activation_fn=activation_fn,
            features_extractor_class=CandidateFeaturesExtractor,
            features_extractor_kwargs={
                "n_candidates": n_candidates,
                "hidden_size": self.hidden_size,
                "activation_fn": activation_fn,
                "ortho_init": self.ortho_init,
                "score_init_gain": self.score_init_gain,
                "include_summary": False,
            },
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )

    def make_q_net(self) -> CandidateQNetwork:
        # A fresh extractor (and scorer) per network, so q_net and q_net_target share no
        # weights, exactly as DQNPolicy.make_q_net does for QNetwork.
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return CandidateQNetwork(**net_args).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = BasePolicy._get_constructor_parameters(self)
        data.update(
            {
                "lr_schedule": self._dummy_schedule,
                "hidden_size": self.hidden_size,
                "activation_fn": self.net_args["activation_fn"],
                "ortho_init": self.ortho_init,
                "score_init_gain": self.score_init_gain,
                "optimizer_class": self.optimizer_class,
                "optimizer_kwargs": self.optimizer_kwargs,
            }
        )
        return data
