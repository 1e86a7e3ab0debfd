"""Training-time augmentation of the clean slices, on the device before they are corrupted.

``train.augment = "flips"``: each slice is mirrored along its rows and/or its columns with
probability 1/2 each (a draw per sample from the step key, so resumed runs repeat it). The
corruption is simulated after the flip, so the physics is unchanged; only the anatomy the
network sees is less tied to one orientation (the phantom's head is always on the same side).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kmri_jax.config import ConfigValueError

AUGMENTS = ("", "flips")


def check_augment(config) -> str:
    """``train.augment``, checked: flips would move the anatomy away from the fixed weight map
    and field map (referenced to the lungs' position along an axis), so they do not mix."""
    name = config.train.augment
    if name not in AUGMENTS:
        raise ConfigValueError(f"train.augment must be one of {AUGMENTS}, got {name!r}")
    if name and (config.corruption.weight_map or config.corruption.field_map):
        raise ConfigValueError("train.augment='flips' mirrors the anatomy, but "
                               "corruption.weight_map/field_map are fixed to its lungs; "
                               "use one or the other")
    return name


def random_flips(key: jax.Array, images: jax.Array) -> jax.Array:
    """``images [B, ny, nx]`` with each slice flipped along rows and/or columns (p = 1/2 each)."""
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0], 2))
    rows = jnp.where(flip[:, 0, None, None], images[:, ::-1, :], images)
    return jnp.where(flip[:, 1, None, None], rows[:, :, ::-1], rows)
