"""Test-session set-up: the test reference LM, built when a test first needs it; one
torch thread per pytest-xdist worker; ``rlhf-envs`` run in-process (``cli``); the HH-RLHF
sample (``hh_sample``).

The test LM
-----------
The registered tokens and text ids use the project's reference LM, which their first use
builds (minutes). Tests use a smaller build of the same pipeline (``lm_build_config()``,
under a minute, kept in the user's cache like any build, so later runs reuse it).

It is built only when the first test that needs it runs, once per session (pytest-xdist
workers wait on the build's file lock, so one of them builds it), and not at all in a
run that needs none. A test needs it when:

- it is parametrised with a tokens or text env id (``RLHF-ChatTokens-v0``, ...) or with
  make() arguments that ask for those interfaces: marked ``lm`` automatically;
- it is marked ``@pytest.mark.lm`` (or its module sets ``pytestmark``): it makes such an
  env some other way, or starts a subprocess that does;
- it uses the ``test_lm_folder`` fixture (as a module fixture that loads the LM must).

A marked test runs with ``RLHF_ENVS_LM`` pointing at the test LM, in its own process and
in the subprocesses it starts. Every other test sees a folder that does not exist and
whose name says what to do, so a test that needs the LM without saying so fails at once
with the env's "not a language-model folder" error, whatever the cache holds, instead of
passing only when an earlier test happened to build the LM. ``RLHF_ENVS_LM`` set before
pytest starts is used as the test LM instead of the build.

``tests/test_golden_trajectories.py`` records with the same LM: ``use_test_lm()``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

LM_ENV_VAR = "RLHF_ENVS_LM"  # rlhf_envs.lm.build.LM_ENV_VAR, without importing torch here
# What unmarked tests see: a folder that does not exist, named for the fix.
NO_LM = "/nonexistent/rlhf-envs-tests/this-test-needs-the-LM--mark-it-pytest.mark.lm"
# Set before pytest started: the user's LM, used by every test. (The xdist workers
# inherit NO_LM from the controller, which imported this file before starting them.)
_USER_LM = os.environ.get(LM_ENV_VAR) if os.environ.get(LM_ENV_VAR) != NO_LM else None
if not _USER_LM:
    os.environ[LM_ENV_VAR] = NO_LM


def lm_build_config():
    """The build settings of the test LM: a small build of the reference pipeline."""
    from rlhf_envs.lm.build import LMBuildConfig
    from rlhf_envs.lm.sft import SFTConfig

    # 128 positions (the reference LM reads 256): the tokens and text tests read half the
    # window, which keeps `make test` within its time budget; nothing tested depends on 256.
    sft = SFTConfig(steps=150, n_positions=128, batch_size=32)
    return LMBuildConfig(episodes=600, held_out=60, vocab_size=1024, sft=sft)


def use_test_lm(quiet: bool = True) -> Path:
    """Build the test LM if the cache lacks it, point ``RLHF_ENVS_LM`` at it in this
    process (and the subprocesses it starts from now on), and return its folder."""
    if _USER_LM:
        path = Path(_USER_LM).expanduser().resolve()
    else:
        from rlhf_envs.lm.build import default_lm_path

        path = default_lm_path(lm_build_config(), quiet=quiet)
    os.environ[LM_ENV_VAR] = str(path)
    return path


@pytest.fixture(scope="session")
def test_lm_folder() -> Path:
    """The test LM's folder, built on first use in the session."""
    path = use_test_lm()
    if not _USER_LM:
        os.environ[LM_ENV_VAR] = NO_LM  # only the tests that ask see it (the fixture below)
    return path


@pytest.fixture(autouse=True)
def _lm_for_the_tests_that_need_it(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.get_closest_marker("lm") or "test_lm_folder" in request.fixturenames:
        monkeypatch.setenv(LM_ENV_VAR, str(request.getfixturevalue("test_lm_folder")))


@pytest.fixture(autouse=True)
def _torch_threads_as_they_were():
    """A test that sets torch's thread count (an example's main() does) leaves the count
    it found, so the tests after it in the same process do not inherit it."""
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """``cli(*ARGS)``: ``rlhf-envs ARGS`` run in ``tmp_path`` by this interpreter, with the
    exit status, stdout and stderr a shell would see: ``SystemExit("message")`` prints
    the message to stderr and exits 1. Any other exception fails the test, as a traceback
    would show a user that something was not handled."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess:
        from rlhf_envs.cli import main

        try:
            status = main(list(args))
        except SystemExit as stop:
            if isinstance(stop.code, str):
                print(stop.code, file=sys.stderr)
            status = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, status, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def hh_sample() -> Path:
    """110 records of Anthropic's HH-RLHF (harmless-base), shipped with the tests: see
    tests/data/README.md for where they come from, their licence and their bad lines."""
    return Path(__file__).resolve().parent / "data" / "hh-rlhf" / "harmless-base-sample.jsonl"


def _lm_env_ids() -> set[str]:
    import rlhf_envs

    return {i for i, kw in rlhf_envs.ENV_PRESETS.items() if kw["interface"] in ("tokens", "text")}


def _mentions(value: Any, names: set[str]) -> bool:
    """Whether ``value`` (a parameter: strings, containers, make() keyword dicts) names an
    env id in ``names`` or asks for the tokens or text interface."""
    if isinstance(value, str):
        return value in names
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_mentions(v, names) for v in value)
    if isinstance(value, dict):
        if value.get("interface") in ("tokens", "text"):
            return True
        return any(_mentions(v, names) for v in (*value, *value.values()))
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lm_ids: set[str] | None = None
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", None)
        if params:
            lm_ids = _lm_env_ids() if lm_ids is None else lm_ids
            if _mentions(list(params.values()), lm_ids):
                item.add_marker(pytest.mark.lm)
    # The long tests first: two xdist workers then end together on short ones, instead of
    # one finishing a long test alone at the end.
    items.sort(key=lambda item: item.get_closest_marker("integration") is None)


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist workers on a 2-core machine: one torch thread each, in the worker and
    # in the subprocesses it starts, or torch's thread pools oversubscribe the cores.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


def pytest_report_header(config: pytest.Config) -> str:
    return f"test LM: {_USER_LM or 'built on first use (tests/conftest.py)'}"


if __name__ == "__main__":
    # `make test-lm`: the test LM built (or found in the cache) as a set-up step of its
    # own, so that a test session does not wait on it.
    print(f"test LM: {use_test_lm(quiet=False)}")
