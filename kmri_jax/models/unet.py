"""The seed's 2-D U-Net (``UNet2D``) in Flax NNX.

Architecture (base ``c`` = 32 in the seed)::

    [B, 2, H, W] --pad H, W to a multiple of 8--> channels-last
    enc1  ConvBlock(2 -> c)        ─────────────────────────────┐ skip
    pool  2x2 max                                               │
    enc2  ConvBlock(c -> 2c)       ───────────────────────┐     │
    pool                                                  │     │
    enc3  ConvBlock(2c -> 4c)      ─────────────────┐     │     │
    pool                                            │     │     │
    bottleneck ConvBlock(4c -> 8c)                  │     │     │
    up3   2x2 stride-2 transposed conv (8c -> 4c) ++┘     │     │   (++: concat skip)
    dec3  ConvBlock(8c -> 4c)                             │     │
    up2   (4c -> 2c) ++───────────────────────────────────┘     │
    dec2  ConvBlock(4c -> 2c)                                   │
    up1   (2c -> c)  ++─────────────────────────────────────────┘
    dec1  ConvBlock(2c -> c)
    out_conv 1x1 conv with bias (c -> 2)
    --crop back to H, W--> [B, 2, H, W]

``ConvBlock`` = (3x3 conv without bias, 'SAME' padding -> BatchNorm -> ReLU) x 2. BatchNorm
uses PyTorch's defaults: torch momentum 0.1 (flax ``momentum=0.9``) and ``eps=1e-5``. One
difference is left as it is: PyTorch updates ``running_var`` with the *unbiased* batch variance
(factor n / (n - 1), n = B*H*W per channel), flax with the biased one; both normalise with the
biased variance in training mode, and in evaluation mode both use the running statistics, so
imported weights give identical outputs.

Up-sampling and pooling are computed, by default, as a reshape-max (pooling) and one einsum
plus reshape (the 2x2 stride-2 transposed convolution): on XLA:CPU these are much faster than
``lax.reduce_window`` and ``lax.conv_transpose`` (docs/profile.md). The
``resample="lax"`` option computes the same functions with ``lax.conv_transpose`` /
``nnx.max_pool`` on the *same* parameters, for benchmarking on other backends.

Learnable parameters at base 32: 1,926,754 (BatchNorm scale and bias count; running
statistics do not), equal to the seed's PyTorch model.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

__all__ = ["CONVS", "UNet", "conv3x3_im2col", "count_params", "resolve_conv"]

Resample = Literal["einsum", "lax"]
CONVS = ("lax", "im2col")

# PyTorch BatchNorm2d defaults, in flax's convention (flax momentum = 1 - torch momentum).
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
_DOWNSAMPLE = 8  # 2 ** number of poolings


def conv3x3_im2col(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """3x3 'SAME' cross-correlation as one matrix product of the 9 shifted copies of ``x``.

    ``x [B, H, W, C]``, ``kernel [3, 3, C, O]`` (HWIO, ``nnx.Conv``'s) -> ``[B, H, W, O]``:
    ``y[b, h, w, o] = sum_{i, j, c} x[b, h + i - 1, w + j - 1, c] kernel[i, j, c, o]`` (zero
    outside). The patch matrix ``[B, H, W, 9C]`` costs 9x the input's memory; on XLA:CPU its
    forward and backward (two dots and a sum of shifts) were 1.0-1.9x faster than
    ``lax.conv_general_dilated``'s on an AVX2 AMD EPYC, but the train step with it was 2x
    slower on an AVX-512 one (docs/profile.md).
    """
    _, h, w, c = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = jnp.concatenate(
        [padded[:, i:i + h, j:j + w, :] for i in range(3) for j in range(3)], axis=-1)
    return jnp.einsum("bhwk,ko->bhwo", patches, kernel.reshape(9 * c, kernel.shape[-1]))


def resolve_conv(conv: str) -> str:
    """``conv`` checked against :data:`CONVS`."""
    if conv not in CONVS:
        raise ValueError(f"UNet: conv must be one of {CONVS}, got {conv!r}")
    return conv


class ConvBlock(nnx.Module):
    """Two (3x3 conv without bias -> BatchNorm -> ReLU) layers, channels-last.

    ``[B, H, W, in_channels] -> [B, H, W, out_channels]`` in the compute ``dtype``. ``conv``:
    ``"lax"`` (``nnx.Conv``) or ``"im2col"`` (:func:`conv3x3_im2col` on the same kernels).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        dtype: DTypeLike,
        param_dtype: DTypeLike,
        rngs: nnx.Rngs,
        conv: str = "lax",
    ) -> None:
        layer = dict(
            kernel_size=(3, 3), padding="SAME", use_bias=False, dtype=dtype, param_dtype=param_dtype
        )
        norm = dict(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, dtype=dtype, param_dtype=param_dtype)
        self.conv1 = nnx.Conv(in_channels, out_channels, **layer, rngs=rngs)
        self.bn1 = nnx.BatchNorm(out_channels, **norm, rngs=rngs)
        self.conv2 = nnx.Conv(out_channels, out_channels, **layer, rngs=rngs)
        self.bn2 = nnx.BatchNorm(out_channels, **norm, rngs=rngs)
        self.conv = resolve_conv(conv)
        self.dtype = dtype

    def _conv(self, layer: nnx.Conv, x: jax.Array) -> jax.Array:
        if self.conv == "lax":
            return layer(x)
        return conv3x3_im2col(x.astype(self.dtype), layer.kernel[...].astype(self.dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.bn1(self._conv(self.conv1, x)))
        return jax.nn.relu(self.bn2(self._conv(self.conv2, x)))


class UpConv2x(nnx.Module):
    """2x2 stride-2 transposed convolution with bias, channels-last.

    ``[B, H, W, in_channels] -> [B, 2H, 2W, out_channels]``:
    ``y[b, 2h+i, 2w+j, o] = sum_c x[b, h, w, c] * kernel[c, i, j, o] + bias[o]``.

    Parameters: ``kernel [in_channels, 2, 2, out_channels]`` (PyTorch ``ConvTranspose2d.weight``
    ``[in, out, 2, 2]`` transposed by ``(0, 2, 3, 1)``; the stride-2 windows do not overlap, so
    there is no spatial flip), ``bias [out_channels]``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        dtype: DTypeLike,
        param_dtype: DTypeLike,
        resample: Resample,
        rngs: nnx.Rngs,
    ) -> None:
        # Same fan-in (in_channels * 2 * 2) as nnx.ConvTranspose's default initialiser.
        init = nnx.initializers.lecun_normal(in_axis=0, out_axis=3)
        self.kernel = nnx.Param(init(rngs.params(), (in_channels, 2, 2, out_channels), param_dtype))
        self.bias = nnx.Param(jnp.zeros((out_channels,), param_dtype))
        self.dtype = dtype
        self.resample = resample

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(self.dtype)
        kernel = self.kernel[...].astype(self.dtype)
        bias = self.bias[...].astype(self.dtype)
        b, h, w, _ = x.shape
        if self.resample == "einsum":
            y = jnp.einsum("bhwc,cijo->bhiwjo", x, kernel)
            y = y.reshape(b, 2 * h, 2 * w, kernel.shape[-1])
        else:
            y = jax.lax.conv_transpose(
                x,
                # lax.conv_transpose (transpose_kernel=False) correlates the dilated input, which
                # flips the taps relative to the einsum form: flip them back.
                jnp.transpose(kernel[:, ::-1, ::-1, :], (1, 2, 0, 3)),  # [2, 2, in, out] HWIO
                strides=(2, 2),
                padding="VALID",
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
            )
        return y + bias


def _max_pool_2x2(x: jax.Array, resample: Resample) -> jax.Array:
    """2x2 stride-2 max pooling, ``[B, H, W, C] -> [B, H/2, W/2, C]`` (H, W even)."""
    if resample == "einsum":
        b, h, w, c = x.shape
        return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    return nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2), padding="VALID")


class UNet(nnx.Module):
    """The seed's U-Net on 2-channel (real, imaginary) k-space.

    Call: ``x [B, in_channels, H, W]`` float -> ``[B, out_channels, H, W]`` in ``x``'s dtype;
    ``model(x, base=b)`` with a residual network adds the correction to ``b [B, out_channels,
    H, W]`` instead of ``x``.
    Any ``H, W`` (>= 1): the grid is zero-padded bottom/right up to a multiple of 8 and the
    output cropped back. Layers compute channels-last in ``dtype`` (``jnp.bfloat16`` allowed);
    parameters are stored in ``param_dtype``. Training / evaluation BatchNorm behaviour is set
    with ``model.train()`` / ``model.eval()`` (a new model is in training mode).

    Args:
      rngs: parameter initialisation keys.
      base_channels: channels at the first level (seed: 32); levels use c, 2c, 4c, 8c.
      in_channels: input channels (2: real, imaginary).
      out_channels: output channels (2).
      dtype: compute dtype.
      param_dtype: parameter dtype.
      resample: ``"einsum"`` (default; reshape-max pooling and einsum up-sampling, fastest on
        XLA:CPU) or ``"lax"`` (``nnx.max_pool`` and ``lax.conv_transpose``); same parameters,
        same function.
      residual: predict a correction added to the input, ``x + UNet(x)`` (or to ``base``,
        e.g. the coil-combined view of a network that reads each coil); the output
        convolution's kernel starts at zero, so the untrained network returns its input (or
        ``base``) unchanged. False: the seed's plain U-Net.
      conv: the 3x3 convolutions: ``"lax"`` (default, ``nnx.Conv``) or ``"im2col"``
        (:func:`conv3x3_im2col`, faster per convolution on XLA:CPU, 9x the activation memory);
        same parameters, same function.
      remat: rematerialise each ConvBlock (``nnx.remat``): its activations are recomputed in
        the backward pass instead of kept, trading FLOPs for memory. Same function, same
        parameters, same gradients.
    """

    def __init__(
        self,
        *,
        rngs: nnx.Rngs,
        base_channels: int = 32,
        in_channels: int = 2,
        out_channels: int = 2,
        dtype: DTypeLike = jnp.float32,
        param_dtype: DTypeLike = jnp.float32,
        resample: Resample = "einsum",
        residual: bool = False,
        remat: bool = False,
        conv: str = "lax",
    ) -> None:
        if resample not in ("einsum", "lax"):
            raise ValueError(f"UNet: resample must be 'einsum' or 'lax', got {resample!r}")
        c = base_channels
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        blk = dict(kw, conv=resolve_conv(conv))
        self.enc1 = ConvBlock(in_channels, c, **blk)
        self.enc2 = ConvBlock(c, 2 * c, **blk)
        self.enc3 = ConvBlock(2 * c, 4 * c, **blk)
        self.bottleneck = ConvBlock(4 * c, 8 * c, **blk)
        self.up3 = UpConv2x(8 * c, 4 * c, resample=resample, **kw)
        self.dec3 = ConvBlock(8 * c, 4 * c, **blk)
        self.up2 = UpConv2x(4 * c, 2 * c, resample=resample, **kw)
        self.dec2 = ConvBlock(4 * c, 2 * c, **blk)
        self.up1 = UpConv2x(2 * c, c, resample=resample, **kw)
        self.dec1 = ConvBlock(2 * c, c, **blk)
        self.out_conv = nnx.Conv(c, out_channels, kernel_size=(1, 1), use_bias=True, **kw)
        if residual:  # Start as the identity: the output layer adds nothing until trained.
            self.out_conv.kernel[...] = jnp.zeros_like(self.out_conv.kernel[...])
        self.residual = residual
        self.remat = remat
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.dtype = dtype
        self.resample = resample

    def __call__(self, x: jax.Array, base: jax.Array | None = None) -> jax.Array:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNet expects [B, {self.in_channels}, H, W] input, got shape {tuple(x.shape)}"
            )
        if self.residual:
            base = x if base is None else base
            if base.shape[1] != self.out_channels:
                raise ValueError(f"UNet: the residual adds to [B, {self.out_channels}, H, W]; "
                                 f"got {tuple(base.shape)} (pass base= when in_channels "
                                 f"differs from out_channels)")
        out_dtype = x.dtype
        _, _, h, w = x.shape
        ph, pw = -h % _DOWNSAMPLE, -w % _DOWNSAMPLE
        x = jnp.transpose(x, (0, 2, 3, 1)).astype(self.dtype)  # -> [B, H, W, C]
        x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)))

        block = _run_block_remat if self.remat else _run_block
        s1 = block(self.enc1, x)
        s2 = block(self.enc2, _max_pool_2x2(s1, self.resample))
        s3 = block(self.enc3, _max_pool_2x2(s2, self.resample))
        y = block(self.bottleneck, _max_pool_2x2(s3, self.resample))
        y = block(self.dec3, jnp.concatenate([self.up3(y), s3], axis=-1))
        y = block(self.dec2, jnp.concatenate([self.up2(y), s2], axis=-1))
        y = block(self.dec1, jnp.concatenate([self.up1(y), s1], axis=-1))
        y = self.out_conv(y)

        y = jnp.transpose(y[:, :h, :w, :], (0, 3, 1, 2)).astype(out_dtype)
        return base + y if self.residual else y


def _run_block(block: ConvBlock, x: jax.Array) -> jax.Array:
    return block(x)


def _run_block_remat(block: ConvBlock, x: jax.Array) -> jax.Array:
    """``block(x)`` under ``jax.checkpoint``: the block runs as a pure function of its state
    (BatchNorm statistics updated as usual), its activations recomputed for the gradient."""
    graphdef, state = nnx.split(block)

    @jax.checkpoint
    def pure(state, x):
        module = nnx.merge(graphdef, state, copy=True)
        y = module(x)
        return y, nnx.state(module)

    y, new_state = pure(state, x)
    nnx.update(block, new_state)
    return y


def count_params(model: nnx.Module) -> int:
    """Number of learnable scalars (``nnx.Param`` leaves) in ``model``; works on abstract
    models from ``nnx.eval_shape`` too. BatchNorm running statistics are not counted."""
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    return int(sum(math.prod(leaf.shape) for leaf in leaves))
