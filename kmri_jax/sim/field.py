"""Breathing-induced off-resonance (B0): the phase and readout shift each line picks up.

Breathing changes the air volume of the lungs and so the magnetic susceptibility around the
spine: the field in the cord and vertebrae drifts with the breathing cycle. At 3 T the drift
is largest near the edges of the lungs, in the lower cervical and the upper lumbar cord
(standard deviation ~5 Hz over the cycle; Beghini et al., "Optimized navigator-based correction
of breathing-induced B0 field fluctuations in multi-echo gradient-echo imaging of the spinal
cord", medRxiv 10.1101/2024.12.05.24318389, 2024), with variations of up to ~23 Hz (cervical),
~47 Hz (thoracic) and ~25 Hz (lumbar) reported over the breathing cycle (Kim, Zho, Kim,
"Respiration-induced B0 fluctuation of spine", ISMRM 2009, abstract 1301). A multi-shot scan
sees a different field in every shot, so its lines carry different phases: ghosting
(Vannesjo et al., Magn Reson Med 81:3745-3753, 2019).

Model (:func:`kmri_jax.sim.corrupt`): the peak off-resonance ``b0_hz`` is driven by the same
normalised breathing trace ``r`` as the motion; line ``ky``, at echo time ``te_ky``, sees the
image multiplied by ``exp(2 pi i b0_hz r(t_ky) f(p) te_ky)`` with ``f`` a normalised field map
(1 everywhere when none is given: a per-line global phase, exact). With a readout bandwidth
``bw`` (Hz/pixel) the off-resonance also moves the signal along the readout by
``b0_hz r f / bw`` pixels (the chemical-shift-like displacement of a frequency-encoded
readout; for a spatial ``f`` to first order, ``x(p - f(p) s)``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from kmri_jax.sim.weight_map import along_axis, check_axis_geometry


def line_phase(kspace: jax.Array, phase_cycles: jax.Array) -> jax.Array:
    """Multiply each line by ``exp(2 pi i phase_cycles[ky])``: a spatially uniform field.

    ``kspace [..., ny, nx]`` complex, ``phase_cycles [..., ny]`` (``b0_hz * r * te``, cycles).
    """
    rdtype = jnp.finfo(kspace.dtype).dtype
    phase = (2.0 * math.pi) * jnp.asarray(phase_cycles, rdtype)
    return kspace * jax.lax.complex(jnp.cos(phase), jnp.sin(phase))[..., None]


def breathing_field_map(
    shape: tuple[int, int],
    *,
    lung_px: tuple[float, float],
    axis: int = 1,
    decay_mm: float = 60.0,
    spacing_mm: float = 1.0,
    dtype=np.float32,
) -> np.ndarray:
    """A physiological field map: 1 at the edges of the lungs, decaying along the spine.

    ``f = exp(-d_mm / decay_mm)``, ``d`` the distance along ``axis`` (the superior-inferior
    axis) to the nearer of the lungs' two edges ``lung_px = (upper, lower)`` (pixels), so the
    field is strongest in the lower cervical and the upper lumbar spine and weaker between and
    beyond them, as measured at 3 T (module docstring). The decay length is a modelling choice
    (the field of a susceptibility boundary falls off over a few centimetres), not a measured
    constant. Multiply by ``CorruptionParams.b0_hz`` for Hz.

    Args:
      shape: ``(ny, nx)``.
      lung_px: the lungs' two edges along ``axis`` in pixels (may be fractional or outside).
      axis: 0 (rows) or 1 (columns, the seed's readout along the spine).
      decay_mm: decay length, mm (> 0).
      spacing_mm: pixel size along ``axis``, mm (> 0).

    Returns:
      ``[ny, nx]`` values in ``(0, 1]`` (numpy, a constant for a compiled step).
    """
    check_axis_geometry(shape, axis=axis, spacing_mm=spacing_mm)
    if not (np.isfinite(decay_mm) and decay_mm > 0):
        raise ValueError(f"decay_mm must be > 0; got {decay_mm!r}.")
    edges = np.asarray(lung_px, np.float64)
    if edges.shape != (2,) or not np.all(np.isfinite(edges)):
        raise ValueError(f"lung_px must be two finite edges (upper, lower) in pixels; got "
                         f"{lung_px!r}.")
    position = np.arange(shape[axis], dtype=np.float64)
    distance_mm = np.min(np.abs(position[:, None] - edges[None, :]), axis=1) * spacing_mm
    return along_axis(np.exp(-distance_mm / decay_mm), shape, axis=axis, dtype=dtype)
