"""The composed corruption and its parameters (choosing parameters and keys: :mod:`.grid`).

Pipeline (docs/conventions.md): image -> k-space -> breathing motion -> line mask -> noise. One call
corrupts one ``[ny, nx]`` slice; ``jax.jit(jax.vmap(corrupt))`` corrupts a batch in which
every sample carries its own :class:`CorruptionParams`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kmri_jax.sim import validation
from kmri_jax.sim.breathing import METHODS, breathing_trace, line_times
from kmri_jax.sim.kspace import image_to_kspace
from kmri_jax.sim.motion import apply_motion
from kmri_jax.sim.noise import add_noise
from kmri_jax.sim.sampling import cartesian_mask

Scalar = jax.typing.ArrayLike


class CorruptionParams(NamedTuple):
    """Corruption parameters; each leaf a scalar, or ``[B]`` for a batch (a pytree).

    Attributes:
      amplitude_px: peak breathing displacement ``A`` along the readout, pixels.
      rate_bpm: breathing rate ``f``, breaths/min.
      acceleration: undersampling factor ``R >= 1``.
      snr_db: target SNR in dB.
      tr: repetition time, seconds (seed default 2.5).
      te: echo time, seconds (seed default 0.03).
    """

    amplitude_px: Scalar
    rate_bpm: Scalar
    acceleration: Scalar
    snr_db: Scalar
    tr: Scalar = 2.5
    te: Scalar = 0.03


class Corrupted(NamedTuple):
    """Result of :func:`corrupt` for one slice (a leading ``[B]`` axis under ``vmap``).

    Dtypes are for a float32 image; a float64 image gives complex128 / float64.

    Attributes:
      kspace: ``[ny, nx]`` complex64 corrupted k-space (zero on lines not acquired).
      clean: ``[ny, nx]`` complex64 clean k-space ``fftshift(fft2(image))``.
      mask: ``[ny]`` bool, acquired phase-encode lines.
      displacement: ``[ny]`` float32 displacement of each line, pixels (``A * trace``).
      trace: ``[ny]`` float32 normalised breathing trace at the line times (max |r| = 1).
    """

    kspace: jax.Array
    clean: jax.Array
    mask: jax.Array
    displacement: jax.Array
    trace: jax.Array


@dataclasses.dataclass(frozen=True)
class CorruptOptions:
    """The static (compile-time) options of :func:`corrupt` as one hashable value, for code
    that passes them along: ``corrupt(key, image, params, **options.kwargs())``.

    Attributes: as :func:`corrupt`'s keyword arguments of the same names.
    """

    method: str = "breathmetrics"
    center_fraction: float = 0.08
    max_cycles: int = 1024

    def kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of :func:`corrupt`."""
        return dataclasses.asdict(self)


def corrupt(
    key: jax.Array,
    image: jax.Array,
    params: CorruptionParams,
    *,
    method: str = "breathmetrics",
    center_fraction: float = 0.08,
    max_cycles: int = 1024,
) -> Corrupted:
    """Corrupt one clean slice with breathing motion, undersampling and noise.

    Steps: ``K = image_to_kspace(image)``; ``t = line_times(ny, tr, te)``;
    ``d = A * breathing_trace(t)``; ``K_m = apply_motion(K, d)``; mask ``M`` from
    ``cartesian_mask(R)``; ``K_c = add_noise(K_m * M, M, snr_db)``.

    Checks (:mod:`~kmri_jax.sim.validation`) run here in Python on concrete inputs and are
    skipped on tracers; the numeric core is one compiled function, so eager calls are fast and
    calls under ``jit``/``vmap``/``grad`` inline it. Validate batches on the host with
    :func:`~kmri_jax.sim.check_inputs` before a jitted step.

    Keys: ``key`` is split into (breathing, mask, noise) subkeys, so equal keys give equal
    corruptions. Precision follows the image: float32 -> complex64, float64 -> complex128; the
    parameters are cast to the image's float dtype. Gradients flow to ``image`` and to
    ``params.amplitude_px`` (and, through the noise scale, to the image via sigma).

    Args:
      key: PRNG key.
      image: ``[ny, nx]`` real float32 clean image (rows = phase-encode lines ky).
      params: :class:`CorruptionParams` with scalar leaves (use ``vmap`` for ``[B]`` leaves).
      method: breathing model, ``"breathmetrics"`` (default, the seed's) or ``"sinusoidal"``.
      center_fraction: fraction of fully sampled centre lines (seed: 0.08).
      max_cycles: static breathing-cycle budget (see :func:`breathing_trace`); the default
        covers ~920 breaths, e.g. 1060 s of lines at up to ~52 breaths/min.

    Returns:
      :class:`Corrupted` with ``kspace``, ``clean``, ``mask``, ``displacement``, ``trace``.
    """
    validation.check_image(image)
    if not isinstance(params, CorruptionParams):
        raise ValueError(f"params must be a CorruptionParams; got {type(params).__name__}.")
    validation.check_params(params)
    image = jnp.asarray(image)
    dtype = jnp.promote_types(image.dtype, jnp.float32)
    image = image.astype(dtype)
    for field, leaf in zip(params._fields, params):
        if np.ndim(leaf) != 0:
            raise ValueError(
                f"corrupt takes one slice: CorruptionParams.{field} must be a scalar, got shape "
                f"{tuple(np.shape(leaf))}; use jax.vmap(corrupt) for a batch."
            )
    p = CorruptionParams(*(jnp.asarray(leaf, dtype) for leaf in params))
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    if method == "breathmetrics" and all(validation.is_concrete(v) for v in params):
        last_line = np.asarray([(image.shape[0] - 1) * float(params.tr) + float(params.te)])
        validation.check_cycle_budget(last_line, params.rate_bpm, max_cycles)
    return _corrupt(
        key, image, p, method=method, center_fraction=center_fraction, max_cycles=max_cycles
    )


@functools.partial(jax.jit, static_argnames=("method", "center_fraction", "max_cycles"))
def _corrupt(
    key: jax.Array,
    image: jax.Array,
    p: CorruptionParams,
    *,
    method: str,
    center_fraction: float,
    max_cycles: int,
) -> Corrupted:
    """The pipeline on checked inputs; compiled once per shape/dtype/options, so eager calls
    are fast and calls under jit/vmap/grad simply inline it."""
    ny = image.shape[0]
    k_breath, k_mask, k_noise = jax.random.split(key, 3)
    clean = image_to_kspace(image)
    times = line_times(ny, tr=p.tr, te=p.te)
    trace = breathing_trace(
        k_breath, times, rate_bpm=p.rate_bpm, method=method, max_cycles=max_cycles
    )
    displacement = p.amplitude_px * trace
    moved = apply_motion(clean, displacement)
    mask = cartesian_mask(k_mask, ny, acceleration=p.acceleration, center_fraction=center_fraction)
    masked = jnp.where(mask[:, None], moved, jnp.zeros((), moved.dtype))
    kspace = add_noise(k_noise, masked, mask, snr_db=p.snr_db)
    return Corrupted(kspace=kspace, clean=clean, mask=mask, displacement=displacement, trace=trace)
