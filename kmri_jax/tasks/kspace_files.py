"""The files ``kmri-simulate`` writes beside a corrupted volume: the ``.npz`` k-space file (what
``kmri-infer --kspace`` reads back) and the per-line breathing trace CSV."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from kmri_jax import sim
from kmri_jax.tasks import volumes
from kmri_jax.tasks.errors import TaskError

if TYPE_CHECKING:
    from kmri_jax.tasks.simulate import SimParams

__all__ = ["image_from_kspace_file", "load_kspace", "save_kspace", "save_trace_csv"]


def _header_bytes(image: nib.Nifti1Image) -> np.ndarray:
    return np.frombuffer(image.header.binaryblock, dtype=np.uint8).copy()


def save_kspace(path: str | os.PathLike[str], corrupted: sim.Corrupted, *, image: nib.Nifti1Image,
                axis: int, slice_indices: np.ndarray, params: SimParams, tr: float, te: float,
                method: str, seed: int, volume_index: int, combination: int = -1,
                coil_maps: np.ndarray | None = None, noise_covariance: np.ndarray | None = None,
                field_map: np.ndarray | None = None,
                readout_bandwidth_hz_per_px: float | None = None) -> Path:
    """Write one ``.npz`` (atomically): the k-space and everything needed to undo or reuse it.

    Keys: ``kspace`` (corrupted) and ``clean`` ``[n, ny, nx] complex64``; ``mask [n, ny] bool``
    (acquired lines); ``trace``, ``displacement``, ``displacement_pe`` (px), ``rotation_deg``
    and ``times`` (seconds) ``[n, ny] float32``; ``line_times [ny]`` (the first slice's
    times: every slice's unless lines were timed over the acquired ones only); ``slice_index [n] int32``; ``axis``; ``volume_shape [3]``; ``affine [4, 4]``;
    ``nifti_header`` (the input's raw header bytes, uint8); scalars ``amplitude_px``,
    ``rate_bpm``, ``acceleration``, ``snr_db``, ``tr``, ``te``, ``seed``, ``volume_index``,
    ``combination`` (-1 outside grid mode) and the string ``method``. Breathing B0:
    ``off_resonance_hz [n, ny]`` (``b0_hz * r`` per line, zeros without B0), scalars ``b0_hz``
    and ``readout_bandwidth_hz_per_px`` (0 = no readout shift), and ``field_map [ny, nx]``
    when one was used.

    With ``coil_maps`` (``corrupted.kspace``/``clean`` then ``[n, C, ny, nx]``): ``kspace`` and
    ``clean`` are the adjoint-SENSE combined view ``[n, ny, nx]`` (what the networks and
    ``kmri-infer`` read), ``coil_kspace`` and ``coil_clean`` ``[n, C, ny, nx]``,
    ``coil_maps [C, ny, nx]`` and ``noise_covariance [C, C]`` (identity if None).
    """
    kspace, clean = corrupted.kspace, corrupted.clean
    coil_arrays = {}
    if coil_maps is not None:
        maps = np.asarray(coil_maps, np.complex64)
        c = maps.shape[0]
        coil_arrays = {
            "coil_kspace": np.asarray(kspace, np.complex64),
            "coil_clean": np.asarray(clean, np.complex64), "coil_maps": maps,
            "noise_covariance": (np.eye(c, dtype=np.complex64) if noise_covariance is None
                                 else np.asarray(noise_covariance, np.complex64))}
        kspace = np.asarray(sim.coils.combined_kspace(kspace, maps))
        clean = np.asarray(sim.coils.combined_kspace(clean, maps))
    if field_map is not None:
        coil_arrays["field_map"] = np.asarray(field_map, np.float32)
    arrays = {
        "kspace": kspace.astype(np.complex64),
        "clean": clean.astype(np.complex64),
        "mask": corrupted.mask.astype(bool),
        "trace": corrupted.trace.astype(np.float32),
        "displacement": corrupted.displacement.astype(np.float32),
        "line_times": _times(corrupted, tr, te)[0],
        "times": _times(corrupted, tr, te),
        "displacement_pe": _or_zeros(corrupted.displacement_pe, corrupted.displacement),
        "rotation_deg": _or_zeros(corrupted.rotation_deg, corrupted.displacement),
        "off_resonance_hz": _or_zeros(corrupted.off_resonance_hz, corrupted.displacement),
        "b0_hz": np.float32(params.b0_hz),
        "readout_bandwidth_hz_per_px": np.float32(readout_bandwidth_hz_per_px or 0.0),
        "slice_index": np.asarray(slice_indices, np.int32),
        "axis": np.int32(axis),
        "volume_shape": np.asarray(image.shape[:3], np.int64),
        "affine": np.asarray(image.affine, np.float64),
        "nifti_header": _header_bytes(image),
        "amplitude_px": np.float32(params.amplitude_px), "rate_bpm": np.float32(params.rate_bpm),
        "acceleration": np.float32(params.acceleration), "snr_db": np.float32(params.snr_db),
        "tr": np.float32(tr), "te": np.float32(te), "seed": np.int64(seed),
        "volume_index": np.int32(volume_index), "combination": np.int32(combination),
        "method": np.asarray(method),
        **coil_arrays,
    }
    path = Path(path)
    with volumes.atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path


def load_kspace(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a ``kmri-simulate --save-kspace`` file; checks the keys the commands need.

    Raises:
      TaskError: missing/unreadable file, or not written by ``kmri-simulate``.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"k-space file {os.fspath(path)!r} does not exist; write one with "
                        "kmri-simulate --save-kspace")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as e:
        raise TaskError(f"cannot read the k-space file {os.fspath(path)!r} ({e}); write it again "
                        "with kmri-simulate --save-kspace") from None
    needed = ("kspace", "slice_index", "axis", "volume_shape", "affine", "nifti_header")
    missing = [k for k in needed if k not in data]
    kspace = data.get("kspace")
    if missing or kspace is None or kspace.ndim != 3 or not np.iscomplexobj(kspace):
        raise TaskError(f"{os.fspath(path)!r} is not a kmri-simulate k-space file (missing "
                        f"{missing or 'a complex [n, ny, nx] kspace'}); write it with "
                        "kmri-simulate --save-kspace")
    return data


def image_from_kspace_file(data: dict[str, np.ndarray]) -> nib.Nifti1Image:
    """An empty-data NIfTI image carrying the header and affine stored in a k-space file."""
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(data["nifti_header"].tobytes()))
    shape = tuple(int(s) for s in data["volume_shape"])
    header.set_data_shape(shape)
    return nib.Nifti1Image(np.zeros(shape, np.float32), np.asarray(data["affine"]), header)


def _times(corrupted: sim.Corrupted, tr: float, te: float) -> np.ndarray:
    """``[n, ny]`` float32 line times (the seed's ``ky*TR + TE`` for results without them)."""
    n, ny = corrupted.mask.shape
    if corrupted.times is None:
        return np.broadcast_to(np.arange(ny) * tr + te, (n, ny)).astype(np.float32)
    return np.asarray(corrupted.times, np.float32)


def _or_zeros(values, like) -> np.ndarray:
    return np.zeros_like(np.asarray(like, np.float32)) if values is None else np.asarray(
        values, np.float32)


def save_trace_csv(path: str | os.PathLike[str], corrupted: sim.Corrupted,
                   slice_indices: np.ndarray, tr: float, te: float) -> Path:
    """CSV, one row per (slice, line): slice, line, time_s, trace, displacement_px, acquired,
    displacement_pe_px, rotation_deg, off_resonance_hz."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["slice", "line", "time_s", "trace", "displacement_px", "acquired",
                "displacement_pe_px", "rotation_deg", "off_resonance_hz"])
    ny = corrupted.trace.shape[1]
    times = _times(corrupted, tr, te)
    pe = _or_zeros(corrupted.displacement_pe, corrupted.displacement)
    rot = _or_zeros(corrupted.rotation_deg, corrupted.displacement)
    b0 = _or_zeros(corrupted.off_resonance_hz, corrupted.displacement)
    for i, s in enumerate(slice_indices):
        for ky in range(ny):
            w.writerow([int(s), ky, f"{times[i, ky]:.6g}", f"{corrupted.trace[i, ky]:.6g}",
                        f"{corrupted.displacement[i, ky]:.6g}", int(corrupted.mask[i, ky]),
                        f"{pe[i, ky]:.6g}", f"{rot[i, ky]:.6g}", f"{b0[i, ky]:.6g}"])
    with volumes.atomic_output(path) as tmp:
        tmp.write_text(buf.getvalue())
    return Path(path)
