"""How an agent acts and observes: *select* (pick one of K candidate replies), *tokens*
(write the reply token by token, RLHF proper) and *text* (write it as a string).
Interfaces never depend on a particular domain."""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

import numpy as np

from rlhf_envs.interfaces.base import Interface
from rlhf_envs.interfaces.text import REPLY_CHARSET as REPLY_CHARSET

if TYPE_CHECKING:
    from rlhf_envs.interfaces.select import SelectInterface as SelectInterface
    from rlhf_envs.interfaces.text import TextInterface as TextInterface
    from rlhf_envs.interfaces.tokens import TokensInterface as TokensInterface

# Imported when first used: the tokens and text interfaces bring torch and the reference
# LM, which a select env never needs (importing torch alone costs seconds and ~150 MB).
INTERFACES: dict[str, str] = {
    "select": "rlhf_envs.interfaces.select:SelectInterface",
    "tokens": "rlhf_envs.interfaces.tokens:TokensInterface",
    "text": "rlhf_envs.interfaces.text:TextInterface",
}


def __getattr__(attribute: str) -> type[Interface]:
    # ``from rlhf_envs.interfaces import TokensInterface`` still works, importing it then.
    for name, target in INTERFACES.items():
        if target.endswith(f":{attribute}"):
            return interface_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


def interface_class(name: str) -> type[Interface]:
    """The class of the interface called ``name`` (see ``INTERFACES``)."""
    module, _, cls = INTERFACES[name].partition(":")
    found: type[Interface] = getattr(importlib.import_module(module), cls)
    return found


def interface_options(name: str) -> tuple[str, ...]:
    """The arguments the interface called ``name`` takes."""
    return tuple(
        p for p in inspect.signature(interface_class(name).__init__).parameters if p != "self"
    )


def make_interface(name: str, **kwargs: Any) -> Interface:
    """Build the interface called ``name`` with its arguments.

    Raises:
        ValueError: ``name`` is not a known interface, or an argument is not one it takes.
    """
    if name not in INTERFACES:
        raise ValueError(f"interface {name!r} is unknown; available: {', '.join(INTERFACES)}")
    accepted = interface_options(name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"argument(s) {', '.join(unknown)} do not apply to the {name} interface; it takes "
            f"{', '.join(accepted)}"
        )
    cls = interface_class(name)
    signature = inspect.signature(cls.__init__)
    for key, value in kwargs.items():
        _check_number(key, value, signature.parameters[key])
    return cls(**kwargs)


def _check_number(key: str, value: Any, parameter: inspect.Parameter) -> None:
    """A numeric argument must be a finite real number (not a string, not a bool):
    ``kl_coef="0.1"`` would otherwise fail deep inside numpy, or compare as text."""
    annotation = str(parameter.annotation)
    if not any(word in annotation.split(" | ") for word in ("int", "float")):
        return
    integral = "float" not in annotation
    kinds = (int, np.integer) if integral else (int, float, np.integer, np.floating)
    if value is None and "None" in annotation:
        return
    if isinstance(value, bool) or not isinstance(value, kinds) or not np.isfinite(value):
        want = "an integer" if integral else "a finite number"
        raise ValueError(f"{key} must be {want}, got {value!r} ({type(value).__name__})")


__all__ = [
    "INTERFACES",
    "REPLY_CHARSET",
    "Interface",
    "SelectInterface",
    "TextInterface",
    "TokensInterface",
    "interface_class",
    "interface_options",
    "make_interface",
]
