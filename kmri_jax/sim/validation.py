"""Checks at the Python boundary, with one clear message per mistake.

Shape checks always run (shapes are static, also under ``jit``/``vmap``). Value checks
(finiteness, ranges) run only on concrete arrays and Python numbers; on tracers they are
skipped silently, so the same functions stay usable inside ``jit``, ``vmap`` and ``grad``.
Call :func:`check_inputs` once on the host before handing a batch to a compiled function.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds a value now (numpy/Python data or a non-traced jax.Array)."""
    return not isinstance(x, jax.core.Tracer)


def _values(x: Any) -> np.ndarray | None:
    """Concrete values of ``x`` as a numpy array, or None for a tracer."""
    if not is_concrete(x):
        return None
    return np.asarray(x)


def check_image(image: Any, *, batched: bool = False, name: str = "image") -> None:
    """Raise ``ValueError`` unless ``image`` is ``[ny, nx]`` (``[B, ny, nx]`` when ``batched``),
    real, and (when concrete) finite."""
    shape = tuple(np.shape(image))
    want = 3 if batched else 2
    layout = "[B, ny, nx]" if batched else "[ny, nx]"
    if len(shape) != want:
        raise ValueError(
            f"{name} must be a real {want}-D array {layout}; got shape {shape}. "
            + ("Stack slices along a leading batch axis." if batched else
               "Pass one 2-D slice, or use jax.vmap over a batch.")
        )
    if min(shape) < 1:
        raise ValueError(f"{name} must not be empty; got shape {shape}.")
    dtype = np.dtype(image.dtype) if hasattr(image, "dtype") else np.asarray(image).dtype
    if np.issubdtype(dtype, np.complexfloating):
        raise ValueError(f"{name} must be real (magnitude image); got dtype {dtype}.")
    values = _values(image)
    if values is not None and not np.all(np.isfinite(values)):
        bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        raise ValueError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); clean the data "
            "(e.g. np.nan_to_num) before simulating."
        )


def check_acceleration(acceleration: Any) -> None:
    """Raise ``ValueError`` unless (when concrete) every acceleration is finite and >= 1."""
    values = _values(acceleration)
    if values is not None and not np.all(np.isfinite(values) & (values >= 1)):
        raise ValueError(
            f"acceleration must be finite and >= 1 (1 = fully sampled); got {values!r}."
        )


def check_snr(snr_db: Any) -> None:
    """Raise ``ValueError`` unless (when concrete) every SNR in dB is finite."""
    values = _values(snr_db)
    if values is not None and not np.all(np.isfinite(values)):
        raise ValueError(f"snr_db must be finite (in dB); got {values!r}.")


def check_params(params: Any) -> None:
    """Raise ``ValueError`` for impossible :class:`~kmri_jax.sim.CorruptionParams` values.

    Checks (concrete leaves only): amplitude finite; rate finite and > 0; acceleration
    finite and >= 1; SNR finite; TR finite and > 0; TE finite and >= 0; all leaves scalars or
    1-D with one common length.
    """
    names = params._fields if hasattr(params, "_fields") else (
        "amplitude_px", "rate_bpm", "acceleration", "snr_db", "tr", "te")
    lengths = set()
    for field in names:
        leaf = getattr(params, field)
        ndim = np.ndim(leaf)
        if ndim > 1:
            raise ValueError(
                f"CorruptionParams.{field} must be a scalar or a [B] array; "
                f"got shape {tuple(np.shape(leaf))}."
            )
        if ndim == 1:
            lengths.add(np.shape(leaf)[0])
    if len(lengths) > 1:
        raise ValueError(
            f"CorruptionParams leaves have different batch lengths {sorted(lengths)}."
        )
    check_acceleration(params.acceleration)
    check_snr(params.snr_db)
    rules = {
        "amplitude_px": (lambda v: np.isfinite(v), "finite"),
        "amplitude_pe_px": (lambda v: np.isfinite(v), "finite"),
        "rotation_deg": (lambda v: np.isfinite(v), "finite"),
        "b0_hz": (lambda v: np.isfinite(v), "finite (Hz)"),
        "rate_bpm": (lambda v: np.isfinite(v) & (v > 0), "finite and > 0"),
        "tr": (lambda v: np.isfinite(v) & (v > 0), "finite and > 0 (seconds)"),
        "te": (lambda v: np.isfinite(v) & (v >= 0), "finite and >= 0 (seconds)"),
    }
    for field, (ok, what) in rules.items():
        if not hasattr(params, field):
            continue
        values = _values(getattr(params, field))
        if values is not None and not np.all(ok(values)):
            raise ValueError(f"CorruptionParams.{field} must be {what}; got {values!r}.")


def check_motion_options(shape: tuple[int, ...], *, params: Any, motion_states: int,
                         weight_map: Any) -> None:
    """Raise ``ValueError`` unless ``motion_states`` is an int in ``0..ny``, a weight map is
    ``[ny, nx]`` and comes with motion states, and (when concrete) a rotation comes with them."""
    ny, nx = shape[-2:]
    if int(motion_states) != motion_states or not 0 <= motion_states <= ny:
        raise ValueError(f"motion_states must be an int in 0..{ny} (0: rigid translations "
                         f"only); got {motion_states!r}.")
    if weight_map is not None:
        values = _check_pixel_map(
            "weight_map", weight_map, (ny, nx), motion_states,
            "a weight_map resamples the image once per motion state: pass motion_states=K "
            "(e.g. 16).")
        if values is not None and not np.all(np.isfinite(values)):
            raise ValueError("weight_map must be finite.")
    rotation = _values(getattr(params, "rotation_deg", 0.0))
    if not motion_states and rotation is not None and np.any(rotation != 0):
        raise ValueError(f"CorruptionParams.rotation_deg = {rotation!r} needs motion_states=K "
                         "(the image is resampled once per motion state, e.g. 16).")


def _check_pixel_map(name: str, value: Any, shape: tuple[int, int], motion_states: int,
                     needs_states: str) -> np.ndarray | None:
    """A per-pixel map (weight or field map): ``shape`` like the image, and motion states
    (else ``needs_states`` is the error). Returns its concrete values (None when traced)."""
    if tuple(np.shape(value)) != shape:
        raise ValueError(f"{name} must be [{shape[0]}, {shape[1]}] like the image; got shape "
                         f"{tuple(np.shape(value))}.")
    if not motion_states:
        raise ValueError(needs_states)
    return _values(value)


def check_field_and_coils(shape: tuple[int, ...], *, motion_states: int, field_map: Any,
                          coil_maps: Any, noise_covariance: Any,
                          readout_bandwidth_hz_per_px: Any) -> None:
    """Raise ``ValueError`` unless a field map is ``[ny, nx]`` and finite, coil maps are
    ``[C, ny, nx]`` complex and finite, both come with motion states, the noise covariance is
    ``[C, C]`` Hermitian positive definite and comes with coil maps, and the bandwidth is a
    positive number."""
    ny, nx = shape[-2:]
    if field_map is not None:
        values = _check_pixel_map(
            "field_map", field_map, (ny, nx), motion_states,
            "a spatial field_map is applied once per motion state: pass motion_states=K "
            "(e.g. 16), or field_map=None for a uniform field.")
        if values is not None and (np.iscomplexobj(values) or not np.all(np.isfinite(values))):
            raise ValueError("field_map must be real and finite (a normalised map; "
                             "CorruptionParams.b0_hz gives the Hz).")
    if readout_bandwidth_hz_per_px is not None:
        bw = np.asarray(readout_bandwidth_hz_per_px, np.float64)
        if bw.ndim or not np.isfinite(bw) or bw <= 0:
            raise ValueError(f"readout_bandwidth_hz_per_px must be a number > 0 (Hz per pixel) "
                             f"or None; got {readout_bandwidth_hz_per_px!r}.")
    if coil_maps is None:
        if noise_covariance is not None:
            raise ValueError("noise_covariance is the covariance between coils: pass coil_maps "
                             "too (sim.coil_maps).")
        return
    shape_c = tuple(np.shape(coil_maps))
    if len(shape_c) != 3 or shape_c[1:] != (ny, nx) or shape_c[0] < 1:
        raise ValueError(f"coil_maps must be [C, {ny}, {nx}] (C coils, like the image); got "
                         f"shape {shape_c}.")
    if not motion_states:
        raise ValueError("coil_maps: the coils stay still while the object moves, which is "
                         "computed once per motion state: pass motion_states=K (e.g. 8; K = ny "
                         "is exact).")
    values = _values(coil_maps)
    if values is not None and not np.all(np.isfinite(values)):
        raise ValueError("coil_maps must be finite.")
    if noise_covariance is not None:
        n_coils = shape_c[0]
        if tuple(np.shape(noise_covariance)) != (n_coils, n_coils):
            raise ValueError(f"noise_covariance must be [{n_coils}, {n_coils}] (one row per "
                             f"coil); got shape {tuple(np.shape(noise_covariance))}.")
        cov = _values(noise_covariance)
        if cov is not None:
            cov = np.asarray(cov, np.complex128)
            if not np.allclose(cov, cov.conj().T, atol=1e-6 * np.max(np.abs(cov))):
                raise ValueError("noise_covariance must be Hermitian (equal to its conjugate "
                                 "transpose).")
            if not np.all(np.isfinite(cov)) or np.min(np.linalg.eigvalsh(cov)) <= 0:
                raise ValueError("noise_covariance must be positive definite (all eigenvalues "
                                 "> 0).")


def check_cycle_budget(
    times: Any, rate_bpm: Any, max_cycles: int, smoothing_s: float = 0.5
) -> None:
    """Raise ``ValueError`` when (concrete) sample times at ``rate_bpm`` span more breaths than
    the breathmetrics cycle budget covers (``0.9 * max_cycles``).

    ``times`` and ``rate_bpm`` broadcast elementwise (e.g. ``[B]`` last-line times and rates).
    """
    t, rate = _values(times), _values(rate_bpm)
    if t is None or rate is None:
        return
    t = np.asarray(t, np.float64) + 0.5 * smoothing_s
    breaths = float(np.max(t * np.asarray(rate, np.float64) / 60.0))
    if breaths > 0.9 * max_cycles:
        raise ValueError(
            f"breathing trace spans ~{breaths:.0f} breaths (line times x rate_bpm), more than "
            f"the cycle budget covers (0.9 * max_cycles = {0.9 * max_cycles:.0f}); pass a "
            "larger max_cycles."
        )


def check_inputs(image: Any, params: Any, *, max_cycles: int = 1024) -> None:
    """Host-side check of one slice ``[ny, nx]`` or a batch ``[B, ny, nx]`` and its params.

    For a batch, every params leaf must be a scalar or have length ``B``. Also checks the
    breathmetrics cycle budget for the last line's time of each sample. Raises ``ValueError``
    naming the offending input; returns None when all is well.
    """
    ndim = np.ndim(image)
    check_image(image, batched=ndim == 3)
    check_params(params)
    if ndim == 3:
        batch = np.shape(image)[0]
        for field, leaf in zip(params._fields, params):
            if np.ndim(leaf) == 1 and np.shape(leaf)[0] != batch:
                raise ValueError(
                    f"CorruptionParams.{field} has length {np.shape(leaf)[0]} but the image "
                    f"batch has {batch} slices."
                )
    else:
        for field, leaf in zip(params._fields, params):
            if np.ndim(leaf) != 0:
                raise ValueError(
                    f"CorruptionParams.{field} must be a scalar for a single [ny, nx] image; "
                    f"got shape {tuple(np.shape(leaf))} (use jax.vmap for a batch)."
                )
    tr, te = _values(params.tr), _values(params.te)
    if tr is not None and te is not None:
        last_line = (np.shape(image)[-2] - 1) * np.asarray(tr, np.float64) + te
        check_cycle_budget(last_line, params.rate_bpm, max_cycles)
