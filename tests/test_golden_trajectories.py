"""Golden trajectories: every registered id replays recorded episodes exactly.

For each id, 10 episodes with random actions and 10 with the scripted expert were
recorded (``tests/data/golden/``): the actions, the texts of every turn, every
observation (integer and string parts by their SHA-256, float parts as arrays), rewards,
reward components and gold rewards. Replaying the recorded actions
must give the same texts and integer observations exactly, and float observations and
rewards within 1e-6; the expert must choose the same actions.

A refactoring that keeps behaviour passes unchanged. A change that alters episodes on
purpose regenerates the recording, in a commit of its own that says why::

    .venv/bin/python tests/test_golden_trajectories.py            # every id
    .venv/bin/python tests/test_golden_trajectories.py RLHF-ChatText-v0

The tokens and text ids use the test reference LM (``tests/conftest.py``). Its tokenizer
decides the token ids and must be the recording's exactly. Its weights decide only the
fluency part of the gold reward on those ids; the build is deterministic for a fixed
thread count (``LMBuildConfig.threads``), but a processor with other vector instructions
may round differently. So when the weights differ from the recording's, gold rewards of
those ids are compared within ``OTHER_LM_GOLD_TOLERANCE`` (with a warning) and everything
else exactly as usual: the training reward (the rubric), texts, observations and actions
do not depend on the weights.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

GOLDEN_DIR = Path(__file__).resolve().parent / "data" / "golden"
RANDOM_EPISODES = 10
EXPERT_EPISODES = 10
FIRST_SEED = 1000
TOLERANCE = 1e-6
OTHER_LM_GOLD_TOLERANCE = 0.05


def env_ids() -> list[str]:
    import rlhf_envs  # noqa: F401  (registers the ids)

    return sorted(env_id for env_id in gym.registry if env_id.startswith("RLHF-"))


def _digest(obs: Any) -> str:
    """SHA-256 of the integer and string parts of an observation. Float parts are left to
    the recorded arrays (compared within ``TOLERANCE``): another processor's vector
    instructions may round them differently in the last bit."""
    if isinstance(obs, str):
        return hashlib.sha256(obs.encode("utf-8")).hexdigest()
    h = hashlib.sha256()
    for key in sorted(obs):
        array = np.ascontiguousarray(obs[key])
        if array.dtype.kind == "f":
            continue
        h.update(key.encode())
        h.update(str(array.dtype).encode())
        h.update(array.tobytes())
    return h.hexdigest()


def _float_parts(obs: Any) -> dict[str, np.ndarray]:
    if isinstance(obs, str):
        return {}
    return {k: np.asarray(v) for k, v in obs.items() if np.asarray(v).dtype.kind == "f"}


def _lm_fingerprint(env: gym.Env) -> dict[str, str] | None:
    """SHA-256 prefixes of the reference LM's weights and tokenizer, if the env uses one."""
    lm = getattr(env.unwrapped, "reference_lm", None)
    path = getattr(lm, "path", None)
    if path is None:
        gold = getattr(env.unwrapped, "gold_model", None)
        spec = json.dumps(getattr(gold, "spec", None), sort_keys=True, default=str)
        if "fluency" not in spec:
            return None
        from rlhf_envs.lm.build import default_lm_path

        path = default_lm_path(build=False)
    return {
        part: hashlib.sha256((Path(path) / file).read_bytes()).hexdigest()[:16]
        for part, file in (("weights", "model.safetensors"), ("tokenizer", "tokenizer.json"))
    }


def play(
    env: gym.Env, seed: int, policy: str, actions: list | None = None
) -> tuple[dict, dict[str, np.ndarray]]:
    """One episode from ``reset(seed=seed)``.

    ``policy`` is ``"random"`` (actions drawn from a generator seeded with ``seed``, or
    the recorded ``actions`` when given) or ``"expert"`` (``env.unwrapped.expert_action()``).
    Returns the record (JSON-able) and the float observations, one stacked array per key.
    """
    obs, info = env.reset(seed=seed)
    space = env.action_space
    rng = np.random.default_rng(seed)
    if isinstance(space, gym.spaces.Text):
        space.seed(seed)
    record: dict[str, Any] = {
        "seed": seed,
        "policy": policy,
        "reset_info": info,
        "obs": [_digest(obs)],
        "actions": [],
        "rewards": [],
        "gold": [],
        "components": [],
        "texts": [],
        "flags": [],
    }
    floats: dict[str, list[np.ndarray]] = {k: [v] for k, v in _float_parts(obs).items()}
    step = 0
    while True:
        if policy == "expert":
            action = env.unwrapped.expert_action()
        elif actions is not None:
            action = actions[step] if step < len(actions) else 0
        elif isinstance(space, gym.spaces.Text):
            action = space.sample()
        else:
            action = int(space.start + rng.integers(space.n))
        action = action if isinstance(action, str) else int(action)
        obs, reward, terminated, truncated, info = env.step(action)
        record["actions"].append(action)
        record["obs"].append(_digest(obs))
        for key, value in _float_parts(obs).items():
            floats[key].append(value)
        record["rewards"].append(float(reward))
        record["gold"].append(float(info["gold_reward"]))
        record["components"].append(
            {k: float(v) for k, v in info.get("reward_components", {}).items()}
        )
        record["texts"].append([info.get("reply"), info.get("user"), list(info.get("system", ()))])
        record["flags"].append([bool(terminated), bool(truncated)])
        step += 1
        if terminated or truncated:
            break
    record["final"] = {
        "success": bool(info["success"]),
        "satisfaction": float(info["satisfaction"]),
        "steps_done": list(info["steps_done"]),
        "violations": [list(v) if isinstance(v, (list, tuple)) else v for v in info["violations"]],
    }
    return record, {k: np.stack(v) for k, v in floats.items()}


def episodes_of(env_id: str) -> list[tuple[int, str]]:
    return [(FIRST_SEED + i, "random") for i in range(RANDOM_EPISODES)] + [
        (FIRST_SEED + RANDOM_EPISODES + i, "expert") for i in range(EXPERT_EPISODES)
    ]


def _paths(env_id: str) -> tuple[Path, Path]:
    return GOLDEN_DIR / f"{env_id}.json.gz", GOLDEN_DIR / f"{env_id}.npz"


def record(env_id: str) -> None:
    env = gym.make(env_id)
    episodes, arrays = [], {}
    for i, (seed, policy) in enumerate(episodes_of(env_id)):
        rec, floats = play(env, seed, policy)
        episodes.append(rec)
        arrays.update({f"{i}/{k}": v for k, v in floats.items()})
    meta = {"env_id": env_id, "lm": _lm_fingerprint(env), "episodes": episodes}
    env.close()
    json_path, npz_path = _paths(env_id)
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same recording gives the same bytes, so regenerating shows no diff.
    with open(json_path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(json.dumps(meta, sort_keys=True, default=_json_default).encode())
    if arrays:
        _write_npz(npz_path, arrays)
    elif npz_path.exists():
        npz_path.unlink()


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with fixed timestamps, so equal arrays give equal bytes."""
    with zipfile.ZipFile(path, "w") as zf:
        for key, array in arrays.items():
            entry = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            zf.writestr(entry, buffer.getvalue())


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"cannot record {type(value).__name__} {value!r}")


def _normalised(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=_json_default))


def _close(a: list[float], b: list[float], tolerance: float = TOLERANCE) -> bool:
    return len(a) == len(b) and bool(np.allclose(a, b, rtol=0, atol=tolerance))


@pytest.mark.parametrize("env_id", env_ids())
def test_recorded_episodes_replay_exactly(env_id):
    json_path, npz_path = _paths(env_id)
    assert json_path.is_file(), (
        f"no recording for {env_id}; run python {Path(__file__).name} {env_id}"
    )
    with gzip.open(json_path, "rb") as f:
        meta = json.loads(f.read())
    arrays = np.load(npz_path) if npz_path.exists() else {}
    env = gym.make(env_id)
    lm, recorded = _lm_fingerprint(env), meta["lm"]
    assert (lm is None) == (recorded is None), f"{env_id}: uses a reference LM: {lm}"
    gold_tolerance = TOLERANCE
    if lm is not None and recorded is not None:
        assert lm["tokenizer"] == recorded["tokenizer"], (
            f"{env_id} runs on another tokenizer ({lm['tokenizer']}) than the recording "
            f"({recorded['tokenizer']}): the test LM's build changed; regenerate the recording "
            "in a commit that says why"
        )
        if lm["weights"] != recorded["weights"]:
            gold_tolerance = OTHER_LM_GOLD_TOLERANCE
            warnings.warn(
                f"{env_id}: the test LM's weights differ from the recording's ({lm['weights']} "
                f"vs {recorded['weights']}; another processor rounds differently): gold "
                f"rewards compared within {gold_tolerance}, everything else exactly",
                stacklevel=1,
            )
    assert [(e["seed"], e["policy"]) for e in meta["episodes"]] == episodes_of(env_id)
    for i, expected in enumerate(meta["episodes"]):
        actions = expected["actions"] if expected["policy"] == "random" else None
        got, floats = play(env, expected["seed"], expected["policy"], actions)
        got = _normalised(got)
        where = f"{env_id} episode {i} (seed {expected['seed']}, {expected['policy']})"
        assert got["reset_info"] == expected["reset_info"], where
        assert got["actions"] == expected["actions"], f"{where}: actions differ"
        assert got["texts"] == expected["texts"], f"{where}: texts differ"
        assert got["obs"] == expected["obs"], f"{where}: observations differ"
        assert got["flags"] == expected["flags"], f"{where}: episode end differs"
        assert _close(got["rewards"], expected["rewards"]), f"{where}: rewards differ"
        assert _close(got["gold"], expected["gold"], gold_tolerance), (
            f"{where}: gold rewards differ"
        )
        assert [sorted(c) for c in got["components"]] == [
            sorted(c) for c in expected["components"]
        ], where
        for g, e in zip(got["components"], expected["components"], strict=True):
            assert _close([g[k] for k in sorted(g)], [e[k] for k in sorted(e)]), (
                f"{where}: components differ"
            )
        assert got["final"] == expected["final"], f"{where}: the episode's outcome differs"
        for key, value in floats.items():
            stored = arrays[f"{i}/{key}"]
            assert stored.shape == value.shape and stored.dtype == value.dtype, (
                f"{where}: {key} shape"
            )
            assert np.abs(stored.astype(np.float64) - value).max(initial=0.0) <= TOLERANCE, (
                f"{where}: {key}"
            )
    env.close()


if __name__ == "__main__":
    # Same reference LM as the test session (tests/conftest.py).
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import conftest

    conftest.use_test_lm()
    for env_id in sys.argv[1:] or env_ids():
        record(env_id)
        print(f"recorded {env_id}", file=sys.stderr)
    sys.exit(0)
