"""Tests of reward-spec resolution, plugins and result checking (registry, mixture, validation).

The built-in ``rubric`` module is written elsewhere, so these tests never resolve
``"rubric"``; they register their own small models and restore the registry afterwards.
"""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
import textwrap
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec

from rlhf_envs.dialogue import Turn
from rlhf_envs.rewards import registry
from rlhf_envs.rewards.mixture import WeightedMixture
from rlhf_envs.rewards.protocol import Exchange
from rlhf_envs.rewards.registry import (
    FunctionRewardModel,
    RewardModelError,
    UnknownRewardError,
    is_serialisable,
    make_reward_model,
    refresh_plugins,
    register,
    registered_names,
)
from rlhf_envs.rewards.validation import CheckedRewardModel, check_scores


def ex(reply: str = "hello") -> Exchange:
    return Exchange(scenario=None, history=(Turn("user", "hi"),), reply=reply)


BATCH = [ex("hello"), ex("hi there"), ex("good day to you")]


# --- test models (module level so they pickle) -----------------------------------------


class LengthModel:
    """Score = reply length * scale; takes an optional ``scale`` argument (a string)."""

    def __init__(self, scale: str = "1") -> None:
        self.scale = float(scale)

    def score(self, batch):
        return np.array([len(e.reply) * self.scale for e in batch])


class PathModel:
    """Records the argument it was built with (to check colon handling)."""

    def __init__(self, path: str = "default") -> None:
        self.path = path

    def score(self, batch):
        return np.zeros(len(batch))


class TwoPartModel:
    """A ComponentRewardModel: 'len' and 'bonus' parts."""

    name = "two_part"

    def components(self, batch):
        return {
            "len": np.array([float(len(e.reply)) for e in batch]),
            "bonus": np.ones(len(batch)),
        }

    def score(self, batch):
        return sum(self.components(batch).values())


class Returns:
    """Returns a fixed value, whatever the batch."""

    def __init__(self, value, name: str = "my_rm") -> None:
        self.value = value
        self.name = name

    def score(self, batch):
        return self.value


class Raises:
    name = "boom_rm"

    def score(self, batch):
        raise ZeroDivisionError("division by zero in the head")


class BadComponents:
    name = "bad_parts"

    def __init__(self, parts):
        self.parts = parts

    def score(self, batch):
        return np.zeros(len(batch))

    def components(self, batch):
        return self.parts


def reply_length(exchange: Exchange) -> float:
    return float(len(exchange.reply))


def returns_none(exchange: Exchange):
    return None


def returns_str(exchange: Exchange):
    return "1.5"


def fails(exchange: Exchange) -> float:
    raise KeyError("missing field")


def broken_factory(scale: str = "1"):
    raise ValueError(f"no checkpoint at {scale!r}")


@pytest.fixture(autouse=True)
def clean_registry():
    """Snapshot the registry and forget discovered plugins around each test."""
    saved = dict(registry._REGISTRY)
    refresh_plugins()
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
    refresh_plugins()


# --- resolution of each spec form ----------------------------------------------------


def test_function_spec_is_scored_per_exchange():
    rm = make_reward_model(reply_length)
    assert isinstance(rm, CheckedRewardModel)
    assert isinstance(rm.model, FunctionRewardModel)
    assert rm.spec is None
    assert "reply_length" in rm.name
    out = rm.score(BATCH)
    assert out.dtype == np.float64 and out.shape == (3,)
    np.testing.assert_array_equal(out, [5, 8, 15])
    assert rm.components(BATCH) == {rm.name: pytest.approx(out)}
    assert rm.score([]).shape == (0,)


def test_registered_class_with_and_without_argument():
    register("length", LengthModel, argument="scale", description="reply length")
    plain = make_reward_model("length")
    assert plain.name == "length" and plain.spec == "length"
    np.testing.assert_array_equal(plain.score(BATCH), [5, 8, 15])
    scaled = make_reward_model("length:0.5")
    assert scaled.name == "length:0.5"
    assert scaled.model.scale == 0.5
    np.testing.assert_array_equal(scaled.score(BATCH), [2.5, 4, 7.5])
    assert "length" in registered_names()
    assert "length, length:SCALE  reply length" in registry.describe_registered()


def test_argument_splits_at_first_colon_only():
    register("by_path", PathModel, argument="path")
    rm = make_reward_model("by_path:C:/models/rm:v2")
    assert rm.model.path == "C:/models/rm:v2"
    assert rm.name == "by_path:C:/models/rm:v2"


def test_lazy_import_string_factory():
    register("lazy_len", f"{__name__}:LengthModel", argument="scale")
    rm = make_reward_model("lazy_len:2")
    assert isinstance(rm.model, LengthModel)
    np.testing.assert_array_equal(rm.score(BATCH[:1]), [10])


def test_instance_spec():
    inst = LengthModel("3")
    rm = make_reward_model(inst)
    assert rm.model is inst and rm.spec is None
    assert rm.name.endswith("LengthModel instance")
    np.testing.assert_array_equal(rm.score(BATCH[:1]), [15])
    named = make_reward_model(TwoPartModel())
    assert named.name == "two_part"
    assert make_reward_model(rm) is rm


def test_weighted_mix_values_and_components():
    register("length", LengthModel, argument="scale")
    register("two", TwoPartModel)
    spec = {"length": 1.0, "length:2": -0.5, "two": 2}
    rm = make_reward_model(spec)
    assert isinstance(rm.model, WeightedMixture)
    assert rm.spec == spec and rm.spec is not spec
    assert rm.name == "1*length + -0.5*length:2 + 2*two"
    lengths = np.array([5.0, 8.0, 15.0])
    expected = lengths - 0.5 * 2 * lengths + 2 * (lengths + 1)
    np.testing.assert_allclose(rm.score(BATCH), expected)
    comps = rm.components(BATCH)
    assert list(comps) == ["length", "length:2", "two/len", "two/bonus"]
    np.testing.assert_allclose(comps["length"], lengths)
    np.testing.assert_allclose(comps["length:2"], -lengths)
    np.testing.assert_allclose(comps["two/len"], 2 * lengths)
    np.testing.assert_allclose(comps["two/bonus"], [2, 2, 2])
    # The entries add up to the score, and score_and_components runs each member once.
    np.testing.assert_allclose(sum(comps.values()), rm.score(BATCH))
    scores, again = rm.score_and_components(BATCH)
    np.testing.assert_allclose(scores, rm.score(BATCH))
    assert list(again) == list(comps)


def test_mix_may_hold_functions_and_dedupes_labels():
    rm = make_reward_model({reply_length: 2.0})
    np.testing.assert_array_equal(rm.score(BATCH[:1]), [10])
    assert rm.spec is None
    mix = WeightedMixture(
        [(1.0, make_reward_model(reply_length)), (1.0, make_reward_model(reply_length))]
    )
    assert mix.labels[1] == mix.labels[0] + "#2"


def test_component_model_components_are_checked_and_returned():
    rm = make_reward_model(TwoPartModel())
    comps = rm.components(BATCH)
    assert set(comps) == {"len", "bonus"}
    assert all(v.dtype == np.float64 and v.shape == (3,) for v in comps.values())


# --- serialisability ----------------------------------------------------------------------


def test_is_serialisable_for_each_form():
    assert is_serialisable("rubric")
    assert is_serialisable("learned:C:/x:y")
    assert is_serialisable({"rubric": 1.0, "learned:ckpt": 1})
    assert is_serialisable({"a": np.float64(0.5)})  # a float subclass: json and pickle work
    assert not is_serialisable({"a": np.float32(0.5)})  # json.dumps refuses it
    assert not is_serialisable({"a": True})
    assert not is_serialisable({reply_length: 1.0})
    assert not is_serialisable(reply_length)
    assert not is_serialisable(LengthModel())
    assert not is_serialisable(make_reward_model(LengthModel()))
    assert not is_serialisable(3)


@pytest.mark.parametrize(
    "spec", ["length:0.5", "learned:C:/models/rm:v2", {"length": 1.0, "length:2": 0.25}]
)
def test_string_and_dict_specs_pickle_and_jsonify(spec):
    register("length", LengthModel, argument="scale")
    register("learned", PathModel, argument="path", overwrite=True)
    env_spec = EnvSpec(id="RewardSpecTest-v0", entry_point="no.such:Env", kwargs={"reward": spec})
    restored = pickle.loads(pickle.dumps(env_spec)).kwargs["reward"]
    from_json = json.loads(env_spec.to_json())["kwargs"]["reward"]
    assert restored == spec and from_json == spec
    a, b = make_reward_model(spec), make_reward_model(restored)
    assert a.name == b.name and a.spec == spec
    np.testing.assert_array_equal(a.score(BATCH), b.score(BATCH))


def test_checked_model_pickles():
    register("length", LengthModel, argument="scale")
    rm = pickle.loads(pickle.dumps(make_reward_model("length:2")))
    assert rm.name == "length:2" and rm.spec == "length:2"
    np.testing.assert_array_equal(rm.score(BATCH[:1]), [10])


# --- entry-point plugins ------------------------------------------------------------------


def write_plugin(root: Path, entry_points: str, module_source: str, dist: str) -> None:
    """A fake installed distribution under ``root``: a *.dist-info folder and a module.

    ``MOD`` in ``entry_points`` stands for the module's name, which is unique per call so
    no stale ``sys.modules`` entry from another test is picked up.
    """
    module = f"rlhf_test_plugin_{uuid.uuid4().hex}"
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points).replace("MOD", module))
    (root / f"{module}.py").write_text(textwrap.dedent(module_source))


PLUGIN_SOURCE = """
    import numpy as np

    class Const:
        def __init__(self, value="7"):
            self.value = float(value)

        def score(self, batch):
            return np.full(len(batch), self.value)

    class Echo:
        def __init__(self, *args):
            self.args = args

        def score(self, batch):
            return np.zeros(len(batch))

    def nan_model():
        class M:
            def score(self, batch):
                return np.full(len(batch), np.nan)
        return M()
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Installs a fake plugin distribution on sys.path; returns the installer."""

    def install(entry_points: str, dist: str = "rlhf-test-plugin", refresh: bool = True) -> None:
        root = tmp_path / dist
        write_plugin(root, entry_points, PLUGIN_SOURCE, dist)
        monkeypatch.syspath_prepend(str(root))
        if refresh:
            refresh_plugins()

    yield install
    for name in [m for m in sys.modules if m.startswith("rlhf_test_plugin_")]:
        del sys.modules[name]


def test_entry_point_plugin_is_discovered_and_built(plugin):
    plugin(
        """
        [rlhf_envs.rewards]
        const = MOD:Const
        echo = MOD:Echo
        """
    )
    assert {"const", "echo"} <= set(registered_names())
    rm = make_reward_model("const")
    assert rm.name == "const" and rm.spec == "const"
    np.testing.assert_array_equal(rm.score(BATCH), [7, 7, 7])
    np.testing.assert_array_equal(make_reward_model("const:2").score(BATCH[:1]), [2])
    # The argument is passed as the single positional argument, colons kept.
    assert make_reward_model("echo:C:/models/rm:v2").model.args == ("C:/models/rm:v2",)
    assert make_reward_model("echo").model.args == ()


def test_plugin_factory_failure_names_spec_and_distribution(plugin):
    plugin(
        """
        [rlhf_envs.rewards]
        const = MOD:Const
        """
    )
    with pytest.raises(RewardModelError) as err:
        make_reward_model("const:not-a-number")
    msg = str(err.value)
    assert msg.startswith(
        "could not build reward model 'const:not-a-number' "
        "(plugin from distribution 'rlhf-test-plugin 1.0'): "
    )
    assert "Const('not-a-number') raised ValueError" in msg
    assert isinstance(err.value.__cause__, ValueError)


def test_plugin_listed_in_unknown_error_and_mix(plugin):
    plugin(
        """
        [rlhf_envs.rewards]
        const = MOD:Const
        """
    )
    with pytest.raises(UnknownRewardError, match="const, const:ARG"):
        make_reward_model("konst")
    rm = make_reward_model({"const:2": 0.5, "const": 1.0})
    np.testing.assert_array_equal(rm.score(BATCH[:2]), [8, 8])


def test_plugin_discovery_is_cached_until_refresh(plugin):
    assert "late" not in registered_names()  # reads (and caches) the entry points
    plugin(
        """
        [rlhf_envs.rewards]
        late = MOD:Const
        """,
        refresh=False,
    )
    assert "late" not in registered_names()
    with pytest.raises(UnknownRewardError):
        make_reward_model("late")
    refresh_plugins()
    assert "late" in registered_names()
    np.testing.assert_array_equal(make_reward_model("late").score(BATCH[:1]), [7])


def test_broken_plugin_names_entry_point_and_distribution(plugin):
    plugin(
        """
        [rlhf_envs.rewards]
        broken = rlhf_no_such_module_xyz:Factory
        """,
        dist="broken-dist",
    )
    assert "broken" in registered_names()  # listing does not import it
    with pytest.raises(RewardModelError) as err:
        make_reward_model("broken")
    msg = str(err.value)
    assert "reward plugin 'broken' failed to load" in msg
    assert "entry point 'broken = rlhf_no_such_module_xyz:Factory'" in msg
    assert "distribution 'broken-dist 1.0'" in msg
    assert "ModuleNotFoundError" in msg
    assert isinstance(err.value.__cause__, ModuleNotFoundError)


def test_plugin_returning_nan_is_named(plugin):
    plugin(
        """
        [rlhf_envs.rewards]
        nanny = MOD:nan_model
        """
    )
    rm = make_reward_model("nanny")
    with pytest.raises(RewardModelError, match=r"reward model 'nanny' returned nan at index 0"):
        rm.score(BATCH)


def test_code_registration_wins_over_plugin(plugin):
    plugin(
        """
        [rlhf_envs.rewards]
        length = MOD:Const
        """
    )
    register("length", LengthModel, argument="scale")
    assert isinstance(make_reward_model("length").model, LengthModel)
    assert registered_names().count("length") == 1


def test_same_plugin_name_from_two_distributions_is_an_error(plugin):
    for dist in ("dist-a", "dist-b"):
        plugin(
            """
            [rlhf_envs.rewards]
            twin = MOD:Const
            """,
            dist=dist,
        )
    with pytest.raises(RewardModelError, match="several entry points") as err:
        make_reward_model("twin")
    assert "dist-a 1.0" in str(err.value) and "dist-b 1.0" in str(err.value)


# --- failures of plugins at scoring time -----------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (
            np.zeros((3, 1)),
            (
                "reward model 'my_rm' returned shape (3, 1) for a batch of 3; "
                "expected a 1-D array of 3 finite floats"
            ),
        ),
        (np.zeros(2), "returned shape (2,) for a batch of 3"),
        (0.5, "returned 0.5 (float), not an array, for a batch of 3"),
        (None, "returned None (NoneType), not an array"),
        (np.array([0.0, 1.0, np.nan]), "reward model 'my_rm' returned nan at index 2"),
        (np.array([0.0, -np.inf, 1.0]), "returned -inf at index 1"),
        ([1.0, None, 2.0], "returned a non-numeric value at index 1: None"),
        (np.array(["a", "b", "c"]), "returned a non-numeric value at index 0: 'a'"),
        ([1, [2, 3], 4], "which numpy cannot read as an array"),
        (np.array([1 + 2j, 0, 0]), "non-numeric value at index 0: (1+2j)"),
        ({"a": 1}, "returned {'a': 1} (dict), not an array"),
    ],
)
def test_invalid_results_are_named(value, expected):
    rm = make_reward_model(Returns(value))
    with pytest.raises(RewardModelError) as err:
        rm.score(BATCH)
    assert expected in str(err.value)
    assert "'my_rm'" in str(err.value)


def test_numeric_results_in_other_dtypes_are_accepted():
    for value in (
        [1, 2, 3],
        np.array([True, False, True]),
        np.arange(3, dtype=np.float32),
        [Fraction(1, 2)] * 3,
    ):
        out = make_reward_model(Returns(value)).score(BATCH)
        assert out.dtype == np.float64 and out.shape == (3,)


def test_model_that_raises_is_named_and_chained():
    with pytest.raises(
        RewardModelError,
        match=r"reward model 'boom_rm' raised ZeroDivisionError: "
        r"division by zero in the head \(scoring a batch of 3\)",
    ) as err:
        make_reward_model(Raises()).score(BATCH)
    assert isinstance(err.value.__cause__, ZeroDivisionError)


@pytest.mark.parametrize(
    "fn, expected",
    [
        (returns_none, "returned None (NoneType) at index 0"),
        (returns_str, "returned '1.5' (str) at index 0"),
        (fails, "raised KeyError: 'missing field' (at index 0 of a batch of 3)"),
        (lambda e: math.inf, "returned inf at index 0"),
    ],
)
def test_bad_functions_are_named(fn, expected):
    rm = make_reward_model(fn)
    with pytest.raises(RewardModelError) as err:
        rm.score(BATCH)
    assert expected in str(err.value)
    assert fn.__qualname__ in str(err.value)


def test_function_may_return_zero_dim_arrays():
    rm = make_reward_model(lambda e: np.array(2.0))
    np.testing.assert_array_equal(rm.score(BATCH[:2]), [2, 2])


@pytest.mark.parametrize(
    "parts, expected",
    [
        (
            {"a": np.full(3, np.nan)},
            "reward model 'bad_parts' component 'a' returned nan at index 0",
        ),
        ({"a": np.zeros(2)}, "component 'a' returned shape (2,) for a batch of 3"),
        ({}, "components() returned {}"),
        ([np.zeros(3)], "expected a non-empty dict"),
        ({1: np.zeros(3)}, "returned the key 1"),
    ],
)
def test_invalid_components_are_named(parts, expected):
    with pytest.raises(RewardModelError) as err:
        make_reward_model(BadComponents(parts)).components(BATCH)
    assert expected in str(err.value)


def test_failing_mix_member_is_named():
    register("length", LengthModel, argument="scale")
    rm = make_reward_model({"length": 1.0, Returns(np.zeros(3) * np.nan, name="bad_member"): 1.0})
    with pytest.raises(RewardModelError, match="reward model 'bad_member' returned nan"):
        rm.score(BATCH)
    with pytest.raises(RewardModelError, match="reward model 'bad_member' returned nan"):
        rm.components(BATCH)


def test_factory_failures_are_chained():
    register("broken", broken_factory, argument="scale")
    with pytest.raises(RewardModelError) as err:
        make_reward_model("broken:x")
    msg = str(err.value)
    assert "could not build reward model 'broken:x'" in msg
    assert "broken_factory(scale='x') raised ValueError: no checkpoint at 'x'" in msg
    assert isinstance(err.value.__cause__, ValueError)

    register("not_a_model", lambda: 42)
    with pytest.raises(RewardModelError, match=r"returned 42, which has no score\(batch\) method"):
        make_reward_model("not_a_model")

    register("bad_import", "rlhf_no_such_module_xyz:Model")
    with pytest.raises(RewardModelError, match="'bad_import' could not be loaded from") as err:
        make_reward_model("bad_import")
    assert isinstance(err.value.__cause__, ModuleNotFoundError)


# --- spec errors ----------------------------------------------------------------------


def test_unknown_spec_lists_names_and_forms():
    register("length", LengthModel, argument="scale")
    register("learned", PathModel, argument="path", overwrite=True)
    with pytest.raises(UnknownRewardError) as err:
        make_reward_model("lerned:ckpt")
    msg = str(err.value)
    assert msg.startswith("reward spec 'lerned:ckpt' is unknown (did you mean 'learned:ckpt'?); ")
    assert (
        "registered: fluency, fluency:PATH, learned, learned:PATH, length, length:SCALE, "
        "rubric, rubric:PERSONA;" in msg
    )
    assert msg.endswith(
        "accepted forms: 'name', 'name:arg', {spec: weight}, a RewardModel instance, "
        "a function(exchange) -> float"
    )
    assert isinstance(err.value, ValueError)
    with pytest.raises(UnknownRewardError, match="unknown; registered"):
        make_reward_model({"zzzz": 1.0})


@pytest.mark.parametrize("spec", [3, [("length", 1.0)], None, b"length", 2.5])
def test_wrong_type_raises_type_error_with_forms(spec):
    with pytest.raises(TypeError, match="accepted forms: 'name', 'name:arg'"):
        make_reward_model(spec)


def test_class_instead_of_instance_is_a_type_error():
    with pytest.raises(TypeError, match="the class .*LengthModel; pass an instance"):
        make_reward_model(LengthModel)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("", "reward spec is an empty string"),
        ("   ", "reward spec is an empty string"),
        ({}, "reward mix is an empty dict"),
        ("length:", "has an empty argument after ':'"),
        (":x", "has no name before ':'"),
        ({"length": math.nan}, "weight for 'length' must be a finite number; got nan"),
        ({"length": math.inf}, "weight for 'length' must be a finite number; got inf"),
        ({"length": "0.5"}, "weight for 'length' must be a finite number; got '0.5' (str)"),
        ({"length": None}, "weight for 'length' must be a finite number; got None"),
        ({"length": True}, "weight for 'length' must be a finite number; got True (bool)"),
        ("plain:arg", "passes the argument 'arg', but reward model 'plain' takes no argument"),
    ],
)
def test_bad_specs_raise_value_error(spec, expected):
    register("length", LengthModel, argument="scale")
    register("plain", TwoPartModel)
    with pytest.raises(ValueError) as err:
        make_reward_model(spec)
    assert expected in str(err.value)
    assert not isinstance(err.value, UnknownRewardError)


# --- registration ----------------------------------------------------------------------


def test_register_validates_names_and_overwrite():
    register("length", LengthModel)
    with pytest.raises(ValueError, match="already registered"):
        register("length", PathModel)
    register("length", PathModel, overwrite=True)
    assert isinstance(make_reward_model("length").model, PathModel)
    for bad in ("", "a:b", "has space", "tab\t", 3):
        with pytest.raises(ValueError, match="is invalid"):
            register(bad, LengthModel)
    with pytest.raises(ValueError, match="import string"):
        register("lazy", "no_colon_here")
    with pytest.raises(TypeError, match="must be callable"):
        register("obj", 42)
    with pytest.raises(ValueError, match="keyword name"):
        register("argy", LengthModel, argument="not an identifier")


@pytest.mark.integration
def test_builtin_rubric_is_registered_lazily():
    assert "rubric" in registered_names()
    entry = registry._REGISTRY["rubric"]
    assert entry.factory == "rlhf_envs.rewards.rubric:RubricRewardModel"
    assert entry.argument == "persona"
    # The factory is resolved on first use, not at registration (checked in a fresh
    # interpreter, since other tests in this process have used it).
    code = (
        "from rlhf_envs.rewards import registry; assert registry._REGISTRY['rubric'].loaded is None"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_check_scores_returns_input_without_copy():
    arr = np.arange(3, dtype=np.float64)
    assert check_scores(arr, 3, "x") is arr
