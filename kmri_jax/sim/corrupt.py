"""The composed corruption and its parameters (choosing parameters and keys: :mod:`.grid`).

Pipeline (docs/conventions.md): image -> k-space -> breathing motion -> line mask -> noise. One call
corrupts one ``[ny, nx]`` slice; ``jax.jit(jax.vmap(corrupt))`` corrupts a batch in which
every sample carries its own :class:`CorruptionParams`. The realism options (echo-train
timing, 2-D and rotational motion, a spatially varying displacement; docs/realism.md) are
off by default, which is the seed's simulator exactly.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kmri_jax.sim import timing, validation
from kmri_jax.sim.breathing import METHODS, breathing_trace
from kmri_jax.sim.coils import add_coil_noise
from kmri_jax.sim.forward import acquire
from kmri_jax.sim.kspace import image_to_kspace
from kmri_jax.sim.noise import add_noise
from kmri_jax.sim.rng import NOISE_RNGS
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
      amplitude_pe_px: peak breathing displacement along the phase-encode axis (rows), px.
      rotation_deg: peak in-plane rotation, degrees (needs ``corrupt(motion_states=K)``).
      b0_hz: peak breathing-induced off-resonance, Hz (times the field map; docs/realism.md).

    The one breathing trace ``r`` (max ``|r| = 1``) drives every component: line ``ky`` moves
    by ``amplitude_px * r`` columns and ``amplitude_pe_px * r`` rows, turns by
    ``rotation_deg * r`` and is off resonance by ``b0_hz * r``.
    """

    amplitude_px: Scalar
    rate_bpm: Scalar
    acceleration: Scalar
    snr_db: Scalar
    tr: Scalar = 2.5
    te: Scalar = 0.03
    amplitude_pe_px: Scalar = 0.0
    rotation_deg: Scalar = 0.0
    b0_hz: Scalar = 0.0


_REALISM_FIELDS = ("amplitude_pe_px", "rotation_deg", "b0_hz")


def _is_static(field: str, value: Any) -> bool:
    return field in _REALISM_FIELDS and type(value) in (int, float)


def _is_static_zero(value: Any) -> bool:
    return type(value) in (int, float) and value == 0


def _flatten_params(p: CorruptionParams):
    """Pytree leaves of :class:`CorruptionParams`. A realism field left at a Python number
    (its default 0.0) is static data, not a leaf, so ``vmap`` over params built for the seed's
    six fields keeps working; given as an array it is a leaf like the others."""
    names, leaves, static = [], [], []
    for field, value in zip(p._fields, p):
        if _is_static(field, value):
            static.append((field, value))
        else:
            names.append(field)
            leaves.append(value)
    return leaves, (tuple(names), tuple(static))


def _unflatten_params(aux, leaves) -> CorruptionParams:
    names, static = aux
    return CorruptionParams(**dict(zip(names, leaves)), **dict(static))


jax.tree_util.register_pytree_node(CorruptionParams, _flatten_params, _unflatten_params)


class Corrupted(NamedTuple):
    """Result of :func:`corrupt` for one slice (a leading ``[B]`` axis under ``vmap``).

    Dtypes are for a float32 image; a float64 image gives complex128 / float64.

    Attributes:
      kspace: ``[ny, nx]`` complex64 corrupted k-space (zero on lines not acquired);
        ``[C, ny, nx]`` with coil maps.
      clean: ``[ny, nx]`` complex64 clean k-space ``fftshift(fft2(image))``; with coil maps
        ``[C, ny, nx]``, of ``S_c * image``.
      mask: ``[ny]`` bool, acquired phase-encode lines.
      displacement: ``[ny]`` float32 displacement of each line, pixels (``A * trace``).
      trace: ``[ny]`` float32 normalised breathing trace at the line times (max |r| = 1).
      displacement_pe: ``[ny]`` float32 phase-encode (row) displacement, pixels.
      rotation_deg: ``[ny]`` float32 in-plane rotation of each line, degrees.
      times: ``[ny]`` float32 acquisition time of each line, seconds (:func:`line_times`).
      off_resonance_hz: ``[ny]`` float32 off-resonance of each line, ``b0_hz * r``, Hz.
      coil_kspace: None from :func:`corrupt`; ``[C, ny, nx]`` corrupted coil k-space when
        ``kspace``/``clean`` are the combined single-coil view
        (:func:`kmri_jax.sim.coils.combined_view`).
    """

    kspace: jax.Array
    clean: jax.Array
    mask: jax.Array
    displacement: jax.Array
    trace: jax.Array
    displacement_pe: jax.Array | None = None
    rotation_deg: jax.Array | None = None
    times: jax.Array | None = None
    off_resonance_hz: jax.Array | None = None
    coil_kspace: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class CorruptOptions:
    """The static (compile-time) options of :func:`corrupt` as one hashable value, for code
    that passes them along: ``corrupt(key, image, params, **options.kwargs())``.

    Attributes: as :func:`corrupt`'s keyword arguments of the same names.
    """

    method: str = "breathmetrics"
    center_fraction: float = 0.08
    max_cycles: int = 1024
    ordering: str = "sequential"
    echo_train_length: int = 1
    echo_spacing: float = 0.0
    time_acquired_only: bool = False
    motion_states: int = 0
    readout_bandwidth_hz_per_px: float | None = None
    noise_rng: str = "fused"

    def kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of :func:`corrupt`."""
        return dataclasses.asdict(self)


def corrupt(
    key: jax.Array,
    image: jax.Array,
    params: CorruptionParams,
    weight_map: jax.Array | None = None,
    field_map: jax.Array | None = None,
    coil_maps: jax.Array | None = None,
    noise_covariance: jax.Array | None = None,
    *,
    method: str = "breathmetrics",
    center_fraction: float = 0.08,
    max_cycles: int = 1024,
    ordering: str = "sequential",
    echo_train_length: int = 1,
    echo_spacing: float = 0.0,
    time_acquired_only: bool = False,
    motion_states: int = 0,
    readout_bandwidth_hz_per_px: float | None = None,
    noise_rng: str = "fused",
) -> Corrupted:
    """Corrupt one clean slice with breathing motion, undersampling and noise.

    Steps: ``K = image_to_kspace(image)``; mask ``M`` from ``cartesian_mask(R)``;
    ``t = line_times(ny, tr, te, ordering, echo_train_length, echo_spacing)`` (over the
    acquired lines only with ``time_acquired_only``); ``r = breathing_trace(t)``;
    ``K_m = apply_motion(K, A r)`` (then ``A_pe r`` rows as a phase ramp; with
    ``motion_states``, :func:`apply_rigid_motion` of the image with rotation ``rot * r`` and
    the weight map); ``K_c = add_noise(K_m * M, M, snr_db)``. With the defaults this is the
    seed's simulator bit for bit. Off-resonance ``b0_hz * r`` multiplies line ``ky``'s image
    by ``exp(2 pi i b0_hz r f te_ky)`` (and shifts it along the readout with a bandwidth);
    coils weight the moved object by their maps (:mod:`.forward`, docs/realism.md).

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
      weight_map: optional ``[ny, nx]`` scale of the translation per pixel (data, like the
        image: :func:`breathing_weight_map`); needs ``motion_states``.
      field_map: optional ``[ny, nx]`` normalised B0 field map (:func:`breathing_field_map`);
        None is 1 everywhere (a per-line phase, exact); a map needs ``motion_states``.
      coil_maps: optional ``[C, ny, nx]`` sensitivities (:func:`coil_maps`); needs
        ``motion_states``. The k-space gets a leading coil axis.
      noise_covariance: optional ``[C, C]`` Hermitian positive definite coil noise
        covariance (identity by default); SNR is that of the coil-combined image
        (:mod:`.coils`).
      method: breathing model, ``"breathmetrics"`` (default, the seed's) or ``"sinusoidal"``.
      center_fraction: fraction of fully sampled centre lines (seed: 0.08).
      max_cycles: static breathing-cycle budget (see :func:`breathing_trace`); the default
        covers ~920 breaths, e.g. 1060 s of lines at up to ~52 breaths/min.
      ordering: phase-encode order, ``"sequential"`` (seed), ``"segmented"``, ``"centric"``.
      echo_train_length: lines per TR (turbo factor); 1 is the seed.
      echo_spacing: seconds between the echoes of a train.
      time_acquired_only: skipped lines take no scan time (a real accelerated scan); the
        seed (False) times every line of the grid.
      motion_states: 0 (rigid translations, exact phase ramps; ``rotation_deg`` must be 0 and
        no ``weight_map``), or the static number of states in which the image is resampled
        for rotation and the weight map (:func:`apply_rigid_motion`).
      readout_bandwidth_hz_per_px: with it, the off-resonance also shifts each line along the
        readout by ``b0_hz r f / bandwidth`` px; None = no shift.

    Returns:
      :class:`Corrupted` (every field, ``displacement_pe``, ``rotation_deg``, ``times`` too).
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
    p = CorruptionParams(**{  # a realism field left at a Python number stays static
        field: float(leaf) if _is_static(field, leaf) else jnp.asarray(leaf, dtype)
        for field, leaf in zip(params._fields, params)})
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    timing.check_echo_train(ordering, echo_train_length, echo_spacing)
    validation.check_motion_options(image.shape, params=params, motion_states=motion_states,
                                    weight_map=weight_map)
    validation.check_field_and_coils(
        image.shape, motion_states=motion_states, field_map=field_map, coil_maps=coil_maps,
        noise_covariance=noise_covariance,
        readout_bandwidth_hz_per_px=readout_bandwidth_hz_per_px)
    if method == "breathmetrics" and all(validation.is_concrete(v) for v in params):
        last_line = np.asarray([timing.scan_duration(
            image.shape[0], tr=float(params.tr), te=float(params.te),
            echo_train_length=echo_train_length, echo_spacing=float(echo_spacing))])
        validation.check_cycle_budget(last_line, params.rate_bpm, max_cycles)
    if weight_map is not None:
        weight_map = jnp.asarray(weight_map, dtype)
    if field_map is not None:
        field_map = jnp.asarray(field_map, dtype)
    cdtype = jnp.complex128 if dtype == jnp.float64 else jnp.complex64
    if coil_maps is not None:
        coil_maps = jnp.asarray(coil_maps, cdtype)
    if noise_covariance is not None:
        noise_covariance = jnp.asarray(noise_covariance, cdtype)
    if noise_rng not in NOISE_RNGS:
        raise ValueError(f"noise_rng must be one of {NOISE_RNGS}; got {noise_rng!r}.")
    bandwidth = (None if readout_bandwidth_hz_per_px is None
                 else float(readout_bandwidth_hz_per_px))
    return _corrupt(
        key, image, p, weight_map, field_map, coil_maps, noise_covariance, method=method,
        center_fraction=center_fraction,
        max_cycles=max_cycles, ordering=ordering, echo_train_length=int(echo_train_length),
        echo_spacing=float(echo_spacing), time_acquired_only=bool(time_acquired_only),
        motion_states=int(motion_states), readout_bandwidth_hz_per_px=bandwidth,
        noise_rng=noise_rng,
    )


@functools.partial(jax.jit, static_argnames=(
    "method", "center_fraction", "max_cycles", "ordering", "echo_train_length", "echo_spacing",
    "time_acquired_only", "motion_states", "readout_bandwidth_hz_per_px", "noise_rng"))
def _corrupt(
    key: jax.Array,
    image: jax.Array,
    p: CorruptionParams,
    weight_map: jax.Array | None,
    field_map: jax.Array | None,
    coil_maps: jax.Array | None,
    noise_covariance: jax.Array | None,
    *,
    method: str,
    center_fraction: float,
    max_cycles: int,
    ordering: str,
    echo_train_length: int,
    echo_spacing: float,
    time_acquired_only: bool,
    motion_states: int,
    readout_bandwidth_hz_per_px: float | None,
    noise_rng: str,
) -> Corrupted:
    """The pipeline on checked inputs; compiled once per shape/dtype/options, so eager calls
    are fast and calls under jit/vmap/grad simply inline it."""
    ny = image.shape[0]
    k_breath, k_mask, k_noise = jax.random.split(key, 3)
    mask = cartesian_mask(k_mask, ny, acceleration=p.acceleration, center_fraction=center_fraction)
    timing_options = dict(ordering=ordering, echo_train_length=echo_train_length,
                          echo_spacing=echo_spacing, mask=mask if time_acquired_only else None)
    times = timing.line_times(ny, tr=p.tr, te=p.te, **timing_options)
    trace = breathing_trace(
        k_breath, times, rate_bpm=p.rate_bpm, method=method, max_cycles=max_cycles
    )
    displacement = p.amplitude_px * trace
    displacement_pe = p.amplitude_pe_px * trace
    rotation = p.rotation_deg * trace
    off_resonance = p.b0_hz * trace
    phase = shift = None
    if not _is_static_zero(p.b0_hz):  # the seed's path stays bit for bit
        phase = off_resonance * timing.echo_times(ny, te=p.te, **timing_options)
        if readout_bandwidth_hz_per_px is not None:
            shift = off_resonance / readout_bandwidth_hz_per_px
    if motion_states:
        dy, angle = displacement_pe, rotation
    else:
        dy = None if _is_static_zero(p.amplitude_pe_px) else displacement_pe
        angle = None
    moved = acquire(image, dx=displacement, dy=dy, angle_deg=angle, phase_cycles=phase,
                    shift_px=shift, weight_map=weight_map, field_map=field_map,
                    coil_maps=coil_maps, motion_states=motion_states)
    masked = jnp.where(mask[:, None], moved, jnp.zeros((), moved.dtype))
    if coil_maps is None:
        clean = image_to_kspace(image)
        kspace = add_noise(k_noise, masked, mask, snr_db=p.snr_db, noise_rng=noise_rng)
    else:
        clean = image_to_kspace(coil_maps * image)
        kspace = add_coil_noise(k_noise, masked, mask, coil_maps, snr_db=p.snr_db,
                                noise_covariance=noise_covariance, noise_rng=noise_rng)
    return Corrupted(kspace=kspace, clean=clean, mask=mask, displacement=displacement, trace=trace,
                     displacement_pe=displacement_pe, rotation_deg=rotation, times=times,
                     off_resonance_hz=off_resonance)
