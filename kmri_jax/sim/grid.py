"""The seed's corruption grid and how samples pick their corruption: grid combinations, the
balanced (orthogonal) subset, on-device parameter sampling, and the fixed keys.

The grid (A px, f /min, R, SNR dB) has 3 values each: 81 combinations, index
``c = 27*i_A + 9*i_f + 3*i_R + i_SNR`` (``itertools.product`` order). Fixed corruption (all
evaluation, the seed's fixed training set, ``kmri-simulate``) keys a sample by its identity:
``fold_in(fold_in(fold_in(root, volume), slice), combination)`` (:func:`sample_keys`), so the
same sample gets the same corruption in every epoch, batch and device layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kmri_jax.sim import validation
from kmri_jax.sim.corrupt import CorruptionParams

Scalar = jax.typing.ArrayLike

DISTRIBUTIONS = ("grid", "uniform")

class ParamGrid(NamedTuple):
    """Values per parameter (for ``distribution="grid"``), or ``(low, high)`` pairs (ranges)."""

    amplitude_px: tuple[float, ...]
    rate_bpm: tuple[float, ...]
    acceleration: tuple[float, ...]
    snr_db: tuple[float, ...]


class MotionGrid(NamedTuple):
    """Values of the realism peaks (2-D motion, breathing off-resonance) for the grid, or
    ``(low, high)`` pairs (uniform), beside a :class:`ParamGrid`. The default, the single
    value 0 each, keeps the seed's 81 combinations; several values multiply the grid, these
    axes varying fastest."""

    amplitude_pe_px: tuple[float, ...] = (0.0,)
    rotation_deg: tuple[float, ...] = (0.0,)
    b0_hz: tuple[float, ...] = (0.0,)

    def is_seed(self) -> bool:
        """True when every realism peak is the single value 0 (the seed's corruption)."""
        return all(tuple(values) == (0.0,) for values in self)

    def static_zeros(self, params: CorruptionParams) -> CorruptionParams:
        """``params`` with each realism field that is always 0 here as the Python number 0.0:
        static data that keeps the seed's path bit for bit and skips its work."""
        return params._replace(**{field: 0.0 for field, values in zip(self._fields, self)
                                  if tuple(values) == (0.0,)})


RIGID_READOUT = MotionGrid()
"""No phase-encode translation, no rotation, no off-resonance: the seed's corruption."""


def _axes(grid: ParamGrid, motion: MotionGrid) -> list[tuple[str, tuple[float, ...]]]:
    """(field, values) of every grid axis, slowest first."""
    return [*zip(ParamGrid._fields, grid), *zip(MotionGrid._fields, motion)]


SEED_GRID = ParamGrid(
    amplitude_px=(2.0, 5.0, 8.0),
    rate_bpm=(12.0, 15.0, 18.0),
    acceleration=(2.0, 4.0, 6.0),
    snr_db=(15.0, 20.0, 25.0),
)
"""The seed's 3 x 3 x 3 x 3 = 81 combinations (A px, f /min, R, SNR dB)."""



def grid_params(
    combination: jax.typing.ArrayLike,
    *,
    tr: Scalar = 2.5,
    te: Scalar = 0.03,
    grid: ParamGrid = SEED_GRID,
    motion: MotionGrid = RIGID_READOUT,
) -> CorruptionParams:
    """Parameters of grid combination ``c`` (int, or int array of any shape; may be traced).

    Fixed order, amplitude slowest and the last parameter fastest
    (``itertools.product(A, f, R, SNR, A_pe, rot, B0)``; the last three have one value, 0,
    unless the grid gives more):
    ``c = ((i_A * n_f + i_f) * n_R + i_R) * n_SNR + i_SNR``, so with :data:`SEED_GRID`
    ``c = 27*i_A + 9*i_f + 3*i_R + i_SNR`` for ``c`` in ``0..80``; e.g. 0 = (2, 12, 2, 15),
    1 = (2, 12, 2, 20), 80 = (8, 18, 6, 25). Out-of-range concrete values raise ``ValueError``
    (traced ones are clipped into range).

    Returns:
      :class:`CorruptionParams` with float32 leaves shaped like ``combination``; ``tr``/``te``
      are broadcast to that shape.
    """
    axes = _axes(grid, motion)
    sizes = [len(v) for _, v in axes]
    total = int(np.prod(sizes))
    if validation.is_concrete(combination):
        values = np.asarray(combination)
        if not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"combination must be an integer index; got dtype {values.dtype}.")
        if values.size and (values.min() < 0 or values.max() >= total):
            raise ValueError(f"combination must be in 0..{total - 1}; got {values!r}.")
    c = jnp.clip(jnp.asarray(combination, jnp.int32), 0, total - 1)
    leaves = {}
    for axis, (field, values) in enumerate(axes):
        stride = int(np.prod(sizes[axis + 1 :]))
        index = (c // stride) % sizes[axis]
        leaves[field] = jnp.asarray(values, jnp.float32)[index]
    shape = c.shape
    tr_ = jnp.broadcast_to(jnp.asarray(tr, jnp.float32), shape)
    te_ = jnp.broadcast_to(jnp.asarray(te, jnp.float32), shape)
    return CorruptionParams(**leaves, tr=tr_, te=te_)


def sample_params(
    key: jax.Array,
    batch_size: int,
    *,
    tr: Scalar = 2.5,
    te: Scalar = 0.03,
    distribution: str = "grid",
    grid: ParamGrid = SEED_GRID,
    ranges: ParamGrid | None = None,
    motion: MotionGrid = RIGID_READOUT,
) -> CorruptionParams:
    """Draw ``batch_size`` independent parameter sets on device.

    ``"grid"``: each of A, f, R, SNR uniformly and independently from ``grid``'s values (the
    seed's 81 combinations, each with probability 1/81). ``"uniform"``: each uniformly from a
    continuous ``(low, high)`` range; ``ranges=None`` spans the grid (A [2, 8] px, f [12, 18]
    /min, R [2, 6], SNR [15, 25] dB with :data:`SEED_GRID`). The phase-encode amplitude and
    the rotation and the off-resonance are drawn the same way from their own keys
    (``fold_in(key, 4)``, ``5``, ``6``), so the seed's four draws are unchanged; by default
    all three are 0.

    Args:
      key: PRNG key.
      batch_size: ``B`` (static int).
      tr, te: seconds, scalars or ``[B]`` arrays (e.g. from the sidecars in the batch).
      distribution: ``"grid"`` or ``"uniform"``.
      grid: :class:`ParamGrid` of values.
      ranges: :class:`ParamGrid` of ``(low, high)`` pairs, or None.
      motion: :class:`MotionGrid`: values (``"grid"``) or their min..max (``"uniform"``).

    Returns:
      :class:`CorruptionParams` with ``[B]`` float32 leaves.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}; got {distribution!r}.")
    batch_size = int(batch_size)
    keys = [*jax.random.split(key, 4),
            *(jax.random.fold_in(key, 4 + i) for i in range(len(MotionGrid._fields)))]
    leaves = {}
    if distribution == "grid":
        for k, (field, values) in zip(keys, _axes(grid, motion)):
            values = jnp.asarray(values, jnp.float32)
            if values.shape[0] == 1:
                leaves[field] = jnp.broadcast_to(values[0], (batch_size,))
            else:
                leaves[field] = values[jax.random.randint(k, (batch_size,), 0, values.shape[0])]
    else:
        if ranges is None:
            ranges = ParamGrid(*((min(v), max(v)) for v in grid))
        bounds_all = [*ranges, *((min(v), max(v)) for v in motion)]
        for k, field, bounds in zip(keys, [*ParamGrid._fields, *MotionGrid._fields], bounds_all):
            if len(bounds) != 2 or not bounds[0] <= bounds[1]:
                raise ValueError(f"ranges.{field} must be a (low, high) pair; got {bounds!r}.")
            leaves[field] = jax.random.uniform(k, (batch_size,), jnp.float32, bounds[0],
                                               bounds[1])

    def per_sample(x: Scalar, name: str) -> jax.Array:
        x = jnp.asarray(x, jnp.float32)
        if x.shape not in ((), (batch_size,)):
            raise ValueError(f"{name} must be a scalar or [{batch_size}]; got {x.shape}.")
        return jnp.broadcast_to(x, (batch_size,))

    return CorruptionParams(**leaves, tr=per_sample(tr, "tr"), te=per_sample(te, "te"))


def num_combinations(grid: ParamGrid = SEED_GRID, motion: MotionGrid = RIGID_READOUT) -> int:
    """Number of grid combinations (81 for :data:`SEED_GRID`)."""
    return int(np.prod([len(v) for _, v in _axes(grid, motion)]))


def orthogonal_combinations(grid: ParamGrid = SEED_GRID, motion: MotionGrid = RIGID_READOUT
                            ) -> list[int]:
    """The 9 combinations of the L9(3^4) orthogonal array over A, f, R, SNR.

    Each level of each of A, f, R, SNR appears 3 times and every pair of levels of two
    parameters once, so per-parameter means are balanced at 1/9 of the full grid's cost.
    Row (i, j) has levels (i, j, (i + j) % 3, (i + 2j) % 3), index ``27a + 9f + 3r + s`` on
    :data:`SEED_GRID`. A motion parameter with ``n`` values takes level ``row % n`` in row
    ``row = 3i + j`` (each of its levels appears about equally often; not balanced pairwise).
    """
    sizes = [len(v) for _, v in _axes(grid, motion)]
    if sizes[:4] != [3, 3, 3, 3]:
        raise ValueError(f"the L9 orthogonal array needs 3 values of each of A, f, R, SNR; "
                         f"the grid has {sizes[:4]}.")
    strides = [int(np.prod(sizes[axis + 1:])) for axis in range(len(sizes))]
    combos = []
    for i in range(3):
        for j in range(3):
            row = 3 * i + j
            levels = [i, j, (i + j) % 3, (i + 2 * j) % 3, *(row % n for n in sizes[4:])]
            combos.append(int(sum(level * stride for level, stride in zip(levels, strides))))
    return combos


def parse_combinations(spec: str, grid: ParamGrid = SEED_GRID,
                       motion: MotionGrid = RIGID_READOUT) -> list[int]:
    """``"all"`` -> every combination; ``"orthogonal"`` -> the balanced 9; or ``"0,40,80"``.

    Raises:
      ValueError: anything else, or an index outside the grid.
    """
    spec = spec.strip()
    total = num_combinations(grid, motion)
    if spec == "all":
        return list(range(total))
    if spec == "orthogonal":
        return orthogonal_combinations(grid, motion)
    try:
        combos = [int(c) for c in spec.split(",") if c.strip()]
    except ValueError:
        combos = []
    if not combos or any(not 0 <= c < total for c in combos):
        raise ValueError(f"{spec!r}: use 'all', 'orthogonal', or comma-separated grid indices "
                         f"in 0..{total - 1}")
    return combos


def grid_table(combinations: Sequence[int] | None = None, grid: ParamGrid = SEED_GRID,
               motion: MotionGrid = RIGID_READOUT) -> dict[str, np.ndarray]:
    """Parameter values of grid combinations: ``{"A"|"f"|"R"|"SNR": [n]}`` (all by default),
    plus ``"A_pe"`` / ``"rot"`` / ``"B0"`` when the grid gives them more than one value."""
    combos = (np.arange(num_combinations(grid, motion)) if combinations is None
              else np.asarray(combinations))
    params = grid_params(combos.astype(np.int32), grid=grid, motion=motion)
    return {short: np.asarray(getattr(params, long)) for long, short in SHORT_NAMES.items()
            if short in SEED_SHORT_NAMES or len(getattr(motion, long)) > 1}


SHORT_NAMES = {"amplitude_px": "A", "rate_bpm": "f", "acceleration": "R", "snr_db": "SNR",
               "amplitude_pe_px": "A_pe", "rotation_deg": "rot", "b0_hz": "B0"}
"""Short names of the grid parameters, as tables and plots label them."""

SEED_SHORT_NAMES = ("A", "f", "R", "SNR")
"""The seed's four, always in :func:`grid_table`."""


def sample_keys(root: jax.Array, volume: jax.typing.ArrayLike, slice_: jax.typing.ArrayLike,
                combination: jax.typing.ArrayLike | None = None) -> jax.Array:
    """One key per sample from its identity, ``[B]`` ints (or scalars) -> ``[B]`` keys.

    ``fold_in(fold_in(fold_in(root, volume), slice), combination)``; without ``combination``
    (a single corruption per slice) the last fold is skipped.
    """

    def one(v, s, c):
        k = jax.random.fold_in(jax.random.fold_in(root, v), s)
        return k if c is None else jax.random.fold_in(k, c)

    volume, slice_ = jnp.asarray(volume, jnp.int32), jnp.asarray(slice_, jnp.int32)
    if combination is None:
        return jax.vmap(lambda v, s: one(v, s, None))(*jnp.broadcast_arrays(volume, slice_))
    combination = jnp.asarray(combination, jnp.int32)
    return jax.vmap(one)(*jnp.broadcast_arrays(volume, slice_, combination))
