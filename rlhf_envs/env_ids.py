"""Which env ids exist and which interface each uses, checked before a command works.

Reads Gymnasium's registry only (``import rlhf_envs`` fills it), so any layer may ask.
"""

from __future__ import annotations

import gymnasium as gym

__all__ = ["check_env_id"]


def check_env_id(env_id: str, interfaces: tuple[str, ...] | None = None) -> str:
    """``env_id`` if it names a registered rlhf-envs env (with one of ``interfaces``, when
    given); checked before a command does any work, so a typo costs no minutes.

    Raises:
        ValueError: an unknown id, or one whose interface is not among ``interfaces``;
            the message lists the ids that would do.
    """
    name = env_id.split(":", 1)[1] if env_id.startswith("rlhf_envs:") else env_id
    spec = gym.registry.get(name)
    ours = sorted(i for i, s in gym.registry.items() if _is_dialogue_env(s.entry_point))
    accepted = [
        i
        for i in ours
        if interfaces is None or gym.registry[i].kwargs.get("interface", "select") in interfaces
    ]
    need = f" ({' or '.join(interfaces)} interface)" if interfaces else ""
    if spec is None or name not in ours:
        raise ValueError(f"unknown env id {env_id!r}; registered{need}: {', '.join(accepted)}")
    interface = spec.kwargs.get("interface", "select")
    if interfaces is not None and interface not in interfaces:
        raise ValueError(
            f"{env_id} uses the {interface} interface; this needs the {' or '.join(interfaces)} "
            f"interface: {', '.join(accepted)}"
        )
    return env_id


def _is_dialogue_env(entry_point: object) -> bool:
    # Registered by name (as rlhf_envs does) or with the class itself (as a user may).
    if isinstance(entry_point, str):
        return entry_point == "rlhf_envs.env:DialogueEnv"
    return isinstance(entry_point, type) and any(
        f"{c.__module__}:{c.__name__}" == "rlhf_envs.env:DialogueEnv" for c in entry_point.__mro__
    )
