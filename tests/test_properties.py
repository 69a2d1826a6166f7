"""Property-based tests (hypothesis): whatever a user passes to the file readers, the
reward-spec parser, an env's arguments, options and actions, or the label API, only the
documented error types come out (never a KeyError, an OverflowError, a RecursionError or
a 500 from deep inside).

Fast by default (a few dozen examples each); ``HYPOTHESIS_PROFILE=slow`` runs 10,000
examples each (``make test-properties``)."""

from __future__ import annotations

import json
import os
from functools import cache

import gymnasium as gym
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rlhf_envs.preference_data.formats import FeedbackFormatError, read_feedback
from rlhf_envs.rewards.registry import make_reward_model
from rlhf_envs.rewards.validation import RewardModelError

settings.register_profile(
    "fast", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "slow", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
# Objects shaped like records, with the keys readers look for, holding anything.
RECORD = st.fixed_dictionaries(
    {},
    optional={
        key: JSON
        for key in ("prompt", "chosen", "rejected", "completion", "label", "annotator", "messages")
    },
)


@given(st.lists(st.binary(max_size=200) | RECORD.map(json.dumps), min_size=1, max_size=5))
def test_the_feedback_reader_raises_only_format_errors(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("lines") / "data.jsonl"
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines))
    try:
        data = read_feedback(path, skip_invalid=False)
    except FeedbackFormatError:
        return
    for record in data:
        assert isinstance(record.prompt, str)


SPEC = st.recursive(
    st.text(max_size=30) | st.integers() | st.floats() | st.none(),
    lambda inner: st.dictionaries(st.text(max_size=20), inner, max_size=3) | st.lists(inner),
    max_leaves=6,
)


@given(SPEC)
def test_the_reward_spec_parser_raises_only_documented_errors(spec):
    try:
        make_reward_model(spec)
    except (ValueError, TypeError, RewardModelError):
        pass


@cache
def _tiny() -> gym.Env:
    return gym.make("RLHF-Tiny-v0")


ANY = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=10),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
)


@given(ANY)
def test_actions_are_taken_or_refused_with_a_value_error(action):
    env = _tiny()
    env.reset(seed=0)
    try:
        env.step(action)
    except ValueError:
        pass


@given(st.none() | st.text(max_size=5) | st.integers() | st.dictionaries(st.text(max_size=14), ANY))
def test_reset_options_are_used_or_refused(options):
    try:
        _tiny().reset(seed=0, options=options)
    except (TypeError, ValueError):
        pass


@example("domain", "~0")  # found by the slow profile: a home folder of an unknown user
@given(
    st.sampled_from(["num_candidates", "encoding_dim", "reward", "gold", "domain", "subflows"]),
    st.one_of(st.integers(-100, 300), st.floats(), st.text(max_size=12), st.none(), st.booleans()),
)
def test_env_arguments_are_used_or_refused(key, value):
    try:
        gym.make("RLHF-Tiny-v0", **{key: value}).close()
    except (TypeError, ValueError, RewardModelError):
        pass


@cache
def _client():
    import tempfile
    from pathlib import Path

    from fastapi.testclient import TestClient

    from rlhf_envs.feedback.app import create_app
    from rlhf_envs.feedback.pairs import PairSource
    from rlhf_envs.feedback.store import FeedbackStore

    store = FeedbackStore(Path(tempfile.mkdtemp()) / "f.sqlite")
    store.add_comparison("User: hi", "Hello!", "Bye.", source="test")
    source = PairSource(store, "RLHF-Tiny-v0", mode="random", overlap=0.0)
    app = create_app(store, source, allowed_hosts=("testserver",))
    _, token = store.invite("Ada")
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.mark.integration
@given(
    st.sampled_from(["/api/labels", "/api/ratings", "/api/annotators"]),
    st.fixed_dictionaries(
        {},
        optional={
            k: ANY | JSON
            for k in (
                "label_id",
                "comparison_id",
                "item_id",
                "annotator_id",
                "choice",
                "scale",
                "value",
                "reason",
                "seconds",
                "name",
            )
        },
    ),
)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_the_label_api_answers_every_body_without_a_server_error(path, body):
    # json.dumps writes NaN and Infinity as a careless or hostile client may send them.
    response = _client().post(
        path, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code < 500, (response.status_code, response.text)
    assert "error" in response.json() or response.status_code in (200, 201)
