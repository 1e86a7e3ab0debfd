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
import numpy as np

from kmri_jax import sim
from kmri_jax.config import ConfigValueError

MODES = ("fresh", "fixed")


@dataclasses.dataclass(frozen=True)
class WeightMap:
    """A distance-weighted breathing displacement (:func:`kmri_jax.sim.breathing_weight_map`),
    its reference given as a fraction of the image axis so it fits any image size.

    Attributes:
      reference: reference level as a fraction of the axis length (0 = first row/column).
      axis: 0 (rows, phase encode) or 1 (columns, readout).
      decay_mm: decay length, mm.
      spacing_mm: pixel size along ``axis``, mm.
      full_side: ``"both"``, ``"lower"`` or ``"higher"``.
    """

    reference: float = 0.5
    axis: int = 1
    decay_mm: float = 50.0
    spacing_mm: float = 1.0
    full_side: str = "both"

    def build(self, shape: tuple[int, int]) -> np.ndarray:
        """``[ny, nx]`` float32 weights for images of ``shape``."""
        return sim.breathing_weight_map(
            shape, reference_px=self.reference * (shape[self.axis] - 1), axis=self.axis,
            decay_mm=self.decay_mm, spacing_mm=self.spacing_mm, full_side=self.full_side)


@dataclasses.dataclass(frozen=True)
class Corruption:
    """How training and evaluation corrupt their batches (static: closed over by the steps).

    Attributes:
      mode: training corruption, ``"fresh"`` or ``"fixed"`` (evaluation is always fixed).
      distribution: ``"grid"`` or ``"uniform"`` parameters in fresh mode.
      combinations_per_slice: records per slice in fixed training (0 in fresh mode).
      options: the simulator's static options.
      motion: the phase-encode amplitude and rotation values (grid) or ranges (uniform).
      weight_map: a distance-weighted displacement, or None (uniform).
    """

    mode: str = "fresh"
    distribution: str = "grid"
    combinations_per_slice: int = 0
    options: sim.CorruptOptions = sim.CorruptOptions()
    motion: sim.MotionGrid = sim.RIGID_READOUT
    weight_map: WeightMap | None = None

    def num_combinations(self) -> int:
        """Grid combinations of this corruption (81 for the seed's)."""
        return sim.num_combinations(motion=self.motion)

    def grid_table(self, combinations=None) -> dict[str, np.ndarray]:
        """:func:`kmri_jax.sim.grid_table` of this corruption's grid."""
        return sim.grid_table(combinations, motion=self.motion)

    def parse_combinations(self, spec: str) -> list[int]:
        """:func:`kmri_jax.sim.parse_combinations` on this corruption's grid."""
        return sim.parse_combinations(spec, motion=self.motion)

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
        motion = _motion_from_config(c)
        total = sim.num_combinations(motion=motion)
        k = c.combinations_per_slice
        if c.mode == "fixed" and not 1 <= k <= total:
            raise ConfigValueError(f"corruption.mode='fixed' needs 1 <= corruption."
                                   f"combinations_per_slice <= {total} (seed: 81), got {k}")
        options = sim.CorruptOptions(
            method=c.method, center_fraction=c.center_fraction, ordering=c.ordering,
            echo_train_length=c.echo_train_length, echo_spacing=c.echo_spacing,
            time_acquired_only=c.time_acquired_only, motion_states=c.motion_states)
        try:
            sim.timing.check_echo_train(options.ordering, options.echo_train_length,
                                        options.echo_spacing)
        except ValueError as e:
            raise ConfigValueError(f"corruption.{e}") from None
        weight_map = _weight_map_from_config(c)
        needs_states = any(v != 0 for v in motion.rotation_deg) or weight_map is not None
        if needs_states and c.motion_states < 1:
            raise ConfigValueError("corruption.rotation_deg and corruption.weight_map resample "
                                   "the image once per motion state: set "
                                   "corruption.motion_states (e.g. 16)")
        if c.motion_states < 0:
            raise ConfigValueError(f"corruption.motion_states must be >= 0, got "
                                   f"{c.motion_states}")
        return cls(mode=c.mode, distribution=c.distribution,
                   combinations_per_slice=k if c.mode == "fixed" else 0,
                   options=options, motion=motion, weight_map=weight_map)

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
                                       distribution=self.distribution, motion=self.motion)
            keys = jax.random.split(key_corrupt, batch_size)
        elif mode == "fixed":
            params = sim.grid_params(batch["combination"], tr=batch["tr"], te=batch["te"],
                                     motion=self.motion)
            keys = sim.sample_keys(key, batch["volume"], batch["slice"], batch["combination"])
        else:
            raise ValueError(f"mode must be 'fresh' or 'fixed', got {mode!r}")
        if self.motion == sim.RIGID_READOUT:  # static zeros: the seed's path, bit for bit
            params = params._replace(amplitude_pe_px=0.0, rotation_deg=0.0)
        options = self.options.kwargs()
        weight = None if self.weight_map is None else self.weight_map.build(images.shape[1:])
        corrupted = jax.vmap(lambda k, x, p: sim.corrupt(k, x, p, weight, **options)
                             )(keys, images, params)
        return corrupted, params


def _motion_from_config(c: ml_collections.ConfigDict) -> sim.MotionGrid:
    """``corruption.amplitude_pe_px`` / ``rotation_deg`` (a number or a tuple of values)."""
    values = {}
    for field in sim.MotionGrid._fields:
        raw = c[field]
        raw = (raw,) if isinstance(raw, (int, float)) else tuple(raw)
        try:
            values[field] = tuple(float(v) for v in raw)
        except (TypeError, ValueError):
            values[field] = ()
        if not values[field] or not all(np.isfinite(values[field])):
            raise ConfigValueError(f"corruption.{field} must be a number or a tuple of finite "
                                   f"numbers (grid values; 'uniform' uses their range), got "
                                   f"{raw!r}")
    return sim.MotionGrid(**values)


def _weight_map_from_config(c: ml_collections.ConfigDict) -> WeightMap | None:
    """``corruption.weight_map``: ``""`` (uniform displacement) or ``"distance"``."""
    if c.weight_map == "":
        return None
    if c.weight_map != "distance":
        raise ConfigValueError(f"corruption.weight_map must be '' (uniform) or 'distance', "
                               f"got {c.weight_map!r}")
    spec = WeightMap(reference=float(c.weight_reference), axis=int(c.weight_axis),
                     decay_mm=float(c.weight_decay_mm), spacing_mm=float(c.weight_spacing_mm),
                     full_side=c.weight_full_side)
    try:
        spec.build((4, 4))
    except ValueError as e:
        raise ConfigValueError(f"corruption.weight_*: {e}") from None
    return spec
