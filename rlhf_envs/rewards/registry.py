"""The reward-model registry: turns the ``reward=`` argument of ``gymnasium.make`` into a model.

Env specs must survive ``EnvSpec.to_json()`` and pickling (vector envs, recorded specs,
``gymnasium.make`` from a saved spec), so reward models are normally named by a string or
a weighted dict and resolved here, in whichever process builds the env. The accepted forms
of a spec (see :func:`make_reward_model`):

- ``"name"``: a registered model built with no argument, e.g. ``"rubric"``;
- ``"name:arg"``: split at the *first* colon, so the argument may contain colons
  (``"learned:C:/models/rm:v2"`` is ``learned`` with ``C:/models/rm:v2``);
- ``{spec: weight, ...}``: a weighted mix, e.g. ``{"rubric": 1.0, "learned:ckpt": 0.5}``;
- an object with a ``score(batch)`` method (a ``RewardModel``), used as is;
- a function ``fn(exchange) -> float``, called once per exchange of a batch.

String and dict specs are serialisable; instances and functions work but are not (an env
made with one cannot be rebuilt from its spec). :func:`is_serialisable` tells which.

Names come from two places:

- :func:`register` in code, with a factory or a lazy ``"package.module:attr"`` import
  string (imported on first use, like gymnasium entry points). ``argument`` names the
  keyword the spec's ``:arg`` is passed as.
- the entry-point group ``rlhf_envs.rewards`` of installed distributions, e.g. in a
  plugin's ``pyproject.toml``::

      [project.entry-points."rlhf_envs.rewards"]
      my_rm = "my_package.rewards:MyRewardModel"

  The entry point's object is the factory: ``"my_rm"`` builds ``MyRewardModel()`` and
  ``"my_rm:ARG"`` builds ``MyRewardModel("ARG")`` (the argument is passed as the single
  positional argument). Entry points are read on the first lookup of a name that is not
  registered in code, and when names are listed; :func:`refresh_plugins` forgets them
  (after installing a plugin into a running interpreter). A name registered in code wins
  over an entry point of the same name.

Every resolved model is returned wrapped in a
:class:`~rlhf_envs.rewards.validation.CheckedRewardModel`, so a plugin that raises or
returns NaN or the wrong shape fails with a :class:`RewardModelError` that names it.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import numbers
import re
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlhf_envs.rewards.mixture import WeightedMixture, check_weight
from rlhf_envs.rewards.protocol import Exchange, describe
from rlhf_envs.rewards.validation import CheckedRewardModel, RewardModelError, _short

__all__ = [
    "ACCEPTED_FORMS",
    "ENTRY_POINT_GROUP",
    "FunctionRewardModel",
    "RewardModelError",
    "RewardSpec",
    "UnknownRewardError",
    "describe_registered",
    "is_serialisable",
    "make_reward_model",
    "refresh_plugins",
    "register",
    "registered_names",
]

ENTRY_POINT_GROUP = "rlhf_envs.rewards"
"""The entry-point group third-party reward plugins register in."""

ACCEPTED_FORMS = (
    "'name', 'name:arg', {spec: weight}, a RewardModel instance, a function(exchange) -> float"
)
"""The spec forms, as quoted in error messages."""

RewardSpec = str | Mapping[Any, float] | Any
"""What ``make_reward_model`` accepts (see the module docstring); ``Any`` covers instances
and functions, which cannot be described more precisely by a type."""

_NAME_RE = re.compile(r"[^:\s]+")
_IMPORT_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


class UnknownRewardError(ValueError):
    """A spec names a reward model that is neither registered nor an installed plugin.

    The message quotes the spec, suggests a close name when there is one, and lists the
    registered names and the accepted spec forms.
    """


@dataclass
class _Entry:
    """A name registered in code."""

    name: str
    factory: Callable[..., Any] | str
    argument: str | None
    description: str
    canonical: Callable[[str], str] | None = None
    loaded: Callable[..., Any] | None = field(default=None, repr=False)


_REGISTRY: dict[str, _Entry] = {}
# Entry points by name; None until first read (entry-point scans walk sys.path, so they
# are done once, lazily, not at import).
_plugins: dict[str, list[importlib.metadata.EntryPoint]] | None = None
_plugin_factories: dict[str, Callable[..., Any]] = {}
_lock = threading.RLock()


def _is_valid_name(name: Any) -> bool:
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


def register(
    name: str,
    factory: Callable[..., Any] | str,
    *,
    argument: str | None = None,
    description: str = "",
    overwrite: bool = False,
    canonical: Callable[[str], str] | None = None,
) -> None:
    """Register a reward model under ``name`` so specs can refer to it.

    Example::

        register("rubric", "rlhf_envs.rewards.rubric:RubricRewardModel", argument="persona")
        # "rubric"      -> RubricRewardModel()
        # "rubric:warm" -> RubricRewardModel(persona="warm")

    Args:
        name: the name used in specs: non-empty, without colons or whitespace.
        factory: a callable returning a reward model (an object with ``score(batch)``),
            or a lazy import string ``"package.module:attr"``, imported on first use.
        argument: the keyword argument a spec's ``:arg`` is passed to the factory as.
            ``None`` means the model takes no argument and ``"name:arg"`` is an error.
            With an argument, ``"name"`` calls the factory with no arguments, so the
            factory must have a default for it.
        description: one line for listings (:func:`describe_registered`).
        overwrite: replace an existing registration instead of raising.
        canonical: maps a spec's argument to its canonical form, used in the resolved
            model's ``spec`` (e.g. :func:`absolute_path` makes ``"learned:runs/rm"``
            ``"learned:/home/me/runs/rm"``, so workers started elsewhere find the file).

    Raises:
        ValueError: ``name`` is invalid or already registered (and not ``overwrite``),
            ``factory`` is a malformed import string, or ``argument`` is not an
            identifier.
        TypeError: ``factory`` is neither callable nor a string.
    """
    if not _is_valid_name(name):
        raise ValueError(
            f"reward name {name!r} is invalid: names are non-empty and contain no colon or "
            f"whitespace (the spec 'name:arg' splits at the first colon)"
        )
    if isinstance(factory, str):
        if not _IMPORT_RE.fullmatch(factory):
            raise ValueError(
                f"reward factory for {name!r} is the string {factory!r}; a lazy factory must "
                f"be an import string 'package.module:attr'"
            )
    elif not callable(factory):
        raise TypeError(
            f"reward factory for {name!r} must be callable or an import string "
            f"'package.module:attr'; got {_short(factory)}"
        )
    if argument is not None and not (isinstance(argument, str) and argument.isidentifier()):
        raise ValueError(f"argument for reward {name!r} must be a keyword name; got {argument!r}")
    with _lock:
        if name in _REGISTRY and not overwrite:
            raise ValueError(
                f"reward name {name!r} is already registered ({_REGISTRY[name].factory!r}); "
                f"pass overwrite=True to replace it"
            )
        _REGISTRY[name] = _Entry(name, factory, argument, description, canonical)


def refresh_plugins() -> None:
    """Forget the entry points read so far; the next lookup or listing reads them again.

    Needed only when a plugin distribution is installed or removed while the interpreter
    runs (and by tests).
    """
    global _plugins
    with _lock:
        _plugins = None
        _plugin_factories.clear()


def _plugin_table() -> dict[str, list[importlib.metadata.EntryPoint]]:
    """Entry points of the group by name, read on first use."""
    global _plugins
    with _lock:
        if _plugins is None:
            table: dict[str, list[importlib.metadata.EntryPoint]] = {}
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                if not _is_valid_name(ep.name):
                    warnings.warn(
                        f"ignoring reward plugin entry point {ep.name!r} from {_dist_label(ep)}: "
                        f"names may not contain colons or whitespace",
                        stacklevel=3,
                    )
                    continue
                found = table.setdefault(ep.name, [])
                # The same distribution can be seen twice (a path listed twice on sys.path).
                if not any(other.value == ep.value for other in found):
                    found.append(ep)
            _plugins = table
        return _plugins


def _dist_label(ep: importlib.metadata.EntryPoint) -> str:
    """``distribution 'name version'`` for messages, or a note that it is unknown."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "an unknown distribution"
    try:
        return f"distribution '{dist.metadata['Name']} {dist.version}'"
    except Exception:  # noqa: BLE001  # broken METADATA must not hide the real error
        return "a distribution with unreadable metadata"


def _ep_label(ep: importlib.metadata.EntryPoint) -> str:
    return (
        f"entry point '{ep.name} = {ep.value}' (group {ENTRY_POINT_GROUP!r}) of {_dist_label(ep)}"
    )


def _plugin_factory(name: str, eps: list[importlib.metadata.EntryPoint]) -> Callable[..., Any]:
    """Load (once) the factory an entry point names."""
    with _lock:
        cached = _plugin_factories.get(name)
        if cached is not None:
            return cached
        if len(eps) > 1:
            raise RewardModelError(
                f"reward plugin {name!r} is provided by several entry points: "
                f"{'; '.join(_ep_label(ep) for ep in eps)}; uninstall all but one, or choose "
                f"one in code with register({name!r}, factory, overwrite=True)"
            )
        (ep,) = eps
        try:
            obj = ep.load()
        except Exception as err:
            raise RewardModelError(
                f"reward plugin {name!r} failed to load: {_ep_label(ep)} raised "
                f"{type(err).__name__}: {err}"
            ) from err
        if not callable(obj):
            raise RewardModelError(
                f"reward plugin {name!r}: {_ep_label(ep)} names {_short(obj)}, which is not "
                f"callable; it must name a factory (a class or function) returning a reward model"
            )
        _plugin_factories[name] = obj
        return obj


def _entry_factory(entry: _Entry) -> Callable[..., Any]:
    """The entry's factory, importing a lazy import string on first use."""
    if not isinstance(entry.factory, str):
        return entry.factory
    if entry.loaded is None:
        module_name, _, attr_path = entry.factory.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for attr in attr_path.split("."):
                obj = getattr(obj, attr)
        except Exception as err:
            raise RewardModelError(
                f"reward model {entry.name!r} could not be loaded from {entry.factory!r}: "
                f"{type(err).__name__}: {err}"
            ) from err
        if not callable(obj):
            raise RewardModelError(
                f"reward model {entry.name!r}: {entry.factory!r} is {_short(obj)}, which is "
                f"not callable"
            )
        entry.loaded = obj
    return entry.loaded


def registered_names() -> list[str]:
    """All names a spec can use: those registered in code and those of installed plugins.

    Returns:
        The names, sorted. (Reading them discovers entry points but imports no plugin.)
    """
    with _lock:
        return sorted(set(_REGISTRY) | set(_plugin_table()))


def _usages(name: str) -> list[str]:
    """How a name can be written in a spec, e.g. ``["rubric", "rubric:PERSONA"]``."""
    entry = _REGISTRY.get(name)
    if entry is not None:
        return [name] if entry.argument is None else [name, f"{name}:{entry.argument.upper()}"]
    return [name, f"{name}:ARG"]  # a plugin factory may or may not take its argument


def describe_registered() -> str:
    """A listing of the registered names, one per line, with their spec forms and descriptions.

    Returns:
        Lines like ``rubric, rubric:PERSONA  scripted rubric ...`` (for help texts).
    """
    lines = []
    with _lock:
        plugins = _plugin_table()
        for name in registered_names():
            entry = _REGISTRY.get(name)
            if entry is not None:
                text = entry.description
            else:
                text = f"plugin from {_dist_label(plugins[name][0])}"
            lines.append(f"{', '.join(_usages(name))}  {text}".rstrip())
    return "\n".join(lines)


def _unknown(spec: str, name: str, sep: str, arg: str) -> UnknownRewardError:
    names = registered_names()
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0] + sep + arg!r}?)" if close else ""
    listing = ", ".join(usage for n in names for usage in _usages(n)) or "(none)"
    return UnknownRewardError(
        f"reward spec {spec!r} is unknown{hint}; registered: {listing}; "
        f"accepted forms: {ACCEPTED_FORMS}"
    )


def _callable_name(obj: Any) -> str:
    qualname = getattr(obj, "__qualname__", None)
    if qualname is None:
        return _short(obj)
    module = getattr(obj, "__module__", None)
    return f"{module}.{qualname}" if module else qualname


def _from_string(spec: str) -> CheckedRewardModel:
    if not spec or spec.isspace():
        raise ValueError(f"reward spec is an empty string; accepted forms: {ACCEPTED_FORMS}")
    name, sep, arg = spec.partition(":")
    if not name:
        raise ValueError(
            f"reward spec {spec!r} has no name before ':'; accepted forms: {ACCEPTED_FORMS}"
        )
    if sep and not arg:
        raise ValueError(
            f"reward spec {spec!r} has an empty argument after ':'; write {name!r} for the "
            f"default, or '{name}:ARG'"
        )
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    origin = ""
    entry = _REGISTRY.get(name)
    if entry is not None:
        if sep and entry.argument is None:
            raise ValueError(
                f"reward spec {spec!r} passes the argument {arg!r}, but reward model {name!r} "
                f"takes no argument; write {name!r}"
            )
        factory = _entry_factory(entry)
        if sep and entry.canonical is not None:
            arg = entry.canonical(arg)
            spec = f"{name}:{arg}"
        if sep:
            kwargs[entry.argument] = arg  # type: ignore[index]  # checked above
    else:
        eps = _plugin_table().get(name)
        if eps is None:
            raise _unknown(spec, name, sep, arg)
        factory = _plugin_factory(name, eps)
        origin = f" (plugin from {_dist_label(eps[0])})"
        if sep:
            args = (arg,)
    shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    call = (
        f"{_callable_name(factory)}({', '.join(shown)})"  # e.g. RubricRewardModel(persona='warm')
    )
    try:
        model = factory(*args, **kwargs)
    except Exception as err:
        raise RewardModelError(
            f"could not build reward model {spec!r}{origin}: {call} raised "
            f"{type(err).__name__}: {err}"
        ) from err
    if isinstance(model, CheckedRewardModel):
        model = model.model  # re-labelled below; one check per call is enough
    if not callable(getattr(model, "score", None)):
        raise RewardModelError(
            f"could not build reward model {spec!r}{origin}: {call} returned {_short(model)}, "
            f"which has no score(batch) method"
        )
    return CheckedRewardModel(model, name=spec, spec=spec)


def _from_mapping(spec: Mapping[Any, Any]) -> CheckedRewardModel:
    if not spec:
        raise ValueError(
            "reward mix is an empty dict; give at least one {spec: weight} entry, "
            "e.g. {'rubric': 1.0}"
        )
    members = []
    for key, weight in spec.items():
        if isinstance(key, Mapping):  # only reachable with exotic hashable mappings
            raise TypeError(f"reward mix keys must be specs, not nested mixes; got {_short(key)}")
        value = check_weight(key, weight)  # before resolving: fail fast on a typo'd weight
        members.append((value, make_reward_model(key)))
    mixture = WeightedMixture(members)
    canonical = None
    if is_serialisable(spec):
        # Members' canonical specs (absolute paths); the given dict if two keys became one.
        canonical = {member.spec: weight for weight, member in members}
        if len(canonical) != len(spec):
            canonical = dict(spec)
    return CheckedRewardModel(mixture, name=mixture.name, spec=canonical)


class FunctionRewardModel:
    """Adapts a plain function ``fn(exchange) -> float`` to the batched ``RewardModel`` protocol.

    Attributes:
        fn: the wrapped function.
        name: ``describe(fn)``, e.g. ``"function my_module.brevity"``.
    """

    def __init__(self, fn: Callable[[Exchange], float]) -> None:
        """Wrap ``fn``.

        Args:
            fn: called once per exchange; must return a real number.
        """
        self.fn = fn
        self.name: str = describe(fn)

    def score(self, batch: Sequence[Exchange]) -> np.ndarray:
        """Call the function on each exchange.

        Args:
            batch: the exchanges to score.

        Returns:
            A float64 array of the function's values (finiteness is checked by the caller,
            :class:`CheckedRewardModel`).

        Raises:
            RewardModelError: the function raised (chained) or returned a value that is not
                a real number; the message names the function and the index.
        """
        out = np.empty(len(batch))
        for i, exchange in enumerate(batch):
            try:
                value = self.fn(exchange)
            except Exception as err:
                raise RewardModelError(
                    f"reward model {self.name!r} raised {type(err).__name__}: {err} "
                    f"(at index {i} of a batch of {len(batch)})"
                ) from err
            # Checked explicitly: numpy would silently turn None into nan and "1.5" into 1.5.
            if not isinstance(value, numbers.Real):
                if hasattr(value, "__float__") and tuple(getattr(value, "shape", (None,))) == ():
                    value = float(value)  # a 0-d numpy array or torch tensor
                else:
                    raise RewardModelError(
                        f"reward model {self.name!r} returned {_short(value)} "
                        f"({type(value).__name__}) at index {i}; expected a finite float"
                    )
            out[i] = value
        return out

    def __repr__(self) -> str:
        return f"FunctionRewardModel({self.name!r})"


def make_reward_model(spec: RewardSpec) -> CheckedRewardModel:
    """Resolve a reward spec to a checked reward model.

    Args:
        spec: one of ``"name"``, ``"name:arg"`` (split at the first colon),
            ``{spec: weight, ...}`` (keys are specs, usually strings; weights finite
            numbers), an object with a ``score(batch)`` method, or a function
            ``fn(exchange) -> float``. A ``CheckedRewardModel`` is returned unchanged.

    Returns:
        A :class:`CheckedRewardModel` whose ``name`` is the spec string (or a readable
        form of a mix, or ``describe(obj)``) and whose ``spec`` is the spec when it is
        serialisable, else ``None``.

    Raises:
        UnknownRewardError: a name is neither registered nor an installed plugin (a
            ``ValueError``; the message lists the registered names and accepted forms).
        ValueError: the spec is an empty string or dict, has an empty name or argument,
            passes an argument to a model that takes none, or has a weight that is not a
            finite number (the message says which key).
        TypeError: the spec is of no accepted form (e.g. an int, a list, a class).
        RewardModelError: a factory or its lazy import raised, a factory returned no
            reward model, or a plugin failed to load (the message names the entry point
            and its distribution); chained to the original exception.
    """
    if isinstance(spec, CheckedRewardModel):
        return spec
    if isinstance(spec, str):
        return _from_string(spec)
    if isinstance(spec, Mapping):
        return _from_mapping(spec)
    if isinstance(spec, type):
        raise TypeError(
            f"reward spec is the class {_callable_name(spec)}; pass an instance, or "
            f"register the class and use its name; accepted forms: {ACCEPTED_FORMS}"
        )
    if callable(getattr(spec, "score", None)):
        return CheckedRewardModel(spec, name=describe(spec), spec=None)
    if callable(spec):
        model = FunctionRewardModel(spec)
        return CheckedRewardModel(model, name=model.name, spec=None)
    raise TypeError(
        f"reward spec {_short(spec)} ({type(spec).__name__}) is not of an accepted form; "
        f"accepted forms: {ACCEPTED_FORMS}"
    )


def is_serialisable(spec: Any) -> bool:
    """Whether a spec survives ``EnvSpec.to_json()`` and pickling, so envs can be rebuilt.

    True for strings and for plain dicts whose keys are strings and whose weights are
    ``int``/``float`` (not bools). Only the form is checked, not whether the names are
    registered. Instances, functions and ``CheckedRewardModel`` objects are not
    serialisable (store ``model.spec`` instead).

    Args:
        spec: any spec.

    Returns:
        Whether ``spec`` is a serialisable form.
    """
    if isinstance(spec, str):
        return True
    if isinstance(spec, dict):
        return all(
            isinstance(key, str)
            and isinstance(weight, (int, float))
            and not isinstance(weight, bool)
            for key, weight in spec.items()
        )
    return False


def absolute_path(path: str) -> str:
    """``path`` made absolute (``~`` expanded): the canonical argument of path specs."""
    return str(Path(path).expanduser().resolve())


# Built-in reward models, registered like any plugin (lazily: nothing is imported here).
register(
    "rubric",
    "rlhf_envs.rewards.rubric:RubricRewardModel",
    argument="persona",
    description="scripted rubric modelled on what human raters reward; argument: annotator persona",
)
register(
    "learned",
    "rlhf_envs.rewards.learned.ensemble:load_reward_model",
    argument="path",
    description=(
        "a reward model trained on feedback (rlhf-envs train-rm); argument: checkpoint folder"
    ),
    canonical=absolute_path,
)
register(
    "fluency",
    "rlhf_envs.rewards.fluency:FluencyRewardModel",
    argument="path",
    description=(
        "how natural a reply reads: reference-LM likelihood and repeated phrases; "
        "argument: LM folder"
    ),
    canonical=absolute_path,
)
