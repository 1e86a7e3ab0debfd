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
class FieldMap:
    """A breathing B0 field map strongest at the lungs' edges
    (:func:`kmri_jax.sim.breathing_field_map`), the edges as fractions of the image axis.

    Attributes:
      lungs: the lungs' two edges, fractions of the axis length (0 = first row/column).
      axis: 0 (rows) or 1 (columns).
      decay_mm: decay length, mm.
      spacing_mm: pixel size along ``axis``, mm.
    """

    lungs: tuple[float, float] = (0.5, 0.78)
    axis: int = 1
    decay_mm: float = 60.0
    spacing_mm: float = 1.0

    def build(self, shape: tuple[int, int]) -> np.ndarray:
        """``[ny, nx]`` float32 field map for images of ``shape``."""
        n = shape[self.axis] - 1
        return sim.breathing_field_map(
            shape, lung_px=tuple(f * n for f in self.lungs), axis=self.axis,
            decay_mm=self.decay_mm, spacing_mm=self.spacing_mm)


@dataclasses.dataclass(frozen=True)
class Coils:
    """Receive coils (:func:`kmri_jax.sim.coil_maps`) and their noise correlation.

    Attributes:
      n_coils: number of coils ``C >= 1``.
      correlation: noise correlation of every pair of coils, in ``[0, 1)``: covariance
        ``(1 - rho) I + rho 1 1^T`` (unit diagonal).
    """

    n_coils: int = 8
    correlation: float = 0.0

    def maps(self, shape: tuple[int, int]) -> np.ndarray:
        """``[C, ny, nx]`` complex64 maps for images of ``shape``."""
        return sim.coil_maps(shape, n_coils=self.n_coils)

    def covariance(self) -> np.ndarray | None:
        """``[C, C]`` noise covariance, or None for identity."""
        if self.correlation == 0:
            return None
        c = self.n_coils
        return ((1 - self.correlation) * np.eye(c) + self.correlation * np.ones((c, c))
                ).astype(np.complex64)


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
      field_map: a spatial B0 field map, or None (uniform off-resonance).
      coils: receive coils, or None (one ideal coil, the seed's).
    """

    mode: str = "fresh"
    distribution: str = "grid"
    combinations_per_slice: int = 0
    options: sim.CorruptOptions = sim.CorruptOptions()
    motion: sim.MotionGrid = sim.RIGID_READOUT
    weight_map: WeightMap | None = None
    field_map: FieldMap | None = None
    coils: Coils | None = None

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
        if c.noise_rng not in sim.NOISE_RNGS:
            raise ConfigValueError(f"corruption.noise_rng must be one of {sim.NOISE_RNGS}, "
                                   f"got {c.noise_rng!r}")
        motion = _motion_from_config(c)
        total = sim.num_combinations(motion=motion)
        k = c.combinations_per_slice
        if c.mode == "fixed" and not 1 <= k <= total:
            raise ConfigValueError(f"corruption.mode='fixed' needs 1 <= corruption."
                                   f"combinations_per_slice <= {total} (seed: 81), got {k}")
        options = sim.CorruptOptions(
            method=c.method, center_fraction=c.center_fraction, ordering=c.ordering,
            echo_train_length=c.echo_train_length, echo_spacing=c.echo_spacing,
            time_acquired_only=c.time_acquired_only, motion_states=c.motion_states,
            readout_bandwidth_hz_per_px=_bandwidth_from_config(c), noise_rng=c.noise_rng)
        try:
            sim.timing.check_echo_train(options.ordering, options.echo_train_length,
                                        options.echo_spacing)
        except ValueError as e:
            raise ConfigValueError(f"corruption.{e}") from None
        weight_map = _weight_map_from_config(c)
        field_map = _field_map_from_config(c)
        coils = _coils_from_config(c)
        needs_states = {"rotation_deg": any(v != 0 for v in motion.rotation_deg),
                        "weight_map": weight_map is not None,
                        "field_map": field_map is not None, "coils": coils is not None}
        if any(needs_states.values()) and c.motion_states < 1:
            which = " and ".join(f"corruption.{k}" for k, v in needs_states.items() if v)
            raise ConfigValueError(f"{which} need motion states (the image is transformed "
                                   "once per state): set corruption.motion_states (e.g. 16)")
        if c.motion_states < 0:
            raise ConfigValueError(f"corruption.motion_states must be >= 0, got "
                                   f"{c.motion_states}")
        return cls(mode=c.mode, distribution=c.distribution,
                   combinations_per_slice=k if c.mode == "fixed" else 0,
                   options=options, motion=motion, weight_map=weight_map, field_map=field_map,
                   coils=coils)

    def corrupt_batch(self, key: jax.Array, batch: Mapping[str, jax.Array], *, mode: str
                      ) -> tuple[sim.Corrupted, sim.CorruptionParams]:
        """Corrupt ``batch['image'] [B, ny, nx]`` on the device.

        ``mode='fresh'``: ``key`` is the step key; parameters drawn by ``sim.sample_params``.
        ``mode='fixed'``: ``key`` is the fixed root; parameters from ``batch['combination']``.
        Returns the vmapped simulator output (leaves ``[B, ...]``) and the parameters used.
        With coils, ``kspace`` and ``clean`` are the single-coil view the networks, the
        corrections and the metrics work on: the k-space of the adjoint-SENSE image with the
        known maps (:func:`kmri_jax.sim.coils.combined_view`), ``[B, ny, nx]``; the coil
        k-space is ``coil_kspace`` ``[B, C, ny, nx]`` (``model.input = "coils"`` reads it).
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
        params = self.motion.static_zeros(params)  # the seed's path, bit for bit
        options = self.options.kwargs()
        shape = images.shape[1:]
        weight = None if self.weight_map is None else self.weight_map.build(shape)
        field = None if self.field_map is None else self.field_map.build(shape)
        maps = None if self.coils is None else self.coils.maps(shape)
        covariance = None if self.coils is None else self.coils.covariance()
        corrupted = jax.vmap(lambda k, x, p: sim.corrupt(
            k, x, p, weight, field, maps, covariance, **options))(keys, images, params)
        if maps is not None:
            corrupted = sim.coils.combined_view(corrupted, maps)
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


def _bandwidth_from_config(c: ml_collections.ConfigDict) -> float | None:
    """``corruption.readout_bandwidth_hz_per_px``: 0 = no readout shift, else > 0."""
    bw = float(c.readout_bandwidth_hz_per_px)
    if not np.isfinite(bw) or bw < 0:
        raise ConfigValueError(f"corruption.readout_bandwidth_hz_per_px must be 0 (no readout "
                               f"shift) or > 0 Hz/pixel, got {c.readout_bandwidth_hz_per_px!r}")
    return bw or None


def _field_map_from_config(c: ml_collections.ConfigDict) -> FieldMap | None:
    """``corruption.field_map``: ``""`` (uniform off-resonance) or ``"lungs"``."""
    if c.field_map == "":
        return None
    if c.field_map != "lungs":
        raise ConfigValueError(f"corruption.field_map must be '' (uniform) or 'lungs', got "
                               f"{c.field_map!r}")
    lungs = tuple(float(v) for v in c.field_lungs)
    if len(lungs) != 2:
        raise ConfigValueError(f"corruption.field_lungs must be two fractions (upper, lower), "
                               f"got {c.field_lungs!r}")
    spec = FieldMap(lungs=lungs, axis=int(c.field_axis), decay_mm=float(c.field_decay_mm),
                    spacing_mm=float(c.field_spacing_mm))
    try:
        spec.build((4, 4))
    except ValueError as e:
        raise ConfigValueError(f"corruption.field_*: {e}") from None
    return spec


def _coils_from_config(c: ml_collections.ConfigDict) -> Coils | None:
    """``corruption.coils`` (0 = one ideal coil) and ``corruption.coil_correlation``."""
    n = c.coils
    if int(n) != n or n < 0:
        raise ConfigValueError(f"corruption.coils must be 0 (one ideal coil) or a number of "
                               f"coils >= 1, got {n!r}")
    rho = float(c.coil_correlation)
    if not 0 <= rho < 1:
        raise ConfigValueError(f"corruption.coil_correlation must be in [0, 1), got {rho!r}")
    if n == 0:
        if rho:
            raise ConfigValueError("corruption.coil_correlation needs corruption.coils >= 1")
        return None
    return Coils(n_coils=int(n), correlation=rho)
