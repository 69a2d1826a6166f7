"""Tests for the permutation-equivariant candidate policies (agents/candidate_policy.py).

A tiny synthetic env with the select interface's observation layout stands in for the
dialogue env: each episode has a hidden context (one of a few prototypes, visible through
noisy ``dialogue``/``last_turn`` encodings); every step one candidate is a noisy copy of
that context's answer direction and the others are noisy answers of *other* contexts, so a
candidate can only be judged in the context of the dialogue. Reward is 1 for picking the
good one.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.env_util import make_vec_env

from rlhf_agents.candidate_policy import (
    OBS_KEYS,
    CandidateActorCriticPolicy,
    CandidateFeaturesExtractor,
    CandidateQNetwork,
    CandidateQPolicy,
    candidate_layout,
)

K, D, S = 4, 32, 3


@pytest.fixture(autouse=True)
def _one_thread():
    # Two CPU cores are shared with other jobs; one thread is also the fastest here.
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)


class ToySelectEnv(gym.Env):
    """Select-interface toy: pick the candidate that answers the episode's context.

    Args:
        n_candidates: ``K``.
        dim: ``D``.
        n_stats: ``S`` (the stats are uninformative noise).
        n_contexts: number of hidden contexts (and answer directions).
        episode_length: steps per episode.
        noise: std of the Gaussian noise added to every encoding.
        layout_seed: seed of the fixed context and answer directions.
    """

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(
        self,
        n_candidates: int = K,
        dim: int = D,
        n_stats: int = S,
        n_contexts: int = 8,
        episode_length: int = 4,
        noise: float = 0.5,
        layout_seed: int = 0,
    ) -> None:
        self.n_candidates, self.dim, self.n_stats = n_candidates, dim, n_stats
        self.n_contexts, self.episode_length, self.noise = n_contexts, episode_length, noise
        rng = np.random.default_rng(layout_seed)
        self._context_dirs = rng.uniform(-0.8, 0.8, (n_contexts, dim))
        self._answer_dirs = rng.uniform(-0.8, 0.8, (n_contexts, dim))

        def box(size: int, low: float = -1.0) -> spaces.Box:
            return spaces.Box(low, 1.0, (size,), np.float32)

        self.observation_space = spaces.Dict(
            {
                "dialogue": box(dim),
                "last_turn": box(dim),
                "candidates": box(n_candidates * dim),
                "candidate_stats": box(n_candidates * n_stats, 0.0),
                "turn": box(1, 0.0),
            }
        )
        self.action_space = spaces.Discrete(n_candidates)
        self._context = 0
        self._t = 0
        self.good = 0

    def _observe(self) -> dict[str, np.ndarray]:
        rng = self.np_random
        context = self._context_dirs[self._context]
        others = [i for i in range(self.n_contexts) if i != self._context]
        answers = np.concatenate(
            [[self._context], rng.choice(others, self.n_candidates - 1, replace=False)]
        )
        rows = self._answer_dirs[answers] + rng.normal(
            0.0, self.noise, (self.n_candidates, self.dim)
        )
        order = rng.permutation(self.n_candidates)
        self.good = int(np.argmin(order))  # where row 0 (the good answer) lands
        rows = rows[order]

        def enc(x: np.ndarray) -> np.ndarray:
            return np.clip(x, -1.0, 1.0).astype(np.float32)

        return {
            "dialogue": enc(context + rng.normal(0.0, self.noise, self.dim)),
            "last_turn": enc(0.5 * context + rng.normal(0.0, self.noise, self.dim)),
            "candidates": enc(rows).reshape(-1),
            "candidate_stats": rng.uniform(0.0, 1.0, self.n_candidates * self.n_stats).astype(
                np.float32
            ),
            "turn": np.array([self._t / self.episode_length], dtype=np.float32),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._context = int(self.np_random.integers(self.n_contexts))
        self._t = 0
        return self._observe(), {}

    def step(self, action):
        correct = int(action) == self.good
        self._t += 1
        terminated = self._t >= self.episode_length
        return self._observe(), float(correct), terminated, False, {"correct": correct}


def _constant_lr(_: float) -> float:
    return 3e-4


def _obs_batch(n: int = 8, seed: int = 0) -> dict[str, th.Tensor]:
    env = ToySelectEnv()
    env.reset(seed=seed)
    rows = [env._observe() for _ in range(n)]
    return {key: th.as_tensor(np.stack([r[key] for r in rows])) for key in OBS_KEYS}


def _permute(obs: dict[str, th.Tensor], perm: th.Tensor) -> dict[str, th.Tensor]:
    """Reorder the candidates (and their stats): new slot j holds old candidate perm[j]."""
    batch = obs["candidates"].shape[0]
    out = dict(obs)
    out["candidates"] = obs["candidates"].reshape(batch, K, D)[:, perm].reshape(batch, K * D)
    out["candidate_stats"] = (
        obs["candidate_stats"].reshape(batch, K, S)[:, perm].reshape(batch, K * S)
    )
    return out


def _accuracy(model, n_steps: int = 400, seed: int = 12345) -> float:
    env = ToySelectEnv()
    obs, _ = env.reset(seed=seed)
    hits = 0.0
    for _ in range(n_steps):
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(action)
        hits += reward
        if terminated or truncated:
            obs, _ = env.reset()
    return hits / n_steps


# --- the toy itself ------------------------------------------------------------------------


def test_toy_env_passes_check_env():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning is a bug in the toy
        check_env(ToySelectEnv())


# --- candidate_layout ----------------------------------------------------------------------


def _spaces(**overrides) -> spaces.Dict:
    base = dict(ToySelectEnv().observation_space.spaces)
    for key, value in overrides.items():
        if value is None:
            del base[key]
        else:
            base[key] = value
    return spaces.Dict(base)


def test_candidate_layout_reads_k_d_s():
    env = ToySelectEnv()
    assert candidate_layout(env.observation_space, env.action_space) == (K, D, S)
    extra = _spaces(action_mask=spaces.Box(0, 1, (K,), np.int8))
    assert candidate_layout(extra, spaces.Discrete(K)) == (K, D, S)
    other = ToySelectEnv(n_candidates=6, dim=16, n_stats=2)
    assert candidate_layout(other.observation_space, other.action_space) == (6, 16, 2)


@pytest.mark.parametrize(
    "obs_space, action_space, match",
    [
        (_spaces(), spaces.Box(-1, 1, (K,)), "action_space must be gymnasium.spaces.Discrete"),
        (_spaces(), spaces.Discrete(K, start=1), "must start at 0"),
        (spaces.Box(-1, 1, (10,)), spaces.Discrete(K), "must be a gymnasium.spaces.Dict"),
        (_spaces(candidates=None), spaces.Discrete(K), r"missing key\(s\) \['candidates'\]"),
        (_spaces(turn=None), spaces.Discrete(K), r"missing key\(s\) \['turn'\]"),
        (_spaces(), spaces.Discrete(K + 1), r"'candidates'\] must have shape \(K\*D,\)"),
        (
            _spaces(candidate_stats=spaces.Box(0, 1, (K * S + 1,), np.float32)),
            spaces.Discrete(K),
            "is not a multiple of K=4",
        ),
        (
            _spaces(last_turn=spaces.Box(-1, 1, (D + 1,), np.float32)),
            spaces.Discrete(K),
            "same shape as 'dialogue'",
        ),
        (
            _spaces(turn=spaces.Box(0, 1, (2,), np.float32)),
            spaces.Discrete(K),
            r"'turn'\] must have shape \(1,\)",
        ),
        (
            _spaces(dialogue=spaces.Box(-1, 1, (4, 8), np.float32)),
            spaces.Discrete(K),
            "must be flat",
        ),
        (_spaces(turn=spaces.Discrete(5)), spaces.Discrete(K), "must be a gymnasium.spaces.Box"),
    ],
)
def test_candidate_layout_rejects_wrong_spaces(obs_space, action_space, match):
    with pytest.raises(ValueError, match=match) as info:
        candidate_layout(obs_space, action_space)
    if "observation_space" in str(info.value) and "start" not in str(info.value):
        assert "expected a spaces.Dict" in str(info.value)  # says what layout is expected


def test_policies_reject_wrong_spaces_at_construction():
    with pytest.raises(ValueError, match="missing key"):
        CandidateActorCriticPolicy(_spaces(dialogue=None), spaces.Discrete(K), _constant_lr)
    with pytest.raises(ValueError, match="multiple of K"):
        CandidateQPolicy(
            _spaces(candidate_stats=spaces.Box(0, 1, (5,), np.float32)),
            spaces.Discrete(K),
            _constant_lr,
        )


# --- equivariance and invariance -----------------------------------------------------------


def _actor_critic_policy(**kwargs) -> CandidateActorCriticPolicy:
    env = ToySelectEnv()
    th.manual_seed(0)
    # A large output gain so the scores are far from uniform and the test can fail.
    kwargs.setdefault("score_init_gain", 3.0)
    return CandidateActorCriticPolicy(
        env.observation_space, env.action_space, _constant_lr, **kwargs
    )


@pytest.mark.parametrize("share_features_extractor", [True, False])
def test_actor_critic_is_equivariant_and_value_invariant(share_features_extractor):
    policy = _actor_critic_policy(share_features_extractor=share_features_extractor)
    obs = _obs_batch()
    perm = th.tensor([2, 0, 3, 1])
    with th.no_grad():
        probs = policy.get_distribution(obs).distribution.probs
        probs_perm = policy.get_distribution(_permute(obs, perm)).distribution.probs
        values = policy.predict_values(obs)
        values_perm = policy.predict_values(_permute(obs, perm))
        actions = th.randint(0, K, (obs["turn"].shape[0],))
        # Action j on the permuted obs picks old candidate perm[j].
        v1, logp1, ent1 = policy.evaluate_actions(obs, perm[actions])
        v2, logp2, ent2 = policy.evaluate_actions(_permute(obs, perm), actions)
    assert probs.max() > 0.5, "scores too close to uniform for the test to mean anything"
    assert th.allclose(probs_perm, probs[:, perm], atol=1e-6)
    assert th.allclose(values_perm, values, atol=1e-6)
    assert th.allclose(logp1, logp2, atol=1e-6)
    assert th.allclose(ent1, ent2, atol=1e-6)
    assert th.allclose(v1, v2, atol=1e-6) and th.allclose(v1, values, atol=1e-6)


def test_actor_critic_logits_are_the_scores():
    policy = _actor_critic_policy()
    assert isinstance(policy.action_net, th.nn.Identity)
    obs = _obs_batch()
    with th.no_grad():
        scores, _ = policy.pi_features_extractor.scorer(obs)
        dist = policy.get_distribution(obs).distribution
        actions, values, log_prob = policy(obs)
    assert th.allclose(policy.candidate_scores(obs), scores)
    assert th.allclose(dist.logits, th.log_softmax(scores, dim=-1), atol=1e-6)
    assert actions.shape == (8,) and values.shape == (8, 1) and log_prob.shape == (8,)


def test_actor_critic_starts_near_uniform_by_default():
    env = ToySelectEnv()
    policy = CandidateActorCriticPolicy(env.observation_space, env.action_space, _constant_lr)
    with th.no_grad():
        probs = policy.get_distribution(_obs_batch()).distribution.probs
    assert th.allclose(probs, th.full_like(probs, 1.0 / K), atol=0.02)


def test_q_values_are_equivariant():
    env = ToySelectEnv()
    th.manual_seed(0)
    policy = CandidateQPolicy(env.observation_space, env.action_space, _constant_lr)
    assert isinstance(policy.q_net, CandidateQNetwork)
    assert isinstance(policy.q_net.features_extractor, CandidateFeaturesExtractor)
    obs = _obs_batch()
    perm = th.tensor([3, 1, 0, 2])
    with th.no_grad():
        for net in (policy.q_net, policy.q_net_target):
            q = net(obs)
            q_perm = net(_permute(obs, perm))
            assert q.shape == (8, K)
            assert q.std() > 1e-3
            assert th.allclose(q_perm, q[:, perm], atol=1e-6)
        # Greedy actions follow the candidates.
        assert th.equal(perm[policy._predict(_permute(obs, perm))], policy._predict(obs))
    # Online and target networks are separate copies with equal weights.
    online, target = policy.q_net.state_dict(), policy.q_net_target.state_dict()
    assert online.keys() == target.keys()
    assert all(th.equal(online[k], target[k]) for k in online)
    assert policy.q_net.features_extractor is not policy.q_net_target.features_extractor


# --- learning ------------------------------------------------------------------------------


@pytest.mark.integration
def test_ppo_learns_the_toy_task():
    venv = make_vec_env(ToySelectEnv, n_envs=4, seed=0)
    model = PPO(
        CandidateActorCriticPolicy,
        venv,
        n_steps=128,
        batch_size=128,
        n_epochs=4,
        learning_rate=1e-3,
        seed=0,
        device="cpu",
    )
    assert _accuracy(model) < 0.5  # the untrained policy is near chance (0.25)
    model.learn(16_000)
    # Seeds 0-7 reach 0.945-0.995 with this budget (a flat MultiInputPolicy: ~0.3).
    assert _accuracy(model) >= 0.9


@pytest.mark.integration
def test_dqn_learns_above_chance():
    model = DQN(
        CandidateQPolicy,
        ToySelectEnv(),
        learning_starts=500,
        buffer_size=10_000,
        learning_rate=1e-3,
        batch_size=64,
        train_freq=4,
        target_update_interval=250,
        exploration_fraction=0.3,
        exploration_final_eps=0.05,
        seed=0,
        device="cpu",
    )
    model.learn(3_000)
    # Chance is 1/K = 0.25; seeds 0-3 reach 0.67-0.71 with this budget.
    assert _accuracy(model) >= 0.45


# --- plumbing ------------------------------------------------------------------------------


def test_a2c_runs_with_policy_kwargs():
    model = A2C(
        CandidateActorCriticPolicy,
        make_vec_env(ToySelectEnv, n_envs=2, seed=1),
        n_steps=8,
        seed=1,
        device="cpu",
        policy_kwargs={
            "hidden_size": 32,
            "value_net_arch": [16, 16],
            "share_features_extractor": False,
        },
    )
    model.learn(320)
    policy = model.policy
    assert policy.pi_features_extractor.scorer.hidden_size == 32
    assert policy.vf_features_extractor is not policy.pi_features_extractor
    assert policy.mlp_extractor.latent_dim_vf == 16
    assert model.num_timesteps >= 320


def _greedy_actions(model, obs: dict[str, th.Tensor]) -> np.ndarray:
    actions, _ = model.predict({k: v.numpy() for k, v in obs.items()}, deterministic=True)
    return actions


def test_ppo_save_load_round_trip(tmp_path):
    model = PPO(
        CandidateActorCriticPolicy,
        make_vec_env(ToySelectEnv, n_envs=2, seed=2),
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        seed=2,
        device="cpu",
        policy_kwargs={"hidden_size": 48, "score_init_gain": 1.0},
    )
    model.learn(128)
    obs = _obs_batch(16, seed=5)
    model.save(tmp_path / "ppo_candidate")
    loaded = PPO.load(tmp_path / "ppo_candidate", device="cpu")
    assert isinstance(loaded.policy, CandidateActorCriticPolicy)
    assert loaded.policy.hidden_size == 48
    np.testing.assert_array_equal(
        _greedy_actions(model, obs),
        _greedy_actions(loaded, obs),
    )
    with th.no_grad():
        assert th.equal(loaded.policy.predict_values(obs), model.policy.predict_values(obs))
        assert th.equal(loaded.policy.candidate_scores(obs), model.policy.candidate_scores(obs))

    # The policy alone (BaseModel.save / load) rebuilds from _get_constructor_parameters.
    model.policy.save(str(tmp_path / "policy.pt"))
    alone = CandidateActorCriticPolicy.load(str(tmp_path / "policy.pt"), device="cpu")
    with th.no_grad():
        assert th.equal(alone.candidate_scores(obs), model.policy.candidate_scores(obs))
        assert th.equal(alone.predict_values(obs), model.policy.predict_values(obs))


def test_dqn_save_load_round_trip(tmp_path):
    model = DQN(
        CandidateQPolicy,
        ToySelectEnv(),
        learning_starts=50,
        buffer_size=1_000,
        train_freq=4,
        seed=3,
        device="cpu",
        policy_kwargs={"hidden_size": 32},
    )
    model.learn(200)
    obs = _obs_batch(16, seed=6)
    model.save(tmp_path / "dqn_candidate")
    loaded = DQN.load(tmp_path / "dqn_candidate", device="cpu")
    assert isinstance(loaded.policy, CandidateQPolicy)
    with th.no_grad():
        assert th.equal(loaded.q_net(obs), model.q_net(obs))
        assert th.equal(loaded.q_net_target(obs), model.q_net_target(obs))
    np.testing.assert_array_equal(
        _greedy_actions(model, obs),
        _greedy_actions(loaded, obs),
    )

    model.policy.save(str(tmp_path / "qpolicy.pt"))
    alone = CandidateQPolicy.load(str(tmp_path / "qpolicy.pt"), device="cpu")
    with th.no_grad():
        assert th.equal(alone.q_net(obs), model.q_net(obs))
