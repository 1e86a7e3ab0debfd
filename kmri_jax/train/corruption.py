"""Per-batch corruption inside the compiled steps: keys, parameters, simulator, normalisation.

Two ways to pick a sample's corruption (:class:`Corruption`, from ``config.corruption``):

* ``fresh`` — new parameters and new randomness every step, from ``fold_in(root, step)``.
* ``fixed`` — the sample's grid combination fixes (A, f, R, SNR) and its key is
  :func:`kmri_jax.sim.sample_keys` of (volume, slice, combination): the same corruption every
  epoch and on any number of devices (the seed's fixed dataset; all evaluation).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import jax
import ml_collections

from kmri_jax import sim
from kmri_jax.config import ConfigValueError

MODES = ("fresh", "fixed")


@dataclasses.dataclass(frozen=True)
class Corruption:
    """How training and evaluation corrupt their batches (static: closed over by the steps).

    Attributes:
      mode: training corruption, ``"fresh"`` or ``"fixed"`` (evaluation is always fixed).
      distribution: ``"grid"`` or ``"uniform"`` parameters in fresh mode.
      combinations_per_slice: records per slice in fixed training (0 in fresh mode).
      options: the simulator's static options.
    """

    mode: str = "fresh"
    distribution: str = "grid"
    combinations_per_slice: int = 0
    options: sim.CorruptOptions = sim.CorruptOptions()

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict) -> Corruption:
        """From ``config.corruption``; a value that cannot work is a ConfigValueError."""
        c = config.corruption
        if c.mode not in MODES:
            raise ConfigValueError(f"corruption.mode must be 'fresh' or 'fixed', got {c.mode!r}")
        if c.distribution not in sim.grid.DISTRIBUTIONS:
            raise ConfigValueError(f"corruption.distribution must be one of "
                                   f"{sim.grid.DISTRIBUTIONS}, got {c.distribution!r}")
        if c.method not in sim.breathing.METHODS:
            raise ConfigValueError(f"corruption.method must be one of {sim.breathing.METHODS}, "
                                   f"got {c.method!r}")
        total = sim.num_combinations()
        k = c.combinations_per_slice
        if c.mode == "fixed" and not 1 <= k <= total:
            raise ConfigValueError(f"corruption.mode='fixed' needs 1 <= corruption."
                                   f"combinations_per_slice <= {total} (seed: {total}), got {k}")
        return cls(mode=c.mode, distribution=c.distribution,
                   combinations_per_slice=k if c.mode == "fixed" else 0,
                   options=sim.CorruptOptions(method=c.method,
                                              center_fraction=c.center_fraction))

    def corrupt_batch(self, key: jax.Array, batch: Mapping[str, jax.Array], *, mode: str
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
            params = sim.sample_params(key_params, batch_size, tr=batch["tr"], te=batch["te"],
                                       distribution=self.distribution)
            keys = jax.random.split(key_corrupt, batch_size)
        elif mode == "fixed":
            params = sim.grid_params(batch["combination"], tr=batch["tr"], te=batch["te"])
            keys = sim.sample_keys(key, batch["volume"], batch["slice"], batch["combination"])
        else:
            raise ValueError(f"mode must be 'fresh' or 'fixed', got {mode!r}")
        options = self.options.kwargs()
        corrupted = jax.vmap(lambda k, x, p: sim.corrupt(k, x, p, **options))(keys, images, params)
        return corrupted, params
