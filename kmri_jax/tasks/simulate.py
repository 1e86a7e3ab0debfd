"""Corrupt NIfTI volumes with the simulator: the library side of ``kmri-simulate``.

A volume is cut into 2-D slices along ``axis`` (rows = phase-encode lines) and corrupted in
batches of ``batch_size`` slices by one compiled ``jax.jit(jax.vmap(sim.corrupt))`` call per
batch (the last batch is padded by repeating its last slice, so one shape is compiled).

Slice size: the simulator works on any ``[ny, nx]``, so each slice is simulated at its own
size, with no crop or pad; the output volume has exactly the input's shape.

Intensities are used as stored (scaling applied, no percentile window): motion and
undersampling are linear and the noise level is relative to the signal, so the corrupted
magnitude image is in the input's units.

Keys (reproducible, independent of the batch size): slice ``s`` of volume ``v`` (``v`` = 0 for
a single file, else the position in the sorted list of discovered volumes) is corrupted with
``fold_in(fold_in(key(seed), v), s)``; in grid mode grid combination ``c`` uses
``fold_in(fold_in(fold_in(key(seed), v), s), c)``, the order the training loop uses for fixed
corruption (volume, slice, combination).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import nibabel as nib
import numpy as np

from kmri_jax import sim
from kmri_jax.data.discovery import (DEFAULT_TE_S, DEFAULT_TR_S, discover_volumes, nifti_stem,
                                     read_timing)
from kmri_jax.data.errors import DataError
from kmri_jax.tasks import volumes
from kmri_jax.tasks.errors import TaskError

log = logging.getLogger(__name__)

__all__ = ["SimParams", "SimulatedVolume", "VolumeInput", "check_params", "corrupt_slices",
           "find_inputs", "grid_tag", "slice_keys", "save_kspace", "load_kspace", "simulate"]

METHODS = ("breathmetrics", "sinusoidal")
# Accepted ranges (beyond them the simulation is meaningless or the cycle budget breaks).
_RANGES = {
    "amplitude_px": (0.0, 100.0, "px"),
    "rate_bpm": (1.0, 60.0, "breaths/min"),
    "acceleration": (1.0, 32.0, ""),
    "snr_db": (-20.0, 100.0, "dB"),
}


@dataclasses.dataclass(frozen=True)
class SimParams:
    """One corruption: breathing amplitude ``A`` (px), rate ``f`` (/min), acceleration ``R``,
    SNR (dB). TR/TE come from each volume (sidecar or override)."""

    amplitude_px: float = 5.0
    rate_bpm: float = 15.0
    acceleration: float = 4.0
    snr_db: float = 20.0

    @property
    def tag(self) -> str:
        return (f"A{self.amplitude_px:g}_f{self.rate_bpm:g}_R{self.acceleration:g}"
                f"_SNR{self.snr_db:g}")


def check_params(p: SimParams) -> None:
    """Raise :class:`TaskError` naming the option for a value out of its accepted range."""
    flags = {"amplitude_px": "--amplitude", "rate_bpm": "--rate", "acceleration":
             "--acceleration", "snr_db": "--snr"}
    for field, (low, high, unit) in _RANGES.items():
        value = getattr(p, field)
        if not (math.isfinite(value) and low <= value <= high):
            raise TaskError(f"{flags[field]} {value:g} is out of range; use a value in "
                            f"[{low:g}, {high:g}] {unit}".rstrip())


def check_timing(tr: float, te: float, where: str = "") -> None:
    """TR > 0 and 0 <= TE < TR, in seconds."""
    at = f" ({where})" if where else ""
    if not (math.isfinite(tr) and 0 < tr <= 100):
        raise TaskError(f"TR {tr:g} s{at} is out of range; use seconds in (0, 100]")
    if not (math.isfinite(te) and 0 <= te < tr):
        raise TaskError(f"TE {te:g} s{at} is out of range; use seconds in [0, TR)")


def grid_tag(combination: int) -> str:
    """``c07_A2_f12_R6_SNR20``-style name of a seed grid combination."""
    p = sim.grid_params(np.int32(combination))
    return (f"c{combination:02d}_A{float(p.amplitude_px):g}_f{float(p.rate_bpm):g}"
            f"_R{float(p.acceleration):g}_SNR{float(p.snr_db):g}")


def grid_sim_params(combination: int) -> SimParams:
    p = sim.grid_params(np.int32(combination))
    return SimParams(float(p.amplitude_px), float(p.rate_bpm), float(p.acceleration),
                     float(p.snr_db))


# -- inputs ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VolumeInput:
    """One input volume: its file, its path relative to the input root, TR/TE (seconds)."""

    path: Path
    relative: Path
    tr: float
    te: float
    index: int


def find_inputs(input_path: str | os.PathLike[str], *, tr: float | None = None,
                te: float | None = None, pattern: str | None = None) -> list[VolumeInput]:
    """The volumes of a NIfTI file or a BIDS/NIfTI folder, with TR/TE.

    TR/TE: the ``tr``/``te`` overrides when given, else the JSON sidecar
    (:mod:`kmri_jax.data.discovery` rules), else the seed's defaults (2.5 s, 0.03 s).
    """
    path = Path(input_path)
    if not path.exists():
        raise TaskError(f"--input {os.fspath(path)!r} does not exist; pass a .nii/.nii.gz file "
                        "or a BIDS folder")
    if path.is_dir():
        found = [(Path(v.path), Path(v.path).relative_to(path.resolve()), v.tr, v.te)
                 for v in discover_volumes(path, pattern=pattern)]
    else:
        if not volumes.nifti_suffix(path):
            raise TaskError(f"--input {os.fspath(path)!r} is not a .nii/.nii.gz file or a folder")
        t_r, t_e, _ = read_timing(path.resolve(), path.resolve().parent)
        found = [(path, Path(path.name), DEFAULT_TR_S if t_r is None else t_r,
                  DEFAULT_TE_S if t_e is None else t_e)]
    out = []
    for i, (p, rel, t_r, t_e) in enumerate(found):
        t_r = t_r if tr is None else tr
        t_e = t_e if te is None else te
        check_timing(t_r, t_e, os.fspath(p))
        out.append(VolumeInput(p, rel, float(t_r), float(t_e), i))
    return out


# -- the device part -------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _batched_corrupt(method: str, center_fraction: float):
    """``jit(vmap(corrupt))`` for one method; compiled once per batch shape."""

    def one(key, image, params):
        return sim.corrupt(key, image, params, method=method, center_fraction=center_fraction)

    return jax.jit(jax.vmap(one))


def slice_keys(seed: int, volume_index: int, slice_indices: Sequence[int],
               combination: int | None = None) -> jax.Array:
    """``[n]`` keys: ``fold_in(fold_in(key(seed), v), s)`` (then ``fold_in(., c)`` in grid mode)."""
    root = jax.random.fold_in(jax.random.key(seed), volume_index)

    def one(s):
        k = jax.random.fold_in(root, s)
        return k if combination is None else jax.random.fold_in(k, combination)

    return jax.vmap(one)(jnp.asarray(np.asarray(slice_indices), jnp.int32))


def corrupt_slices(keys: jax.Array, images: np.ndarray, params: SimParams, *, tr: float,
                   te: float, method: str = "breathmetrics", center_fraction: float = 0.08,
                   batch_size: int = 16) -> sim.Corrupted:
    """Corrupt ``images [n, ny, nx]`` float32 with one key each, in device batches.

    Returns:
      :class:`kmri_jax.sim.Corrupted` of numpy arrays with a leading ``[n]`` axis.
    """
    if method not in METHODS:
        raise TaskError(f"--method must be one of {', '.join(METHODS)}; got {method!r}")
    n = images.shape[0]
    batch = max(1, min(int(batch_size), n))
    scalar = sim.CorruptionParams(params.amplitude_px, params.rate_bpm, params.acceleration,
                                  params.snr_db, tr=tr, te=te)
    try:
        sim.check_image(images, batched=True)
        sim.check_params(scalar)
        if method == "breathmetrics":
            last_line = np.asarray([(images.shape[1] - 1) * tr + te])
            sim.validation.check_cycle_budget(last_line, np.asarray([params.rate_bpm]), 1024)
    except ValueError as e:
        raise TaskError(f"cannot simulate these slices: {e}") from None
    fn = _batched_corrupt(method, float(center_fraction))
    p = sim.CorruptionParams(*(jnp.full((batch,), v, jnp.float32) for v in scalar))
    parts = []
    for start in range(0, n, batch):
        idx = np.minimum(np.arange(start, start + batch), n - 1)
        out = fn(keys[idx], jnp.asarray(images[idx]), p)
        keep = min(batch, n - start)
        parts.append(jax.tree.map(lambda x: np.asarray(x)[:keep], out))
    return sim.Corrupted(*(np.concatenate(leaves) for leaves in zip(*parts)))


def magnitude(kspace: np.ndarray) -> np.ndarray:
    """``|ifft2(ifftshift(K))|`` over the last two axes (numpy, the seed's convention)."""
    k = np.fft.ifftshift(kspace, axes=(-2, -1))
    return np.abs(np.fft.ifft2(k, axes=(-2, -1))).astype(np.float32)


# -- files -----------------------------------------------------------------------------------


def _header_bytes(image: nib.Nifti1Image) -> np.ndarray:
    return np.frombuffer(image.header.binaryblock, dtype=np.uint8).copy()


def save_kspace(path: str | os.PathLike[str], corrupted: sim.Corrupted, *, image: nib.Nifti1Image,
                axis: int, slice_indices: np.ndarray, params: SimParams, tr: float, te: float,
                method: str, seed: int, volume_index: int, combination: int = -1) -> Path:
    """Write one ``.npz`` (atomically): the k-space and everything needed to undo or reuse it.

    Keys: ``kspace`` (corrupted) and ``clean`` ``[n, ny, nx] complex64``; ``mask [n, ny] bool``
    (acquired lines); ``trace``, ``displacement [n, ny] float32`` and ``line_times [ny]``
    (seconds); ``slice_index [n] int32``; ``axis``; ``volume_shape [3]``; ``affine [4, 4]``;
    ``nifti_header`` (the input's raw header bytes, uint8); scalars ``amplitude_px``,
    ``rate_bpm``, ``acceleration``, ``snr_db``, ``tr``, ``te``, ``seed``, ``volume_index``,
    ``combination`` (-1 outside grid mode) and the string ``method``.
    """
    ny = corrupted.kspace.shape[1]
    arrays = {
        "kspace": corrupted.kspace.astype(np.complex64),
        "clean": corrupted.clean.astype(np.complex64),
        "mask": corrupted.mask.astype(bool),
        "trace": corrupted.trace.astype(np.float32),
        "displacement": corrupted.displacement.astype(np.float32),
        "line_times": (np.arange(ny) * tr + te).astype(np.float32),
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


def save_trace_csv(path: str | os.PathLike[str], corrupted: sim.Corrupted,
                   slice_indices: np.ndarray, tr: float, te: float) -> Path:
    """CSV, one row per (slice, line): slice, line, time_s, trace, displacement_px, acquired."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["slice", "line", "time_s", "trace", "displacement_px", "acquired"])
    ny = corrupted.trace.shape[1]
    for i, s in enumerate(slice_indices):
        for ky in range(ny):
            w.writerow([int(s), ky, f"{ky * tr + te:.6g}", f"{corrupted.trace[i, ky]:.6g}",
                        f"{corrupted.displacement[i, ky]:.6g}", int(corrupted.mask[i, ky])])
    with volumes.atomic_output(path) as tmp:
        tmp.write_text(buf.getvalue())
    return Path(path)


# -- the whole command -----------------------------------------------------------------------


@dataclasses.dataclass
class SimulatedVolume:
    """What :func:`simulate` made for one (volume, parameter set)."""

    input: VolumeInput
    params: SimParams
    combination: int
    output: Path
    kspace_file: Path | None
    trace_file: Path | None


def _outputs(inputs: list[VolumeInput], output: Path, combos: list[int] | None
             ) -> Iterator[tuple[VolumeInput, int, Path]]:
    """(volume, combination or -1, output NIfTI path) for every job."""
    single = len(inputs) == 1 and combos is None and volumes.nifti_suffix(output)
    for v in inputs:
        if single:
            yield v, -1, output
            continue
        stem, suffix = nifti_stem(v.path), volumes.nifti_suffix(v.path) or ".nii.gz"
        folder = output / v.relative.parent
        for c in combos if combos is not None else [-1]:
            name = stem if c < 0 else f"{stem}_{grid_tag(c)}"
            yield v, c, folder / f"{name}{suffix}"


def _companion(path: Path, what: str, ext: str) -> Path:
    return path.with_name(f"{nifti_stem(path)}_{what}{ext}")


def simulate(input_path: str | os.PathLike[str], output: str | os.PathLike[str], *,
             params: SimParams = SimParams(), grid: bool = False, method: str = "breathmetrics",
             tr: float | None = None, te: float | None = None, seed: int = 0, axis: int = 0,
             batch_size: int = 16, center_fraction: float = 0.08, save_kspace_files: bool = False,
             save_trace: bool = False, preview: str | os.PathLike[str] | None = None,
             output_dtype: str = "input", pattern: str | None = None) -> list[SimulatedVolume]:
    """Corrupt every input volume and write the results (see ``kmri-simulate --help``).

    Output naming: one input file and one parameter set: ``output`` is the ``.nii[.gz]`` file.
    A folder input or ``grid=True``: ``output`` is a folder; each volume is written to
    ``output/<its path relative to the input folder>``, with ``_c<NN>_A.._f.._R.._SNR..``
    appended to the name per grid combination. Companions sit next to each NIfTI:
    ``<name>_kspace.npz`` (``save_kspace_files``) and ``<name>_trace.csv`` (``save_trace``).
    ``preview`` (PNG) shows the first volume's first job.

    Everything is checked (parameters, timing, every volume readable and 3-D) before the first
    file is written; each file is written atomically.
    """
    if not grid:
        check_params(params)
    if method not in METHODS:
        raise TaskError(f"--method must be one of {', '.join(METHODS)}; got {method!r}")
    if batch_size < 1:
        raise TaskError(f"--batch-size must be >= 1; got {batch_size}")
    if axis not in (0, 1, 2):
        raise TaskError(f"--axis must be 0, 1 or 2; got {axis}")
    if tr is not None or te is not None:
        check_timing(DEFAULT_TR_S if tr is None else tr, 0.0 if te is None else te)
    inputs = find_inputs(input_path, tr=tr, te=te, pattern=pattern)
    output = Path(output)
    combos = list(range(81)) if grid else None
    if len(inputs) == 1 and combos is None and not volumes.nifti_suffix(output):
        raise TaskError(f"--output {os.fspath(output)!r} must end in .nii or .nii.gz for a "
                        "single input file (or pass a folder input / --grid to write a folder)")
    if (len(inputs) > 1 or grid) and volumes.nifti_suffix(output):
        raise TaskError(f"--output {os.fspath(output)!r} must be a folder when the input is a "
                        "folder or --grid is given")
    if preview is not None and Path(preview).suffix.lower() != ".png":
        raise TaskError(f"--preview {os.fspath(preview)!r} must end in .png")
    # Read and check every volume before writing anything.
    loaded = {}
    for v in inputs:
        data, image = volumes.read_volume(v.path)
        slices = volumes.to_slices(data, axis)
        if min(slices.shape[1:]) < 2:
            raise TaskError(f"{v.path}: slice plane {slices.shape[1:]} along axis {axis} is too "
                            "small to simulate; check --axis")
        if method == "breathmetrics":
            last = (slices.shape[1] - 1) * v.tr + v.te
            rates = np.asarray([18.0 if grid else params.rate_bpm])
            try:
                sim.validation.check_cycle_budget(np.asarray([last]), rates, 1024)
            except ValueError as e:
                raise TaskError(f"{v.path}: {e} (lower TR or the rate)") from None
        loaded[v.index] = (slices, image)

    results = []
    shown = False
    for v, c, out_path in _outputs(inputs, output, combos):
        slices, image = loaded[v.index]
        p = params if c < 0 else grid_sim_params(c)
        idx = np.arange(slices.shape[0])
        keys = slice_keys(seed, v.index, idx, None if c < 0 else c)
        corrupted = corrupt_slices(keys, slices, p, tr=v.tr, te=v.te, method=method,
                                   center_fraction=center_fraction, batch_size=batch_size)
        corrupted_volume = volumes.from_slices(magnitude(corrupted.kspace), axis)
        volumes.write_volume_like(out_path, corrupted_volume, image, dtype=output_dtype)
        k_file = t_file = None
        if save_kspace_files:
            k_file = save_kspace(_companion(out_path, "kspace", ".npz"), corrupted, image=image,
                                 axis=axis, slice_indices=idx, params=p, tr=v.tr, te=v.te,
                                 method=method, seed=seed, volume_index=v.index, combination=c)
        if save_trace:
            t_file = save_trace_csv(_companion(out_path, "trace", ".csv"), corrupted, idx,
                                    v.tr, v.te)
        if preview is not None and not shown:
            from kmri_jax.tasks import figures

            figures.simulation_preview(preview, slices, corrupted, tr=v.tr, te=v.te, params=p,
                                       title=f"{v.relative} ({p.tag}, {method})")
            shown = True
        log.info("wrote %s", out_path)
        results.append(SimulatedVolume(v, p, c, out_path, k_file, t_file))
    if grid:
        _write_grid_table(output / "grid.json")
    return results


def _write_grid_table(path: Path) -> None:
    table = {grid_tag(c): dataclasses.asdict(grid_sim_params(c)) for c in range(81)}
    with volumes.atomic_output(path) as tmp:
        tmp.write_text(json.dumps(table, indent=1))
