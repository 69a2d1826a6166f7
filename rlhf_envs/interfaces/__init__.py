"""How an agent acts and observes: *select* (pick one of K candidate replies), with
*tokens* and *text* to follow. Interfaces never depend on a particular domain."""

from __future__ import annotations

from typing import Any

from rlhf_envs.interfaces.base import Interface
from rlhf_envs.interfaces.select import SelectInterface

INTERFACES: dict[str, type[Interface]] = {"select": SelectInterface}


def make_interface(name: str, **kwargs: Any) -> Interface:
    """Build the interface called ``name`` with its arguments.

    Raises:
        ValueError: ``name`` is not a known interface.
    """
    try:
        cls = INTERFACES[name]
    except KeyError:
        raise ValueError(f"interface {name!r} is unknown; available: {', '.join(INTERFACES)}") from None
    return cls(**kwargs)


__all__ = ["INTERFACES", "Interface", "SelectInterface", "make_interface"]
