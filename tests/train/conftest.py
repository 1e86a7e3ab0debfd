"""Fixtures of the training tests: the tiny config (tests/tiny_run.py), one prepared store, and
the tiny loop run in fresh processes on one and two CPU devices."""

from __future__ import annotations

from pathlib import Path

import pytest

from once import once_per_run
from tiny_run import run_loop, tiny_config


@pytest.fixture
def config():
    return tiny_config()


@pytest.fixture(scope="session")
def shared_store(tmp_path_factory):
    """One prepared phantom store for all loop tests (building it is the slow part)."""
    from kmri_jax.train.loop import prepare_data

    workdir = tmp_path_factory.mktemp("store")
    c = tiny_config()
    prepare_data(c, workdir)
    return workdir / "store"


@pytest.fixture(scope="session")
def loop_runs(tmp_path_factory):
    """The tiny loop run in fresh processes on one and on two CPU devices, 12 steps each
    (evaluations at steps 8 and 12), compiling into one shared persistent cache; once per
    test run (tests/once.py)."""

    def compute(tmp):
        cache = str(tmp / "xla-cache")
        every = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
        one = run_loop(tmp / "one", cpu_devices=1, max_steps=12, cache=cache, **every)
        entries_after_one = sorted(p.name for p in (tmp / "xla-cache").iterdir())
        two = run_loop(tmp / "two", cpu_devices=2, max_steps=12, cache=cache, **every)
        return {"one": one, "two": two, "cache": cache, "entries_after_one": entries_after_one,
                "tmp": str(tmp)}

    runs = once_per_run(tmp_path_factory, "loop-runs", compute)
    return {**runs, "tmp": Path(runs["tmp"])}
