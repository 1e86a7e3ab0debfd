"""The tiny training configuration the loop, data-parallel and task tests share:
phantom data at 32x48, a 4-channel U-Net, batch 4, a few steps."""

from __future__ import annotations

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
    c.runtime.compilation_cache = ""  # Tests never write to ~/.cache.
    return c
