"""Per-batch corruption inside the compiled steps: keys, parameters, simulator, normalisation.

Two ways to pick a sample's corruption:

* ``fresh`` — new parameters and new randomness every step, from ``fold_in(root, step)``.
* ``fixed`` — the sample's grid combination (0..80) fixes (A, f, R, SNR) and its key is
  ``fold_in(fold_in(fold_in(root, volume), slice), combination)``: the same corruption every
  epoch and on any number of devices (the seed's fixed dataset; all evaluation).
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from kmri_jax import sim


def fixed_keys(root: jax.Array, volume: jax.Array, slice_: jax.Array, combination: jax.Array) -> jax.Array:
    """One key per sample from its identity: ``[B]`` ints -> ``[B]`` keys."""

    def one(v, s, c):
        return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(root, v), s), c)

    return jax.vmap(one)(volume, slice_, combination)


def fixed_params(batch: Mapping[str, jax.Array]) -> sim.CorruptionParams:
    """Grid parameters of each sample's ``combination``, with its own TR/TE (``[B]`` leaves)."""
    return sim.grid_params(batch["combination"], tr=batch["tr"], te=batch["te"])


def corrupt_batch(
    key: jax.Array,
    batch: Mapping[str, jax.Array],
    *,
    mode: str,
    distribution: str = "grid",
    method: str = "breathmetrics",
    center_fraction: float = 0.08,
) -> tuple[sim.Corrupted, sim.CorruptionParams]:
    """Corrupt ``batch['image'] [B, ny, nx]`` on the device.

    ``mode='fresh'``: ``key`` is the step key; parameters drawn by ``sim.sample_params``.
    ``mode='fixed'``: ``key`` is the fixed root; parameters from ``batch['combination']``.
    Returns the vmapped simulator output (leaves ``[B, ...]``) and the parameters used.
    """
    images = batch["image"]
    batch_size = images.shape[0]
    if mode == "fresh":
        key_params, key_corrupt = jax.random.split(key)
        params = sim.sample_params(
            key_params, batch_size, tr=batch["tr"], te=batch["te"], distribution=distribution
        )
        keys = jax.random.split(key_corrupt, batch_size)
    elif mode == "fixed":
        params = fixed_params(batch)
        keys = fixed_keys(key, batch["volume"], batch["slice"], batch["combination"])
    else:
        raise ValueError(f"corruption.mode must be 'fresh' or 'fixed', got {mode!r}")

    def one(k, image, p):
        return sim.corrupt(k, image, p, method=method, center_fraction=center_fraction)

    return jax.vmap(one)(keys, images, params), params


def network_io(corrupted: sim.Corrupted) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Network input and target, both ``[B, 2, ny, nx]`` float, and the scale ``s [B]``.

    ``s = max|K_clean| + 1e-8`` per sample (the seed's normalisation); input is
    ``[Re, Im](K_corrupted) / s`` and target ``[Re, Im](K_clean) / s``.
    """
    scale = jnp.max(jnp.abs(corrupted.clean), axis=(-2, -1)) + 1e-8
    x = sim.to_channels(corrupted.kspace) / scale[:, None, None, None]
    y = sim.to_channels(corrupted.clean) / scale[:, None, None, None]
    return x, y, scale
