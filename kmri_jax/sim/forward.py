"""The per-line forward model: each phase-encode line sees the object as it was when that line
was acquired: moved, off-resonant, and seen through each receive coil.

Line ``ky`` of the result is line ``ky`` of the k-space of ``S_c * B_ky(M_ky(image))``: ``M``
the motion (:mod:`.rigid`), ``B`` the off-resonance (:mod:`.field`), ``S_c`` the coils
(:mod:`.coils`), which do not move. Two ways to compute it:

* **Exact per-line ramps** (``motion_states = 0``; the seed's path): a rigid translation and a
  spatially uniform field are, per line, a phase ramp and a phase factor on the image's
  k-space. Only without coils, rotation, a weight map or a spatial field map.
* **Motion states** (``motion_states = K``): the lines are grouped into ``K`` states
  (:mod:`.motion_states`), the object is transformed once per state with the state's mean
  values (a cubic B-spline warp for rotation, weight and field maps, :mod:`.warp`; an exact
  Fourier shift for a translation alone), weighted by each coil, Fourier transformed, and each
  line is taken from its state. What is not binned is applied per line exactly afterwards: the
  translation when only the angle is binned (no weight map, field map or coils); with coils,
  the line's residual translation from its state's mean (the coils stationary up to that
  residual); the phase of a uniform field, always.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from kmri_jax.sim import motion_states as states_lib
from kmri_jax.sim import warp
from kmri_jax.sim.field import line_phase
from kmri_jax.sim.kspace import image_to_kspace, kspace_to_image
from kmri_jax.sim.motion import apply_motion, apply_phase_encode_motion
from kmri_jax.sim.phasor import cis_turns

PHASE_PX_PER_CYCLE = 2.0
"""Phase weighs like a shift in the state grouping: a 1-px shift is half a cycle at Nyquist."""


def _add(a, b):
    return b if a is None else (a if b is None else a + b)


def acquire(
    image: jax.Array,
    *,
    dx: jax.Array,
    dy: jax.Array | None = None,
    angle_deg: jax.Array | None = None,
    phase_cycles: jax.Array | None = None,
    shift_px: jax.Array | None = None,
    weight_map: jax.Array | None = None,
    field_map: jax.Array | None = None,
    coil_maps: jax.Array | None = None,
    motion_states: int = 0,
) -> jax.Array:
    """k-space of a moving, off-resonant object, per line (module docstring); checked inputs.

    Args:
      image: ``[ny, nx]`` real image.
      dx, dy: ``[ny]`` readout / phase-encode translation of each line's object, pixels.
      angle_deg: ``[ny]`` in-plane rotation, degrees.
      phase_cycles: ``[ny]`` off-resonance phase ``b0 r te`` of each line, cycles (times the
        field map at each pixel).
      shift_px: ``[ny]`` readout shift ``b0 r / bandwidth`` of each line, pixels (times the
        field map).
      weight_map: ``[ny, nx]`` scale of the translation per pixel.
      field_map: ``[ny, nx]`` normalised field map; None = 1 everywhere.
      coil_maps: ``[C, ny, nx]`` sensitivities; None = one coil of sensitivity 1.
      motion_states: static ``K``; 0 = exact per-line ramps (no rotation, maps or coils).

    Returns:
      ``[ny, nx]`` (``[C, ny, nx]`` with coils) complex centred k-space.
    """
    readout = _add(dx, shift_px)  # a uniform field's shift is a readout translation
    if not motion_states:
        kspace = apply_motion(image_to_kspace(image), readout)
        if dy is not None:
            kspace = apply_phase_encode_motion(kspace, dy)
        return kspace if phase_cycles is None else line_phase(kspace, phase_cycles)
    return _states(image, dx, dy, angle_deg, phase_cycles, shift_px, weight_map, field_map,
                   coil_maps, motion_states=int(motion_states))


@jax.named_call
def _states(image, dx, dy, angle_deg, phase_cycles, shift_px, weight_map, field_map, coil_maps,
            *, motion_states):
    ny, nx = image.shape
    rdtype = dx.dtype
    k = motion_states
    zeros = jnp.zeros(ny, rdtype)
    spatial = weight_map is not None or field_map is not None
    bin_translation = spatial or coil_maps is not None
    components = {}
    if angle_deg is not None:
        components["angle"] = angle_deg
    if bin_translation:
        components["dx"] = dx
        components["dy"] = zeros if dy is None else dy
        if shift_px is not None:
            components["shift"] = shift_px
    if field_map is not None and phase_cycles is not None:
        components["phase"] = phase_cycles
    edge_px = 0.5 * math.hypot(ny, nx)  # rotation in pixels at the image's corners
    scale = {"angle": math.pi / 180.0 * edge_px, "phase": PHASE_PX_PER_CYCLE}
    if components:
        coordinate = states_lib.motion_coordinate(
            [v * scale.get(name, 1.0) for name, v in components.items()])
        state = states_lib.assign_states(coordinate, k)
    else:
        state = jnp.zeros(ny, jnp.int32)
    means = {name: states_lib.state_means(v, state, k) for name, v in components.items()}
    per_state = {name: means.get(name, jnp.zeros(k, rdtype))
                 for name in ("angle", "dx", "dy", "shift", "phase")}

    if angle_deg is None and not spatial:  # translation only: an exact Fourier shift
        clean = image_to_kspace(image)

        def state_object(s):
            moved = apply_phase_encode_motion(
                apply_motion(clean, jnp.full(ny, s["dx"] + s["shift"], rdtype)),
                jnp.full(ny, s["dy"], rdtype))
            return kspace_to_image(moved)
    else:
        coeffs = warp.spline_coefficients(image)
        rows, cols = warp.pixel_grid(ny, nx, rdtype)
        w = 1.0 if weight_map is None else weight_map
        f = 1.0 if field_map is None else field_map

        def state_object(s):
            r, c = rows, cols
            if bin_translation:
                r = r - w * s["dy"]
                c = c - w * s["dx"] - f * s["shift"]
            if angle_deg is not None:
                r, c = warp.rotation_source(r, c, s["angle"], ny, nx)
            x = warp.sample(coeffs, r, c)
            if field_map is not None and phase_cycles is not None:
                x = x * cis_turns(field_map * s["phase"])
            return x

    if coil_maps is None:
        objects = jax.vmap(lambda *v: state_object(dict(zip(per_state, v))))(*per_state.values())
        kspace = image_to_kspace(objects)[state, jnp.arange(ny)]  # [ny, nx]
    else:  # one state at a time: K x C images of [ny, nx] at once would be large
        def add_state(total, s_index):
            s = {name: v[s_index] for name, v in per_state.items()}
            coil_k = image_to_kspace(coil_maps * state_object(s))  # [C, ny, nx]
            mine = (state == s_index)[None, :, None]
            return jnp.where(mine, coil_k, total), None

        start = jnp.zeros((coil_maps.shape[0], ny, nx), _cdtype(rdtype))
        kspace, _ = jax.lax.scan(add_state, start, jnp.arange(k))

    if not bin_translation:  # rotation binned; each line's own translation exact
        kspace = apply_motion(kspace, _add(dx, shift_px))
        if dy is not None:
            kspace = apply_phase_encode_motion(kspace, dy)
    elif not spatial:  # coils: each line's residual from its state's mean translation
        residual_x = _add(dx, shift_px) - (per_state["dx"] + per_state["shift"])[state]
        kspace = apply_motion(kspace, residual_x)
        if dy is not None:
            kspace = apply_phase_encode_motion(kspace, dy - per_state["dy"][state])
    if phase_cycles is not None and field_map is None:
        kspace = line_phase(kspace, phase_cycles)
    return kspace


def _cdtype(rdtype):
    return jnp.complex128 if jnp.dtype(rdtype) == jnp.float64 else jnp.complex64
