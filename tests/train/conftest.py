"""Fixtures of the training tests: the tiny config (tests/tiny_run.py) and one prepared store."""

from __future__ import annotations

import pytest

from tiny_run import tiny_config


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
