"""Every registered RLHF-* env: checkers, determinism, serialisation, random fuzzing."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import rlhf_envs  # noqa: F401
from rlhf_envs.rewards import RewardModelError
from rlhf_envs.simulation.candidates import Candidate

ENV_IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("RLHF-"))
# String-action ids (the text interface) are exempt from SB3's checker; checked by their
# spec, since making a text env needs the LM (test_text_ids_act_with_strings pins this).
SB3_IDS = [i for i in ENV_IDS if gym.spec(i).kwargs["interface"] != "text"]
# Warnings the checkers may raise that are justified for text envs: none so far.
ALLOWED_WARNINGS: tuple[str, ...] = ()


# Fixed valid replies for the text interface (the others take integer actions).
TEXT_REPLIES = (
    "Hello! I can help with that. Could you tell me your full name?",
    "Thanks. Let me check that for you.",
)


def _action(env, i: int):
    """A fixed valid action: candidate or token ``i``, or the i-th sample reply."""
    return (
        TEXT_REPLIES[i % len(TEXT_REPLIES)] if isinstance(env.action_space, gym.spaces.Text) else i
    )


def _finish_a_turn(env):
    """One agent turn (for the tokens interface an empty reply: end-of-turn at once)."""
    if env.unwrapped.interface.name == "tokens":
        return env.step(env.unwrapped.reference_lm.eot_id)
    return env.step(_action(env, 0))


def _obs_bytes(obs) -> bytes:
    if isinstance(obs, str):
        return obs.encode()
    return b"".join(np.ascontiguousarray(obs[key]).tobytes() for key in sorted(obs))


def test_every_preset_is_registered():
    assert {"RLHF-Chat-v0", "RLHF-Tiny-v0", "RLHF-ChatTokens-v0", "RLHF-ChatText-v0"} <= set(
        ENV_IDS
    )
    for env_id, kwargs in rlhf_envs.ENV_PRESETS.items():
        spec = gym.spec(env_id)
        assert spec.entry_point == "rlhf_envs.env:DialogueEnv"
        assert spec.kwargs == kwargs
        assert spec.max_episode_steps == rlhf_envs.max_episode_steps(kwargs)
    assert (
        gym.spec("RLHF-ChatTokens-v0").max_episode_steps
        == rlhf_envs.MAX_TURNS * rlhf_envs.MAX_REPLY_TOKENS
    )


@pytest.mark.integration
def test_make_works_without_importing_the_package():
    code = (
        "import gymnasium as gym; env = gym.make('rlhf_envs:RLHF-Chat-v0'); "
        "print(env.reset(seed=0)[1]['subflow'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def _unexpected(caught) -> list[str]:
    return [
        str(w.message) for w in caught if not any(a in str(w.message) for a in ALLOWED_WARNINGS)
    ]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_checker_passes_without_warnings(env_id):
    env = gym.make(env_id, render_mode="ansi")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped)
    assert not _unexpected(caught)


@pytest.mark.parametrize("env_id", sorted(set(ENV_IDS) - set(SB3_IDS)))
def test_text_ids_act_with_strings(env_id):
    assert isinstance(gym.make(env_id).action_space, gym.spaces.Text)


@pytest.mark.parametrize("env_id", SB3_IDS)
def test_sb3_checker_passes_without_warnings(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env, warn=True, skip_render_check=False)
    assert not _unexpected(caught)


def _episode_digest(env_id: str, seed: int, steps: int = 40) -> str:
    """A hash of everything an episode produces under seeded random actions."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    h = hashlib.sha256(repr(sorted(info.items())).encode())
    for _ in range(steps):
        h.update(_obs_bytes(obs))
        action = env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        h.update(
            repr(
                (
                    action,
                    reward,
                    terminated,
                    truncated,
                    info.get("reply"),
                    info.get("user"),
                    info.get("system"),
                )
            ).encode()
        )
        if terminated or truncated:
            obs, info = env.reset()
    return h.hexdigest()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_gives_the_same_episodes(env_id):
    first = _episode_digest(env_id, 7)
    assert _episode_digest(env_id, 7) == first
    assert _episode_digest(env_id, 8) != first


@pytest.mark.integration
def test_episodes_do_not_depend_on_the_process_hash_seed():
    code = (
        "import sys; sys.path.insert(0, 'tests'); import test_envs; "
        "print(test_envs._episode_digest('RLHF-Chat-v0', 3))"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digests = set()
    for hash_seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert len(digests) == 1
    assert digests == {_episode_digest("RLHF-Chat-v0", 3)}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spec_to_json_round_trips(env_id):
    env = gym.make(env_id, reward={"rubric": 1.0, "rubric:warm": 0.5})
    spec = gym.envs.registration.EnvSpec.from_json(env.spec.to_json())
    again = gym.make(spec)
    assert again.unwrapped.reward_model.spec == {"rubric": 1.0, "rubric:warm": 0.5}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_pickles_mid_episode_and_continues_identically(env_id):
    env = gym.make(env_id)
    env.reset(seed=1)
    env.step(_action(env, 0))
    clone = pickle.loads(pickle.dumps(env))
    a = env.step(_action(env, 1))
    b = clone.step(_action(env, 1))
    assert a[1:] == b[1:]
    assert _obs_bytes(a[0]) == _obs_bytes(b[0])


@pytest.mark.lm
def test_tokens_env_with_kl_shaping_pickles_mid_reply():
    """The reference LM's key/value cache is not pickled; the clone rebuilds it from the
    token ids and earns the same shaped rewards (to float rounding)."""
    env = gym.make("RLHF-ChatTokens-v0", kl_coef=0.1)
    env.reset(seed=1)
    for k in range(3):  # into the reply: the cache holds context and tokens
        env.step(_action(env, k))
    clone = pickle.loads(pickle.dumps(env))
    for k in range(3, 6):
        a, b = env.step(_action(env, k)), clone.step(_action(env, k))
        assert a[1] == pytest.approx(b[1], abs=1e-5) and a[1] != 0
        assert a[4]["ref_logprob"] == pytest.approx(b[4]["ref_logprob"], abs=1e-4)
        assert _obs_bytes(a[0]) == _obs_bytes(b[0])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_modes(env_id, capsys):
    env = gym.make(env_id, render_mode="ansi")
    env.reset(seed=0)
    _finish_a_turn(env)
    text = env.render()
    assert text.startswith("User: ") and "\nAgent:" in text
    human = gym.make(env_id, render_mode="human")
    human.reset(seed=0)
    _finish_a_turn(human)
    assert text.splitlines()[0] in capsys.readouterr().out
    image = gym.make(env_id, render_mode="rgb_array")
    image.reset(seed=0)
    frame = image.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert (frame < 255).any()  # something was drawn


def _fuzz(env_id: str, steps: int) -> None:
    """``steps`` random actions (on the text ids random strings of up to 1,000
    characters), a new seed for every episode: no exception, every observation in the
    space, every reward and gold reward a finite Python float, flags Python bools, and
    episodes that end (at least one per 25 turns)."""
    env = gym.make(env_id)
    # A random-token reply runs to the length cap: episodes are that many times longer.
    steps_per_turn = rlhf_envs.MAX_REPLY_TOKENS if env.unwrapped.interface.name == "tokens" else 1
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    episodes = 0
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert np.isfinite(reward) and np.isfinite(info["gold_reward"])
        assert (
            isinstance(reward, float)
            and isinstance(terminated, bool)
            and isinstance(truncated, bool)
        )
        if terminated or truncated:
            episodes += 1
            obs, _ = env.reset(seed=episodes)
            assert env.observation_space.contains(obs)
    assert episodes > steps / (25 * steps_per_turn)


def _budget(env_id: str, select: int, tokens: int, text: int) -> int:
    interface = rlhf_envs.ENV_PRESETS[env_id]["interface"]
    return {"select": select, "tokens": tokens, "text": text}[interface]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_random_fuzzing_keeps_observations_in_space_and_rewards_finite(env_id):
    """A short fuzz of every id (a second or two each): 1,000 random steps on a select id
    (about 70 episodes), 1,500 on a tokens id (random replies run to the 40-token cap),
    80 random strings on a text id (each scored by the fluency LM). The long fuzz is
    ``test_long_random_fuzzing``, under ``slow``."""
    _fuzz(env_id, _budget(env_id, select=1_000, tokens=1_500, text=80))


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_long_random_fuzzing_keeps_observations_in_space_and_rewards_finite(env_id):
    """100,000 random steps on RLHF-Chat-v0, 10,000 on each other select and tokens id,
    2,000 random strings on each text id (about 5 minutes in all)."""
    steps = _budget(env_id, select=10_000, tokens=10_000, text=2_000)
    _fuzz(env_id, 100_000 if env_id == "RLHF-Chat-v0" else steps)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_candidates": 1}, "num_candidates must be at least 2"),
        ({"interface": "voice"}, "interface 'voice' is unknown; available: select, tokens, text"),
        ({"kl_coef": 0.1}, "kl_coef do not apply to the select interface"),
        ({"interface": "tokens", "kl_coef": -1.0}, "kl_coef must be a finite number >= 0"),
        ({"interface": "tokens", "max_reply_tokens": 500}, "max_reply_tokens must be at least 1"),
        ({"interface": "tokens", "lm": "/nonexistent/lm"}, "is not a language-model folder"),
        ({"interface": "text", "max_reply_chars": 0}, "max_reply_chars must be at least 1"),
        (
            {"domain": "pharmacy"},
            "domain 'pharmacy' is unknown; built-in domains: customer_service",
        ),
        (
            {"subflows": ["return_size", "time_travel"]},
            "['time_travel'] not in domain 'customer_service'",
        ),
        ({"render_mode": "vr"}, "render_mode 'vr' is not supported"),
        ({"reward": "lerned:ckpt"}, "reward spec 'lerned:ckpt' is unknown"),
        (
            {"reward": "rubric:grumpy"},
            "persona 'grumpy': it is not defined for domain 'customer_service'; "
            "available there: balanced",
        ),
        (
            {"gold": {"rubric": 1.0, "rubric:clinician": 1.0}},
            "persona 'clinician': it is not defined for domain 'customer_service'",
        ),
        ({"reward": 3}, "not of an accepted form"),
    ],
)
def test_bad_make_arguments_get_clear_errors(kwargs, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium's own warning for an unknown render mode
        with pytest.raises((ValueError, TypeError, RewardModelError)) as err:
            gym.make("RLHF-Chat-v0", **kwargs)
    assert message in str(err.value)


def test_a_misspelt_argument_is_named():
    with pytest.raises(TypeError, match="num_candidate"):
        gym.make("RLHF-Chat-v0", num_candidate=4)


def test_bad_actions_get_clear_errors():
    env = gym.make("RLHF-Chat-v0")
    env.reset(seed=0)
    with pytest.raises(
        ValueError, match=r"expected an integer index of one of the 6 candidates, 0 to 5"
    ):
        env.step(6)
    with pytest.raises(ValueError, match="not valid"):
        env.step("refund please")
    with pytest.raises(RuntimeError, match="call reset"):
        gym.make("RLHF-Chat-v0").unwrapped.step(0)


def test_step_after_the_end_asks_for_reset():
    env = gym.make("RLHF-Chat-v0").unwrapped
    env.reset(seed=0)
    terminated = False
    while not terminated:
        _, _, terminated, _, _ = env.step(env.expert_action())
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)


def test_info_reports_the_episode():
    env = gym.make("RLHF-Chat-v0")
    _, info = env.reset(seed=4)
    assert {"domain", "flow", "subflow", "persona"} <= set(info)
    terminated = False
    while not terminated:
        _, reward, terminated, truncated, info = env.step(env.unwrapped.expert_action())
        assert {
            "reply",
            "user",
            "system",
            "reward_components",
            "gold_reward",
            "policy_step",
            "step_completed",
            "reply_violations",
            "violations",
            "success",
            "satisfaction",
            "steps_done",
            "steps_missed",
            "user_left",
        } <= set(info)
        assert reward == pytest.approx(sum(info["reward_components"].values()))
        assert info["step_completed"] and not info["reply_violations"]
    assert info["success"] and not info["steps_missed"] and 0 < info["satisfaction"] <= 1


def test_info_separates_this_replys_violations_from_the_episodes():
    env = gym.make("RLHF-Chat-v0", subflows=["return_size"]).unwrapped
    for seed in range(20):  # a first turn that offers a reply skipping verification
        env.reset(seed=seed)
        labels = [c.label for c in env.interface.candidates]
        if "skipped_verification" in labels:
            break
    else:
        pytest.fail("no skipped-verification candidate on the first turn of 20 seeds")
    _, _, _, _, info = env.step(labels.index("skipped_verification"))
    assert info["reply_violations"] == ("skipped_verification",) == info["violations"]
    _, _, _, _, info = env.step(env.expert_action())
    assert info["reply_violations"] == () and info["violations"] == ("skipped_verification",)
    assert not info["success"]


def test_the_user_loses_patience_with_a_repeated_action():
    """Claiming again an action already done is repetition, not progress: the user
    objects and eventually leaves."""
    env = gym.make("RLHF-Chat-v0", subflows=["refund_status"]).unwrapped
    env.reset(seed=0)
    while env.state.current_step.kind != "inform":
        env.step(env.expert_action())
    _, _, _, _, info = env.step(env.expert_action())
    done_reply = info["reply"]
    patience = env.mood.patience
    satisfaction = env.mood.satisfaction
    terminated = False
    for _ in range(patience):
        # Offer the same reply again as the first candidate and pick it.
        env.interface.candidates[0] = Candidate(done_reply, "repeated")
        _, _, terminated, _, info = env.step(0)
        if terminated:
            break
    assert terminated and info["user_left"] and not info["success"]
    assert env.mood.satisfaction < satisfaction


@pytest.mark.integration
def test_standard_wrappers_and_vector_envs_work():
    from gymnasium.wrappers import FlattenObservation, RecordEpisodeStatistics
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    flat = RecordEpisodeStatistics(FlattenObservation(gym.make("RLHF-Tiny-v0")))
    obs, _ = flat.reset(seed=0)
    assert obs.ndim == 1 and flat.observation_space.contains(obs)
    done = False
    while not done:
        _, _, terminated, truncated, info = flat.step(flat.unwrapped.expert_action())
        done = terminated or truncated
    assert info["episode"]["l"] >= 1
    model = PPO("MlpPolicy", flat, n_steps=64, batch_size=64, n_epochs=1, device="cpu")
    assert model.learn(64).num_timesteps == 64

    # Worker processes start fresh: the "module:id" form makes each import the package.
    vec = make_vec_env("rlhf_envs:RLHF-Tiny-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        model = PPO("MultiInputPolicy", vec, n_steps=32, batch_size=64, n_epochs=1, device="cpu")
        assert model.learn(64).num_timesteps == 64
    finally:
        vec.close()
    sync = gym.make_vec("RLHF-Tiny-v0", num_envs=2, vectorization_mode="sync")
    obs, _ = sync.reset(seed=0)
    assert obs["candidates"].shape[0] == 2
    sync.close()


def test_render_before_reset_is_harmless(capsys):
    """Before the first reset there is no conversation: an empty transcript, nothing
    printed, a blank frame of the usual size; after reset each mode shows the dialogue."""
    ansi = rlhf_envs.DialogueEnv(render_mode="ansi")
    assert ansi.render() == ""
    human = rlhf_envs.DialogueEnv(render_mode="human")
    assert human.render() is None and capsys.readouterr().out == ""
    image = rlhf_envs.DialogueEnv(render_mode="rgb_array")
    blank = image.render()
    assert blank.dtype == np.uint8 and blank.ndim == 3 and blank.shape[2] == 3
    assert (blank == 255).all()
    for env in (ansi, human, image):
        env.reset(seed=0)
    assert ansi.render().startswith("User: ")
    human.render()
    assert capsys.readouterr().out.startswith("User: ")
    frame = image.render()
    assert frame.shape == blank.shape and (frame < 255).any()


def test_scenario_seed_fixes_the_task_while_the_episode_seed_varies_the_rest():
    env = gym.make("RLHF-Chat-v0")
    tries = [env.reset(seed=s, options={"scenario_seed": 77}) for s in (1, 2, 3, 4)]
    summaries = [info for _, info in tries]
    assert all(s == summaries[0] for s in summaries)  # same task, user and facts
    assert len({obs["candidates"].tobytes() for obs, _ in tries}) > 1  # different wording / order
    assert len({repr(env.reset(seed=1, options={"scenario_seed": c})[1]) for c in range(6)}) > 1
    with pytest.raises(TypeError, match="scenario_seed'\\] must be an int"):
        env.reset(seed=1, options={"scenario_seed": "77"})
