"""Saving and loading trained SB3 agents as safetensors plus JSON, never pickle.

SB3's own ``model.save`` writes a zip whose ``data`` entry holds cloudpickled objects, so
loading a downloaded one can run arbitrary code. A checkpoint here is a folder:

* ``policy.safetensors``: the policy's weights (``model.policy``);
* ``agent.json``: the algorithm, policy kind, hyperparameters, env id and env arguments,
  and the number of training steps.

:func:`load_agent` rebuilds the model from the JSON (the same constructor as training)
and loads the weights into it; it is enough to act, not to resume training (the
optimiser state and replay buffer are not kept).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
from safetensors.torch import load_model, save_model
from stable_baselines3.common.base_class import BaseAlgorithm

from rlhf_agents.baselines import SB3Agent
from rlhf_agents.training import ALGORITHMS, make_model

FORMAT = "rlhf-envs-sb3-agent/1"
WEIGHTS, META = "policy.safetensors", "agent.json"


def save_agent(
    model: BaseAlgorithm,
    folder: str | Path,
    *,
    algo: str,
    policy: str,
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    hyperparams: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s policy to ``folder`` (created if needed).

    Args:
        model: the trained model.
        algo, policy: as given to :func:`rlhf_agents.training.make_model`.
        env_id, env_kwargs: the env it was trained on (recorded so the agent can be
            evaluated on the same one).
        hyperparams: the constructor arguments it was built with (JSON-serialisable).

    Raises:
        ValueError: ``folder`` exists and is not an agent checkpoint (nothing is overwritten).
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not (folder / META).is_file():
        raise ValueError(
            f"{folder} exists and is not an agent checkpoint; choose an empty or new folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "algo": algo,
        "policy": policy,
        "env_id": env_id,
        "env_kwargs": dict(env_kwargs or {}),
        "hyperparams": dict(hyperparams or {}),
        "num_timesteps": int(model.num_timesteps),
    }
    text = json.dumps(meta, indent=2)  # fails here, before any file is written, if not JSON-able
    # save_model drops the duplicate names of shared modules (actor and critic share a scorer).
    save_model(model.policy, str(folder / WEIGHTS))
    tmp = folder / (META + ".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, folder / META)
    return folder


def read_meta(folder: str | Path) -> dict[str, Any]:
    """The ``agent.json`` of a checkpoint, checked.

    Raises:
        FileNotFoundError: ``folder`` has no checkpoint.
        ValueError: the metadata is not this format or names an unknown algorithm.
    """
    folder = Path(folder)
    if not (folder / META).is_file() or not (folder / WEIGHTS).is_file():
        raise FileNotFoundError(
            f"{folder} is not an agent checkpoint: it needs {META} and {WEIGHTS}"
        )
    meta = json.loads((folder / META).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder / META}: format {meta.get('format')!r} is not {FORMAT!r}")
    if meta.get("algo") not in ALGORITHMS:
        raise ValueError(
            f"{folder / META}: algo {meta.get('algo')!r} is unknown; known: {sorted(ALGORITHMS)}"
        )
    return meta


def load_agent(
    folder: str | Path,
    env: gym.Env | None = None,
    name: str | None = None,
    deterministic: bool = True,
) -> SB3Agent:
    """The agent saved in ``folder``, ready to act.

    Args:
        folder: a folder written by :func:`save_agent`.
        env: an env with the same spaces (default: made from the recorded id and arguments).
        name: the agent's name (default: the algorithm).
        deterministic: act greedily or sample.
    """
    meta = read_meta(folder)
    own_env = env is None
    if own_env:
        env = gym.make(meta["env_id"], **meta["env_kwargs"])
    try:
        params = dict(meta["hyperparams"])
        if "buffer_size" in params:
            params["buffer_size"] = 1  # a replay buffer is for training; acting needs none
        model = make_model(meta["algo"], env, meta["policy"], **params)
    finally:
        if own_env:
            env.close()
    load_model(model.policy, str(Path(folder) / WEIGHTS))
    return SB3Agent(model, name or meta["algo"], deterministic)
