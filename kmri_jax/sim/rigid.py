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
* Rotation and weight maps resample the image. The lines are grouped into ``motion_states``
  states (:mod:`.motion_states`), the image is warped once per state (periodic cubic B-spline,
  :mod:`.warp`) and transformed, and each line is gathered from its state. With rotation and no
  weight map only the angle is binned: each line's own translation is still applied exactly as
  a phase ramp after the rotation. With a weight map, translation and angle are binned
  together.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from kmri_jax.sim import motion_states as states_lib
from kmri_jax.sim import warp
from kmri_jax.sim.kspace import _complex_dtype, image_to_kspace
from kmri_jax.sim.motion import apply_motion


def phase_frequencies(ny: int, dtype=jnp.float32) -> jax.Array:
    """Centred phase-encode frequencies ``v = fftshift(fftfreq(ny))`` in cycles/pixel, ``[ny]``."""
    return jnp.fft.fftshift(jnp.fft.fftfreq(ny)).astype(dtype)


def apply_phase_encode_motion(kspace: jax.Array, dy: jax.Array) -> jax.Array:
    """Translate each line's object by ``dy[ky]`` rows: ``K[ky, :] * exp(-2 pi i dy[ky] v[ky])``.

    A constant integer ``dy`` is ``np.roll(image, dy, axis=0)``. ``kspace [..., ny, nx]``,
    ``dy [..., ny]`` px.
    """
    cdtype = _complex_dtype(kspace.dtype)
    rdtype = jnp.finfo(cdtype).dtype
    v = phase_frequencies(kspace.shape[-2], rdtype)
    phase = (-2.0 * math.pi) * jnp.asarray(dy, rdtype) * v
    return kspace.astype(cdtype) * jax.lax.complex(jnp.cos(phase), jnp.sin(phase))[..., None]


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
    ny, nx = image.shape
    rdtype = dx.dtype
    k = motion_states
    angle = jnp.zeros(ny, rdtype) if angle_deg is None else jnp.asarray(angle_deg, rdtype)
    edge_px = 0.5 * math.hypot(ny, nx)  # rotation in pixels at the image's corners
    if weight_map is None:
        state = states_lib.assign_states(angle, k)
        components = {"angle": angle}
    else:
        dy_ = jnp.zeros(ny, rdtype) if dy is None else dy
        state = states_lib.assign_states(
            states_lib.motion_coordinate([dx, dy_, jnp.deg2rad(angle) * edge_px]), k)
        components = {"angle": angle, "dx": dx, "dy": dy_}
    means = {name: states_lib.state_means(v, state, k) for name, v in components.items()}

    coeffs = warp.spline_coefficients(image)
    rows, cols = warp.pixel_grid(ny, nx, rdtype)
    w = weight_map

    def warp_state(angle_s, dy_s, dx_s):
        r, c = rows, cols
        if w is not None:
            r, c = r - w * dy_s, c - w * dx_s
        return warp.sample(coeffs, *warp.rotation_source(r, c, angle_s, ny, nx))

    zeros = jnp.zeros(k, rdtype)
    warped = jax.vmap(warp_state)(means["angle"], means.get("dy", zeros), means.get("dx", zeros))
    per_state = image_to_kspace(warped)  # [K, ny, nx]
    kspace = per_state[state, jnp.arange(ny)]
    if weight_map is None:  # rotation binned; each line's own translation exact
        kspace = apply_motion(kspace, dx)
        if dy is not None:
            kspace = apply_phase_encode_motion(kspace, dy)
    return kspace
