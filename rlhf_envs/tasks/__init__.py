"""The old name of the dialogue engine and the domain folders, kept so old imports work.

The package was split: the engine is :mod:`rlhf_envs.simulation`, the built-in domain
folders are :mod:`rlhf_envs.domains`, and ``check-domain`` is
:mod:`rlhf_envs.domain_check`. ``import rlhf_envs.tasks.sampling`` (and every other
former module) still works, with a ``DeprecationWarning``, and gives the module at its
new home (the same object, not a copy).
"""

import importlib
import sys
import warnings

from rlhf_envs.simulation import BUILTIN_DOMAINS, Domain, DomainError, get_domain

warnings.warn(
    "rlhf_envs.tasks is now rlhf_envs.simulation (the dialogue engine), rlhf_envs.domains "
    "(the domain folders) and rlhf_envs.domain_check; import from there",
    DeprecationWarning,
    stacklevel=2,
)

_ENGINE = (
    "assessment",
    "candidates",
    "conversation",
    "corpus",
    "domain",
    "expert",
    "policy",
    "sampling",
    "scenario",
    "state",
    "understanding",
    "user_simulator",
    "values",
)
_NEW_HOMES = {
    **{name: f"rlhf_envs.simulation.{name}" for name in _ENGINE},
    **{name: f"rlhf_envs.domains.{name}" for name in BUILTIN_DOMAINS},
    "check": "rlhf_envs.domain_check",
}
for _old, _new in _NEW_HOMES.items():
    sys.modules[f"{__name__}.{_old}"] = importlib.import_module(_new)

__all__ = ["BUILTIN_DOMAINS", "Domain", "DomainError", "get_domain"]
