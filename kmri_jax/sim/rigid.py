"""2-D motion per phase-encode line: translation along both axes, in-plane rotation, and a
spatially varying (non-rigid) breathing displacement.

Line ``ky`` of the result is line ``ky`` of ``image_to_kspace(moved_ky(image))``: each line
sees the object where it was when that line was acquired. ``moved`` rotates by
``angle_deg[ky]`` about the array centre (the sense of ``scipy.ndimage.rotate(image, angle,
axes=(1, 0), reshape=False)``), then translates by ``dy[ky]`` rows and ``dx[ky]`` columns
(positive towards larger indices, as ``np.roll``); with a ``weight_map`` the translation at
output pixel ``p`` is ``weight_map[p] * (dy, dx)``, i.e. ``moved(p) = rotated(p - w(p) d)``.

* Translations alone are exact per-line phase ramps, ``exp(-2 pi i (dx u + dy v))`` with
  ``u = fftshift(fftfreq(nx))`` and ``v = fftshift(fftfreq(ny))[ky]``.
* Rotation and weight maps resample the image (:mod:`.forward`). The lines are grouped into
  ``motion_states`` states (:mod:`.motion_states`), the image is warped once per state
  (periodic cubic B-spline, :mod:`.warp`) and transformed, and each line is gathered from its
  state. With rotation and no
  weight map only the angle is binned: each line's own translation is still applied exactly as
  a phase ramp after the rotation. With a weight map, translation and angle are binned
  together.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from kmri_jax.sim.forward import acquire
from kmri_jax.sim.kspace import _complex_dtype, image_to_kspace
from kmri_jax.sim.motion import apply_motion, apply_phase_encode_motion


def _check_line_array(x: jax.Array | None, ny: int, name: str) -> None:
    if x is not None and tuple(jnp.shape(x)) != (ny,):
        raise ValueError(f"{name} must be [{ny}] (one value per phase-encode line); got shape "
                         f"{tuple(jnp.shape(x))}.")


def apply_rigid_motion(
    image: jax.Array,
    *,
    dx: jax.Array,
    dy: jax.Array | None = None,
    angle_deg: jax.Array | None = None,
    weight_map: jax.Array | None = None,
    motion_states: int | None = None,
) -> jax.Array:
    """k-space of an image that moves during the acquisition (module docstring).

    Args:
      image: ``[ny, nx]`` real (or complex) image.
      dx: ``[ny]`` readout (column) translation of each line's object, pixels.
      dy: optional ``[ny]`` phase-encode (row) translation, pixels.
      angle_deg: optional ``[ny]`` in-plane rotation, degrees.
      weight_map: optional ``[ny, nx]`` scale of the translation at each pixel (1 = full).
      motion_states: static number of motion states; required with ``angle_deg`` or
        ``weight_map`` (at most ``ny``; ``ny`` states warp once per line, exactly).

    Returns:
      ``[ny, nx]`` complex64 centred k-space (complex128 for float64 input).
    """
    image = jnp.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be one [ny, nx] slice; got shape {tuple(image.shape)} "
                         "(use jax.vmap for a batch).")
    ny, nx = image.shape
    for value, name in ((dx, "dx"), (dy, "dy"), (angle_deg, "angle_deg")):
        _check_line_array(value, ny, name)
    if weight_map is not None and tuple(jnp.shape(weight_map)) != (ny, nx):
        raise ValueError(f"weight_map must be [{ny}, {nx}] like the image; got shape "
                         f"{tuple(jnp.shape(weight_map))}.")
    resample = angle_deg is not None or weight_map is not None
    if resample and motion_states is None:
        raise ValueError("angle_deg and weight_map resample the image once per motion state: "
                         "pass motion_states=K (a static int, e.g. 16; K = ny is exact).")
    rdtype = jnp.finfo(_complex_dtype(image.dtype)).dtype
    dx = jnp.asarray(dx, rdtype)
    dy = None if dy is None else jnp.asarray(dy, rdtype)
    if not resample:
        kspace = apply_motion(image_to_kspace(image), dx)
        return kspace if dy is None else apply_phase_encode_motion(kspace, dy)
    if int(motion_states) != motion_states or not 1 <= motion_states <= ny:
        raise ValueError(f"motion_states must be an int in 1..{ny} (the number of lines); "
                         f"got {motion_states!r}.")
    angle = None if angle_deg is None else jnp.asarray(angle_deg, rdtype)
    w = None if weight_map is None else jnp.asarray(weight_map, rdtype)
    return _resampled_motion(image, dx, dy, angle, w, motion_states=int(motion_states))


@functools.partial(jax.jit, static_argnames=("motion_states",))
def _resampled_motion(image, dx, dy, angle_deg, weight_map, *, motion_states):
    """:func:`apply_rigid_motion` with rotation and/or a weight map, on checked inputs
    (compiled once per shape and state count; inlined under an outer jit)."""
    return acquire(image, dx=dx, dy=dy, angle_deg=angle_deg, weight_map=weight_map,
                   motion_states=motion_states)
