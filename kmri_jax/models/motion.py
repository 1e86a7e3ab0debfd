"""Networks that predict a per-line readout displacement, and the motion + image pair.

:class:`MotionNet` reads features laid out on the k-space lines and the readout,
``[B, C, ny, nx]`` (e.g. each line's 1-D image and its mirror line's, see
``kmri_jax.train.networks.motion_features``), and returns one displacement per line ``[B, ny]``:

    conv blocks over (line, readout), kernels 3 x 7 with growing dilation along the readout
    (a receptive field of about +-2^depth * 3 px: a line's profile compared with its
    neighbours and its mirror over shifts of many pixels), BatchNorm, ReLU
    -> mean over the readout (a displacement is the same for the whole line)
    -> two 1-D convolutions along the lines (kernel 5) -> one value per line.

The last layer starts at zero: an untrained network predicts no motion.

:class:`MotionCorrector` holds a ``motion`` network and an ``image`` network (a
:class:`~kmri_jax.models.UNet`); how they are chained (the exact undo of the motion between
them) is the training code's, which owns the physics.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from kmri_jax.models.unet import UNet

__all__ = ["MotionCorrector", "MotionNet"]

_BN = dict(momentum=0.9, epsilon=1e-5)


class MotionNet(nnx.Module):
    """``[B, in_channels, ny, nx] -> [B, ny]`` float32 displacement per line (pixels)."""

    def __init__(self, *, rngs: nnx.Rngs, in_channels: int = 5, channels: int = 16,
                 depth: int = 4, dtype: DTypeLike = jnp.float32,
                 param_dtype: DTypeLike = jnp.float32) -> None:
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.convs = nnx.List()
        self.norms = nnx.List()
        cin = in_channels
        for level in range(depth):
            self.convs.append(nnx.Conv(cin, channels, kernel_size=(3, 7), padding="SAME",
                                       kernel_dilation=(1, 2 ** level), use_bias=False, **kw))
            self.norms.append(nnx.BatchNorm(channels, **_BN, **kw))
            cin = channels
        self.line1 = nnx.Conv(channels, channels, kernel_size=(5,), padding="SAME", **kw)
        self.line2 = nnx.Conv(channels, 1, kernel_size=(5,), padding="SAME", **kw)
        self.line2.kernel[...] = jnp.zeros_like(self.line2.kernel[...])
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"MotionNet expects [B, C, ny, nx] input, got {tuple(x.shape)}")
        y = jnp.transpose(x, (0, 2, 3, 1)).astype(self.dtype)  # [B, ny, nx, C]
        for conv, norm in zip(self.convs, self.norms):
            y = jax.nn.relu(norm(conv(y)))
        y = jnp.mean(y, axis=2)  # [B, ny, C]
        y = jax.nn.relu(self.line1(y))
        return self.line2(y)[..., 0].astype(jnp.float32)


class MotionCorrector(nnx.Module):
    """A motion network and an image network, trained together (``model.kind='motion_unet'``)."""

    def __init__(self, *, rngs: nnx.Rngs, base_channels: int = 32, motion_channels: int = 16,
                 motion_depth: int = 4, dtype: DTypeLike = jnp.float32,
                 remat: bool = False, conv: str = "lax") -> None:
        self.motion = MotionNet(rngs=rngs, channels=motion_channels, depth=motion_depth,
                                dtype=dtype)
        self.image = UNet(rngs=rngs, base_channels=base_channels, dtype=dtype, residual=True,
                          remat=remat, conv=conv)
