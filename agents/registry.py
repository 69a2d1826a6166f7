"""Agents by short name: what the comparison harness, the CLI and YAML files refer to.

Every agent the suite knows is an :class:`AgentSpec`: a name, a kind (``random``,
``expert``, ``best-of-n``, ``sb3``, ``hf`` or ``openai``), and for SB3 agents the
algorithm, the policy kind and hyperparameters. Built in::

    random, expert, best-of-n, ppo, ppo-mlp, a2c, dqn, maskable-ppo, recurrent-ppo

Language-model agents for the text interface are named by what they run
(:mod:`rlhf_agents.lm_agents`): ``hf:PATH`` (a local causal LM folder) and
``openai:MODEL@URL`` (an OpenAI-compatible chat endpoint, key in ``OPENAI_API_KEY``).

A YAML file changes their hyperparameters or adds agents of its own; each top-level key is
an agent name, and a new name says which agent it starts from (``base``)::

    ppo:                      # the built-in PPO with a different learning rate
      hyperparams: {learning_rate: 3.0e-4}
    ppo-big:                  # a new agent
      base: ppo
      hyperparams: {policy_kwargs: {hidden_size: 128}}
    best-of-16:
      base: best-of-n
      n: 16
    my-model:                 # a local model, greedy
      base: hf
      model: path/to/folder
      temperature: 0

Hyperparameters are passed to the SB3 constructor and replace the suite's defaults
(:data:`rlhf_agents.training.HYPERPARAMS`) key by key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from rlhf_agents.training import ALGORITHMS, HYPERPARAMS, POLICIES

KINDS = ("random", "expert", "best-of-n", "sb3", "hf", "openai")
# Agents named on the fly: ``hf:PATH`` (a local causal LM folder) and
# ``openai:MODEL@URL`` (an OpenAI-compatible endpoint); both write text replies.
LM_KINDS = ("hf", "openai")


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``3e-4`` (no dot) as a string; learning rates are written that way,
    so floats in exponent form are floats here, as in YAML 1.2."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)
# Keys a YAML entry may set, with what each means (for error messages).
_YAML_KEYS = {
    "base": "the agent this one starts from",
    "algo": f"SB3 algorithm, one of {sorted(ALGORITHMS)}",
    "policy": "policy kind: candidate or mlp",
    "hyperparams": "a mapping of SB3 constructor arguments",
    "n": "best-of-n: replies compared per turn",
    "reward": "best-of-n: the reward spec that picks the best reply (default: the env's)",
    "model": "hf: the model folder; openai: MODEL@URL",
    "temperature": "hf/openai: sampling temperature (0 = greedy; default 1)",
    "max_tokens": "hf/openai: the longest reply in tokens (default 64)",
}


@dataclass(frozen=True)
class AgentSpec:
    """One agent of a comparison.

    Args:
        name: the short name used on the command line and in the leaderboard.
        kind: ``random``, ``expert``, ``best-of-n`` or ``sb3``.
        algo: the SB3 algorithm (a key of :data:`rlhf_agents.training.ALGORITHMS`), for ``sb3``.
        policy: the policy kind, ``candidate`` or ``mlp``, for ``sb3``.
        hyperparams: SB3 constructor arguments that replace the suite's defaults.
        n: best-of-n: candidates compared per turn (on the select interface, the
            env's proposals are the candidates and ``n`` is ignored).
        reward: best-of-n: the reward spec that ranks them; ``None`` = the env's reward.
        model: ``hf``: the model folder; ``openai``: ``MODEL@URL`` (see
            :mod:`rlhf_agents.lm_agents`).
        temperature, max_tokens: ``hf`` and ``openai``: sampling temperature and the
            longest reply in tokens.
    """

    name: str
    kind: str
    algo: str | None = None
    policy: str = "candidate"
    hyperparams: Mapping[str, Any] = field(default_factory=dict, hash=False)
    n: int = 4
    reward: str | None = None
    model: str | None = None
    temperature: float = 1.0
    max_tokens: int = 64

    @property
    def trains(self) -> bool:
        """Whether the agent needs a training run (and so a step budget)."""
        return self.kind == "sb3"

    def resolved_hyperparams(self) -> dict[str, Any]:
        """The SB3 arguments used: the suite's defaults, then this spec's."""
        if self.algo is None:
            return {}
        return {**HYPERPARAMS[self.algo], **dict(self.hyperparams)}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "algo": self.algo,
            "policy": self.policy,
            "hyperparams": dict(self.hyperparams),
            "n": self.n,
            "reward": self.reward,
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }


BUILTIN: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        AgentSpec("random", "random"),
        AgentSpec("expert", "expert"),
        AgentSpec("best-of-n", "best-of-n", n=4),
        AgentSpec("ppo", "sb3", "ppo", "candidate"),
        AgentSpec("ppo-mlp", "sb3", "ppo", "mlp"),
        AgentSpec("a2c", "sb3", "a2c", "candidate"),
        AgentSpec("dqn", "sb3", "dqn", "candidate"),
        AgentSpec("maskable-ppo", "sb3", "maskable-ppo", "candidate"),
        AgentSpec("recurrent-ppo", "sb3", "recurrent-ppo", "mlp"),
    )
}


def _check(spec: AgentSpec, where: str) -> AgentSpec:
    if spec.kind not in KINDS:
        raise ValueError(f"{where}: kind {spec.kind!r} is unknown; choose from {KINDS}")
    if spec.kind == "sb3":
        if spec.algo not in ALGORITHMS:
            raise ValueError(
                f"{where}: algo {spec.algo!r} is unknown; choose from {sorted(ALGORITHMS)}"
            )
        if (spec.algo, spec.policy) not in POLICIES:
            offered = [kind for (a, kind) in POLICIES if a == spec.algo]
            raise ValueError(
                f"{where}: {spec.algo} has no {spec.policy!r} policy; it offers {offered}"
            )
    if not isinstance(spec.hyperparams, Mapping):
        raise ValueError(
            f"{where}: hyperparams must be a mapping, got {type(spec.hyperparams).__name__}"
        )
    if spec.kind == "best-of-n" and (not isinstance(spec.n, int) or spec.n < 1):
        raise ValueError(f"{where}: n must be a positive integer, got {spec.n!r}")
    if spec.kind in LM_KINDS:
        if not isinstance(spec.model, str) or not spec.model:
            raise ValueError(f"{where}: a {spec.kind} agent needs model (a folder or MODEL@URL)")
        if (
            isinstance(spec.temperature, bool)
            or not isinstance(spec.temperature, int | float)
            or not 0 <= spec.temperature <= 2
        ):
            raise ValueError(
                f"{where}: temperature must be a number from 0 to 2, got {spec.temperature!r}"
            )
        if (
            isinstance(spec.max_tokens, bool)
            or not isinstance(spec.max_tokens, int)
            or spec.max_tokens < 1
        ):
            raise ValueError(
                f"{where}: max_tokens must be a positive integer, got {spec.max_tokens!r}"
            )
    return spec


def lm_agent_spec(name: str) -> AgentSpec | None:
    """The spec a name like ``hf:PATH`` or ``openai:MODEL@URL`` stands for (None otherwise)."""
    kind, sep, model = name.partition(":")
    if not sep or kind not in LM_KINDS:
        return None
    return _check(AgentSpec(name, kind, model=model), f"agent {name!r}")


def load_agent_config(path: str | Path | None) -> dict[str, AgentSpec]:
    """The built-in agents, updated and extended by the YAML file at ``path``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a mapping of agent names to settings, names an unknown
            key, base, algorithm or policy; the message says which entry and what is accepted.
    """
    specs = dict(BUILTIN)
    if path is None:
        return specs
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"agent config {path} does not exist")
    try:
        data = yaml.load(path.read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: expected a mapping of agent names to settings, got {type(data).__name__}"
        )
    for name, entry in data.items():
        where = f"{path}, agent {name!r}"
        entry = entry or {}
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping of settings, got {type(entry).__name__}")
        unknown = set(entry) - set(_YAML_KEYS)
        if unknown:
            accepted = "; ".join(f"{k} ({v})" for k, v in _YAML_KEYS.items())
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; accepted: {accepted}")
        base_name = entry.get("base", name)
        # `base: hf` or `base: openai` (with `model:`) starts a language-model agent.
        lm_base = AgentSpec(base_name, base_name) if base_name in LM_KINDS else None
        if base_name not in specs and lm_base is None:
            raise ValueError(
                f"{where}: no agent {base_name!r} to start from; known: {sorted(specs)}"
                + ("" if "base" in entry else " (a new agent needs `base:`)")
            )
        base = specs.get(base_name) or lm_base
        assert base is not None
        changes: dict[str, Any] = {"name": str(name)}
        for key in ("algo", "policy", "n", "reward", "model", "temperature", "max_tokens"):
            if key in entry:
                changes[key] = entry[key]
        if "hyperparams" in entry:
            if not isinstance(entry["hyperparams"], dict):
                raise ValueError(
                    f"{where}: hyperparams must be a mapping, "
                    f"got {type(entry['hyperparams']).__name__}"
                )
            changes["hyperparams"] = {**dict(base.hyperparams), **entry["hyperparams"]}
        specs[str(name)] = _check(replace(base, **changes), where)
    return specs


def resolve_agents(names: list[str], config: str | Path | None = None) -> list[AgentSpec]:
    """The specs of ``names`` (built in or from ``config``), in that order.

    Raises:
        ValueError: a name is unknown (the message lists the known ones) or repeated.
    """
    specs = load_agent_config(config)
    for name in names:
        spec = None if name in specs else lm_agent_spec(name)
        if spec is not None:
            specs[name] = spec
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ValueError(
            f"unknown agent(s) {unknown}; known: {', '.join(sorted(specs))}, "
            "hf:PATH (a local causal LM folder) and openai:MODEL@URL (a chat endpoint)"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"agents are listed twice: {names}")
    return [specs[n] for n in names]
