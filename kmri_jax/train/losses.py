"""Training losses on normalised 2-channel k-space ``[B, 2, H, W]`` (real, imaginary).

Every loss has the signature ``loss(pred, target, valid_shape, *, weight=None) -> []`` float32:

- ``valid_shape``: ``[B, 2]`` (or ``[2]``) int, (rows, cols) of each sample's valid image region
  (top-left of the padded grid); losses that do not use it ignore it.
- ``weight``: optional ``[B]`` float, per-sample weights (0 for the padding samples of a last
  evaluation batch). A loss is a weighted mean over *entries*: ``sum_b w_b S_b / sum_b w_b N_b``
  with ``S_b`` the sum of absolute errors of sample ``b`` over the entries it counts and ``N_b``
  their number; with equal ``N_b`` this is the weighted mean of per-sample means. A batch whose
  weights are all 0 gives 0.

Losses:

- ``seed_masked_l1``: the seed's quirk, kept for the ``seed_replica`` config: the mask of the
  valid *image* region (top-left rows x cols) is applied to the *k-space* grid, and the L1 error
  is averaged over the masked entries of both channels.
- ``kspace_l1``: L1 over the full k-space grid, both channels.
- ``image_l1``: L1 between the magnitude images ``|ifft2(ifftshift(K))|`` of prediction and
  target over the valid region. With ``normalize=True`` (default) both images are divided by the
  target image's maximum over the valid region (as the metrics do) so the loss is O(0.01-0.1)
  like the k-space losses whatever the image size; ``normalize=False`` gives the raw L1.
- ``hybrid``: ``sum_name weights[name] * loss_name``.

:func:`get_loss` returns one of these by name, with options bound.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from kmri_jax.config import ConfigValueError
from kmri_jax.train.metrics import magnitude_image, valid_mask

__all__ = [
    "LossFn",
    "seed_masked_l1",
    "kspace_l1",
    "image_l1",
    "hybrid",
    "get_loss",
    "LOSSES",
]


class LossFn(Protocol):
    """``(pred [B,2,H,W], target [B,2,H,W], valid_shape [B,2], *, weight [B] | None) -> []``."""

    def __call__(
        self,
        pred: jax.Array,
        target: jax.Array,
        valid_shape: ArrayLike,
        *,
        weight: jax.Array | None = None,
    ) -> jax.Array: ...


def _check(pred: jax.Array, target: jax.Array) -> None:
    if pred.ndim != 4 or pred.shape[1] != 2 or pred.shape != target.shape:
        raise ValueError(
            f"expected pred and target of the same shape [B, 2, H, W], got {pred.shape} and "
            f"{target.shape}"
        )


def _weighted_entry_mean(
    sums: jax.Array, counts: jax.Array, weight: jax.Array | None
) -> jax.Array:
    """``sum_b w_b sums_b / sum_b w_b counts_b`` (0 when the denominator is 0)."""
    w = jnp.ones_like(sums) if weight is None else jnp.asarray(weight, jnp.float32)
    if w.shape != sums.shape:
        raise ValueError(f"weight must have shape {sums.shape}, got {w.shape}")
    num = jnp.sum(w * sums)
    den = jnp.sum(w * counts)
    safe = jnp.where(den > 0, den, 1.0)
    return jnp.where(den > 0, num / safe, 0.0)


def seed_masked_l1(
    pred: jax.Array,
    target: jax.Array,
    valid_shape: ArrayLike,
    *,
    weight: jax.Array | None = None,
) -> jax.Array:
    """The seed's loss: L1 over the top-left ``valid_shape`` block of the *k-space* grid.

    Args:
      pred, target: ``[B, 2, H, W]`` float k-space channels.
      valid_shape: ``[B, 2]`` or ``[2]`` int (rows, cols).
      weight: optional ``[B]`` per-sample weights.

    Returns:
      ``[]`` float32, mean absolute error over the masked entries of both channels.
    """
    _check(pred, target)
    b, c, h, w = pred.shape
    mask = valid_mask(valid_shape, b, (h, w))[:, None]  # [B, 1, H, W]
    err = jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32))
    sums = jnp.sum(jnp.where(mask, err, 0.0), axis=(1, 2, 3))
    counts = c * jnp.sum(mask, axis=(1, 2, 3)).astype(jnp.float32)
    return _weighted_entry_mean(sums, counts, weight)


def kspace_l1(
    pred: jax.Array,
    target: jax.Array,
    valid_shape: ArrayLike | None = None,
    *,
    weight: jax.Array | None = None,
) -> jax.Array:
    """L1 over the full k-space grid (``valid_shape`` is ignored).

    Args: as :func:`seed_masked_l1`. Returns: ``[]`` float32.
    """
    del valid_shape
    _check(pred, target)
    err = jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32))
    sums = jnp.sum(err, axis=(1, 2, 3))
    counts = jnp.full_like(sums, err[0].size)
    return _weighted_entry_mean(sums, counts, weight)


def image_l1(
    pred: jax.Array,
    target: jax.Array,
    valid_shape: ArrayLike,
    *,
    weight: jax.Array | None = None,
    normalize: bool = True,
) -> jax.Array:
    """L1 between magnitude images ``|ifft2(ifftshift(K))|`` over the valid region.

    Args:
      pred, target, valid_shape, weight: as :func:`seed_masked_l1`.
      normalize: divide both images by the target image's maximum over the valid region.

    Returns:
      ``[]`` float32.
    """
    _check(pred, target)
    b, _, h, w = pred.shape
    mask = valid_mask(valid_shape, b, (h, w))  # [B, H, W]
    pred_img = magnitude_image(pred)
    target_img = magnitude_image(target)
    if normalize:
        scale = jnp.max(jnp.where(mask, target_img, 0.0), axis=(1, 2), keepdims=True)
        scale = jax.lax.stop_gradient(jnp.where(scale > 0, scale, 1.0))
        pred_img, target_img = pred_img / scale, target_img / scale
    err = jnp.abs(pred_img - target_img)
    sums = jnp.sum(jnp.where(mask, err, 0.0), axis=(1, 2))
    counts = jnp.sum(mask, axis=(1, 2)).astype(jnp.float32)
    return _weighted_entry_mean(sums, counts, weight)


def hybrid(
    pred: jax.Array,
    target: jax.Array,
    valid_shape: ArrayLike,
    *,
    weights: Mapping[str, float],
    weight: jax.Array | None = None,
) -> jax.Array:
    """Weighted sum of named losses: ``sum_name weights[name] * LOSSES[name](...)``.

    Args:
      pred, target, valid_shape, weight: as :func:`seed_masked_l1`.
      weights: loss name (``seed_masked_l1``, ``kspace_l1``, ``image_l1``) -> coefficient.

    Returns:
      ``[]`` float32.
    """
    if not weights:
        raise ValueError("hybrid loss needs at least one entry in weights")
    total = jnp.zeros((), jnp.float32)
    for name, coef in weights.items():
        if name == "hybrid" or name not in LOSSES:
            valid = sorted(n for n in LOSSES if n != "hybrid")
            raise ValueError(f"hybrid loss: unknown component {name!r}; valid names: {valid}")
        total = total + coef * LOSSES[name](pred, target, valid_shape, weight=weight)
    return total


LOSSES: dict[str, Callable[..., jax.Array]] = {
    "seed_masked_l1": seed_masked_l1,
    "kspace_l1": kspace_l1,
    "image_l1": image_l1,
    "hybrid": hybrid,
}


def get_loss(name: str, **options: Any) -> LossFn:
    """The loss called ``name`` with keyword ``options`` bound (``hybrid`` needs ``weights``,
    ``image_l1`` accepts ``normalize``).

    Raises:
      ValueError: unknown name (the message lists the valid ones) or missing/unknown options.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {sorted(LOSSES)}")
    if name == "hybrid":
        if not options.get("weights"):
            raise ValueError("loss 'hybrid' needs weights={'kspace_l1': ..., 'image_l1': ...}")
        components = sorted(n for n in LOSSES if n != "hybrid")
        unknown_parts = sorted(set(options["weights"]) - set(components))
        if unknown_parts:
            raise ValueError(
                f"hybrid loss: unknown component(s) {unknown_parts}; valid names: {components}"
            )
    fn = LOSSES[name]
    allowed = {"hybrid": {"weights"}, "image_l1": {"normalize"}}.get(name, set())
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"loss {name!r} has no option(s) {unknown}; its options: {sorted(allowed)}"
        )
    return functools.partial(fn, **options) if options else fn


def loss_from_config(train_config: Any) -> LossFn:
    """The loss ``config.train`` names (``train.loss``, with ``train.loss_weights`` for
    ``hybrid``); a bad name or weight is a ConfigValueError naming the key."""
    options = {"weights": dict(train_config.loss_weights)} if train_config.loss == "hybrid" else {}
    try:
        return get_loss(train_config.loss, **options)
    except ValueError as e:
        raise ConfigValueError(f"train.loss={train_config.loss!r}: {e}") from None
