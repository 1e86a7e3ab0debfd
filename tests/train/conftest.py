"""A tiny training configuration shared by the loop tests (phantom data, 32x48, 4 channels)."""

from __future__ import annotations

import pytest

from kmri_jax.config import base_config


def tiny_config():
    c = base_config()
    c.data.ny, c.data.nx = 32, 48
    c.data.phantom_subjects = 6
    c.data.phantom_slices = 8
    c.model.base_channels = 4
    c.train.batch_size = 4
    c.train.num_epochs = 1
    c.train.max_steps = 6
    c.train.log_every_steps = 1
    c.eval.batch_size = 8
    c.eval.combinations = "0,80"
    c.eval.num_images = 2
    c.checkpoint.async_save = False
    return c


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
