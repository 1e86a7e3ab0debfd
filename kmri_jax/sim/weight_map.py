"""Spatially varying breathing displacement: a weight map that decays with distance from the
structure that drives the motion.

Breathing motion is largest at the diaphragm and the organs it pushes, and falls off with
distance from it: the liver moves with the diaphragm, 10-25 mm superior-inferior in free
breathing (Davies et al., "Ultrasound quantitation of respiratory organ motion in the upper
abdomen", Br J Radiol 67:1096-1102, 1994); the heart, a few centimetres above, moves about 0.6
times the diaphragm's displacement (Wang, Riederer, Ehman, "Respiratory motion of the heart:
kinematics and the implications for the spatial resolution in coronary imaging", Magn Reson
Med 33:713-719, 1995); the cervical and upper thoracic spinal cord moves well under a
millimetre, mostly with the cardiac cycle (Figley & Stroman, "Investigation of human cervical
and upper thoracic spinal cord motion", Magn Reson Med 58:185-189, 2007). An exponential
``w = exp(-distance / decay)`` spans these: a decay of ~50 mm gives 0.6 at ~25 mm and < 0.02
at 200 mm. The decay length is a modelling choice between these anchors, not a measured
constant; see docs/realism.md.
"""

from __future__ import annotations

import numpy as np

SIDES = ("both", "lower", "higher")


def breathing_weight_map(
    shape: tuple[int, int],
    *,
    reference_px: float,
    axis: int = 1,
    decay_mm: float = 50.0,
    spacing_mm: float = 1.0,
    full_side: str = "both",
    dtype=np.float32,
) -> np.ndarray:
    """Weight of the breathing displacement at each pixel, 1 at a reference level.

    ``w = exp(-max(0, distance_mm) / decay_mm)``, the distance measured along ``axis`` from the
    line ``index = reference_px`` (e.g. the diaphragm dome's level along the superior-inferior
    axis). ``full_side`` keeps ``w = 1`` on one side of the reference (``"higher"``: indices
    above ``reference_px``, e.g. the abdomen when the index runs towards the feet), ``"both"``
    decays on both sides.

    Args:
      shape: ``(ny, nx)``.
      reference_px: reference level in pixels along ``axis`` (may be fractional or outside).
      axis: 0 (rows, phase encode) or 1 (columns, readout).
      decay_mm: decay length, mm (> 0).
      spacing_mm: pixel size along ``axis``, mm (> 0), e.g. from the NIfTI header.
      full_side: ``"both"``, ``"lower"`` or ``"higher"``.

    Returns:
      ``[ny, nx]`` weights in ``(0, 1]`` (numpy, a constant for a compiled step).
    """
    check_axis_geometry(shape, axis=axis, spacing_mm=spacing_mm)
    if not (np.isfinite(decay_mm) and decay_mm > 0):
        raise ValueError(f"decay_mm must be > 0; got {decay_mm!r}.")
    if full_side not in SIDES:
        raise ValueError(f"full_side must be one of {SIDES}; got {full_side!r}.")
    offset_mm = (np.arange(shape[axis], dtype=np.float64) - float(reference_px)) * spacing_mm
    if full_side == "higher":
        offset_mm = np.minimum(offset_mm, 0.0)
    elif full_side == "lower":
        offset_mm = np.maximum(offset_mm, 0.0)
    profile = np.exp(-np.abs(offset_mm) / decay_mm)
    return along_axis(profile, shape, axis=axis, dtype=dtype)


def check_axis_geometry(shape: tuple[int, int], *, axis: int, spacing_mm: float) -> None:
    """Raise ``ValueError`` unless ``shape`` is ``(ny, nx)``, ``axis`` 0 or 1, spacing > 0."""
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (ny, nx); got {shape!r}.")
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 (rows) or 1 (columns); got {axis!r}.")
    if not (np.isfinite(spacing_mm) and spacing_mm > 0):
        raise ValueError(f"spacing_mm must be > 0; got {spacing_mm!r}.")


def along_axis(profile: np.ndarray, shape: tuple[int, int], *, axis: int, dtype=np.float32
               ) -> np.ndarray:
    """A 1-D ``profile`` along ``axis`` broadcast to a ``[ny, nx]`` map."""
    grid = profile[:, None] if axis == 0 else profile[None, :]
    return np.broadcast_to(grid, tuple(shape)).astype(dtype)
