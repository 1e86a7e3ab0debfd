"""The networks (architecture only; no training code, no simulator import).

:func:`build` makes the network of a ``config.model`` kind: ``kspace_unet``, ``image_unet``
and ``estimate_unet`` are a :class:`UNet` (what it reads is the training code's choice),
``motion_unet`` a :class:`MotionCorrector` (a :class:`MotionNet` and an image :class:`UNet`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import nnx

from kmri_jax.models.motion import MotionCorrector, MotionNet
from kmri_jax.models.unet import UNet, count_params

__all__ = ["MotionCorrector", "MotionNet", "UNet", "build", "count_params"]


def build(model_config: Any, *, rngs: nnx.Rngs, in_channels: int = 2) -> nnx.Module:
    """The network ``model_config`` describes (``kind``, ``base_channels``, ``residual``,
    ``compute_dtype``, ``remat``, ``conv``, ``motion_channels``, ``motion_depth``); ``in_channels`` of
    a U-Net kind (2C when it reads C coils)."""
    dtype = jnp.dtype(model_config.compute_dtype)
    kind = model_config.get("kind", "kspace_unet")
    if kind in ("kspace_unet", "image_unet", "estimate_unet"):
        return UNet(rngs=rngs, base_channels=model_config.base_channels, dtype=dtype,
                    in_channels=in_channels, residual=model_config.residual,
                    remat=model_config.get("remat", False), conv=model_config.get("conv", "lax"))
    if kind == "motion_unet":
        if in_channels != 2:
            raise ValueError("model.kind=motion_unet reads the combined k-space only "
                             "(model.input='combined')")
        return MotionCorrector(rngs=rngs, base_channels=model_config.base_channels,
                               motion_channels=model_config.motion_channels,
                               motion_depth=model_config.motion_depth, dtype=dtype,
                               remat=model_config.get("remat", False),
                               conv=model_config.get("conv", "lax"))
    raise ValueError("model.kind must be kspace_unet, image_unet, motion_unet or estimate_unet, "
                     f"got {kind!r}")
