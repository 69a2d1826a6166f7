"""Checked reward models: every score a plugin returns is validated before the env uses it.

A reward model is third-party code running inside ``env.step``. If it raises, returns NaN
or returns the wrong number of scores, the failure must name the plugin and say what it
returned, at the step where it happened, instead of surfacing thousands of steps later as
a NaN loss in PPO. :class:`CheckedRewardModel` wraps whatever
:func:`rlhf_envs.rewards.registry.make_reward_model` resolved and checks each result.

The check runs on every env step (usually a batch of one), so it is a handful of numpy
calls (``np.asarray``, a shape comparison, ``np.isfinite(...).all()``): about a
microsecond or two. The slower diagnosis (which index, which value) only runs once a
check has failed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlhf_envs.rewards.protocol import Exchange, describe

__all__ = ["CheckedRewardModel", "RewardModelError", "check_scores"]

# Array kinds accepted as scores: float, signed/unsigned int, bool (a function returning
# ``reply.endswith("?")`` is a legitimate 0/1 reward).
_NUMERIC_KINDS = frozenset("fiub")
_MAX_REPR = 80


class RewardModelError(RuntimeError):
    """A reward model failed, and the message names it.

    Raised when a model's factory or lazy import fails, when the model raises while
    scoring, or when it returns something other than one finite float per exchange. The
    original exception, where there is one, is chained as ``__cause__``.
    """


def _short(value: Any) -> str:
    """``repr(value)``, cut to one readable line for error messages."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__} object>"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _expected(n: int) -> str:
    return f"expected a 1-D array of {n} finite float{'' if n == 1 else 's'}"


def _first_non_real(arr: np.ndarray) -> tuple[int, Any] | None:
    """Index and value of the first element of a 1-D array that is not a real number."""
    for i, item in enumerate(arr.tolist()):
        if not isinstance(item, numbers.Real):  # bool is Real too, accepted as 0/1
            return i, item
    return None


def _raise_shape(values: Any, arr: np.ndarray, n: int, label: str) -> None:
    if arr.ndim == 0:  # a bare float, a dict, None...: say what it was, not "shape ()"
        raise RewardModelError(
            f"{label} returned {_short(values)} ({type(values).__name__}), not an array, "
            f"for a batch of {n}; {_expected(n)}"
        )
    raise RewardModelError(f"{label} returned shape {arr.shape} for a batch of {n}; {_expected(n)}")


def check_scores(values: Any, n: int, label: str) -> np.ndarray:
    """Validate what a reward model returned for a batch of ``n`` exchanges.

    Args:
        values: the model's return value (an array, a list, ...).
        n: the batch size, i.e. the number of scores expected.
        label: who returned it, for the message, e.g. ``"reward model 'rubric'"``.

    Returns:
        ``values`` as a float64 array of shape ``(n,)`` (no copy when it already is one).

    Raises:
        RewardModelError: ``values`` is not numeric, does not have shape ``(n,)``, or
            holds NaN or an infinity. The message says what was returned, e.g.
            ``reward model 'my_rm' returned shape (3, 1) for a batch of 3; expected a
            1-D array of 3 finite floats`` or ``reward model 'my_rm' returned nan at
            index 2; expected a 1-D array of 3 finite floats``.
    """
    if (
        type(values) is np.ndarray
        and values.dtype == np.float64
        and values.shape == (n,)
        and np.isfinite(values.sum())  # (a NaN or an infinity anywhere makes the sum one)
    ):
        return values  # the common case, checked in a few microseconds
    try:
        arr = np.asarray(values)
    except Exception as err:  # e.g. ragged lists, tensors that require grad
        raise RewardModelError(
            f"{label} returned {_short(values)}, which numpy cannot read as an array "
            f"({type(err).__name__}: {err}); {_expected(n)}"
        ) from err
    if arr.dtype.kind not in _NUMERIC_KINDS:
        # Not a numeric dtype: object arrays may still hold real numbers (e.g. a list of
        # Fractions); anything else is reported by its first offending element.
        if arr.shape != (n,):
            _raise_shape(values, arr, n, label)
        bad = _first_non_real(arr)
        if bad is not None:
            index, item = bad
            raise RewardModelError(
                f"{label} returned a non-numeric value at index {index}: {_short(item)}; "
                f"{_expected(n)}"
            )
        arr = np.array(arr.tolist(), dtype=np.float64)
    if arr.shape != (n,):
        _raise_shape(values, arr, n, label)
    if arr.dtype != np.float64:
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        index = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise RewardModelError(f"{label} returned {arr[index]} at index {index}; {_expected(n)}")
    return arr


def _clean_total(parts: Mapping[Any, Any], n: int) -> np.ndarray | None:
    """The parts' sum (part by part, in order) when every part is a float64 array of shape
    ``(n,)`` under a string key and the sum is finite (the common case: one check for all
    parts instead of one per part); ``None`` otherwise, for the part-by-part checks to say
    what is wrong."""
    for key, value in parts.items():
        if not (
            type(key) is str
            and type(value) is np.ndarray
            and value.dtype == np.float64
            and value.shape == (n,)
        ):
            return None
    # (a NaN or an infinity in any part shows in the total)
    if n == 1:
        # One reply (a single env's step): Python floats add in the same order with the
        # same double rounding as the arrays below, at a fraction of the cost.
        one = 0.0
        for value in parts.values():
            one += float(value[0])
        return np.array([one]) if math.isfinite(one) else None
    total = sum(parts.values(), np.zeros(n))
    return total if np.isfinite(total).all() else None


class CheckedRewardModel:
    """A resolved reward model whose every result is checked (what ``make_reward_model`` returns).

    Attributes:
        name: how errors and ``info`` refer to the model: the spec string (``"rubric:warm"``),
            a readable form of a weighted mix (``"1*rubric + 0.5*learned:ckpt"``), or
            ``describe(obj)`` for an instance or function.
        spec: the original spec when it is serialisable (a string or a ``{spec: weight}``
            dict), else ``None``. Store this, not the model, in configs and env specs.
        model: the wrapped object (whatever has the ``score`` method).
    """

    def __init__(self, model: Any, name: str | None = None, spec: Any = None) -> None:
        """Wrap ``model``.

        Args:
            model: an object with ``score(batch) -> np.ndarray`` and optionally
                ``components(batch) -> dict[str, np.ndarray]``.
            name: the label used in errors and component keys; ``describe(model)`` if None.
            spec: the serialisable spec ``model`` was made from, if any.

        Raises:
            TypeError: ``model`` has no callable ``score``.
        """
        score = getattr(model, "score", None)
        if not callable(score):
            raise TypeError(f"{_short(model)} has no score(batch) method; it is not a reward model")
        components = getattr(model, "components", None)
        self.model = model
        self.name: str = name if name else describe(model)
        self.spec = spec
        # Bound once here, not looked up per step.
        self._score = score
        self._components = components if callable(components) else None

    @property
    def has_components(self) -> bool:
        """Whether the wrapped model explains its score as named components."""
        return self._components is not None

    def score(self, batch: Sequence[Exchange]) -> np.ndarray:
        """Score a batch, checking the result.

        Args:
            batch: the exchanges to score.

        Returns:
            A float64 array of shape ``(len(batch),)``, all finite.

        Raises:
            RewardModelError: the model raised (chained) or returned something invalid.
        """
        n = len(batch)
        try:
            values = self._score(batch)
        except RewardModelError:
            raise  # an inner checked model (a mixture member) already named itself
        except Exception as err:
            raise RewardModelError(
                f"reward model {self.name!r} raised {type(err).__name__}: {err} "
                f"(scoring a batch of {n})"
            ) from err
        return check_scores(values, n, f"reward model {self.name!r}")

    def components(self, batch: Sequence[Exchange]) -> dict[str, np.ndarray]:
        """The score as named parts, each checked like ``score``.

        Args:
            batch: the exchanges to score.

        Returns:
            The model's own ``components(batch)`` when it has that method, else
            ``{self.name: self.score(batch)}``. Each value is a finite float64 array of
            shape ``(len(batch),)``.

        Raises:
            RewardModelError: the model raised (chained), returned no dict, a non-string
                key, or an invalid array for some component.
        """
        return self._components_and_total(batch)[0]

    def _components_and_total(
        self, batch: Sequence[Exchange]
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """:meth:`components`, and their sum when the quick check of all parts at once
        computed it (else ``None``)."""
        if self._components is None:
            return {self.name: self.score(batch)}, None
        n = len(batch)
        try:
            raw = self._components(batch)
        except RewardModelError:
            raise
        except Exception as err:
            raise RewardModelError(
                f"reward model {self.name!r} raised {type(err).__name__} in components(): {err} "
                f"(scoring a batch of {n})"
            ) from err
        if not isinstance(raw, Mapping) or not raw:
            raise RewardModelError(
                f"reward model {self.name!r} components() returned {_short(raw)}; expected a "
                f"non-empty dict of {{name: 1-D array of {n} finite floats}}"
            )
        total = _clean_total(raw, n)
        if total is not None:
            return dict(raw), total  # every part already a finite float64 array of shape (n,)
        out: dict[str, np.ndarray] = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                raise RewardModelError(
                    f"reward model {self.name!r} components() returned the key {_short(key)}; "
                    f"component names must be strings"
                )
            out[key] = check_scores(value, n, f"reward model {self.name!r} component {key!r}")
        return out, None

    def check_domain(self, domain: Any) -> None:
        """Raise unless the wrapped model can score ``domain``'s replies, when it says
        (an optional ``check_domain(domain)`` method; the env calls this when it is made).

        Raises:
            ValueError: the model's own clear error (an unknown persona, a bad rubric file).
            RewardModelError: the model's check raised anything else (chained).
        """
        check = getattr(self.model, "check_domain", None)
        if not callable(check):
            return
        try:
            check(domain)
        except (ValueError, RewardModelError):
            raise
        except Exception as err:
            raise RewardModelError(
                f"reward model {self.name!r} raised {type(err).__name__} in check_domain(): {err}"
            ) from err

    def score_and_components(
        self, batch: Sequence[Exchange]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Scores and their named parts from one run of the model (what the env calls
        each step, so a plugin is not run twice).

        For a model with ``components``, the score is their sum (the
        ``ComponentRewardModel`` protocol); otherwise the parts are ``{name: score}``.

        Raises:
            RewardModelError: as ``score`` and ``components``.
        """
        if self._components is None:
            scores = self.score(batch)
            return scores, {self.name: scores}
        parts, total = self._components_and_total(batch)
        if total is None:
            total = sum(parts.values(), np.zeros(len(batch)))
        return total, parts

    def __reduce__(self) -> tuple[Any, ...]:
        # Bound methods are cached on the instance; rebuild from the constructor instead.
        return (type(self), (self.model, self.name, self.spec))

    def __repr__(self) -> str:
        return f"CheckedRewardModel({self.name!r})"
