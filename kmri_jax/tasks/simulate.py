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

import dataclasses
import functools
import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from kmri_jax import sim
from kmri_jax.data.discovery import DEFAULT_TR_S, nifti_stem
from kmri_jax.tasks import volumes
from kmri_jax.tasks.errors import TaskError
from kmri_jax.tasks.inputs import VolumeInput, check_timing, find_inputs
from kmri_jax.tasks.kspace_files import save_kspace, save_trace_csv
from kmri_jax.train.corruption import Coils, FieldMap, WeightMap

log = logging.getLogger(__name__)

__all__ = ["SimParams", "SimulatedVolume", "check_params", "corrupt_slices", "grid_tag",
           "simulate"]

METHODS = sim.breathing.METHODS
# Accepted ranges (beyond them the simulation is meaningless or the cycle budget breaks).
_RANGES = {
    "amplitude_px": (0.0, 100.0, "px"),
    "rate_bpm": (1.0, 60.0, "breaths/min"),
    "acceleration": (1.0, 32.0, ""),
    "snr_db": (-20.0, 100.0, "dB"),
    "amplitude_pe_px": (-100.0, 100.0, "px"),
    "rotation_deg": (-45.0, 45.0, "degrees"),
    "b0_hz": (-1000.0, 1000.0, "Hz"),
}


@dataclasses.dataclass(frozen=True)
class SimParams:
    """One corruption: breathing amplitude ``A`` (px), rate ``f`` (/min), acceleration ``R``,
    SNR (dB). TR/TE come from each volume (sidecar or override)."""

    amplitude_px: float = 5.0
    rate_bpm: float = 15.0
    acceleration: float = 4.0
    snr_db: float = 20.0
    amplitude_pe_px: float = 0.0
    rotation_deg: float = 0.0
    b0_hz: float = 0.0

    @property
    def tag(self) -> str:
        extra = (f"_Ape{self.amplitude_pe_px:g}" if self.amplitude_pe_px else "") + (
            f"_rot{self.rotation_deg:g}" if self.rotation_deg else "") + (
            f"_B0_{self.b0_hz:g}Hz" if self.b0_hz else "")
        return (f"A{self.amplitude_px:g}_f{self.rate_bpm:g}_R{self.acceleration:g}"
                f"_SNR{self.snr_db:g}{extra}")


def check_params(p: SimParams) -> None:
    """Raise :class:`TaskError` naming the option for a value out of its accepted range."""
    flags = {"amplitude_px": "--amplitude", "rate_bpm": "--rate", "acceleration":
             "--acceleration", "snr_db": "--snr", "amplitude_pe_px": "--amplitude-pe",
             "rotation_deg": "--rotation", "b0_hz": "--b0"}
    for field, (low, high, unit) in _RANGES.items():
        value = getattr(p, field)
        if not (math.isfinite(value) and low <= value <= high):
            raise TaskError(f"{flags[field]} {value:g} is out of range; use a value in "
                            f"[{low:g}, {high:g}] {unit}".rstrip())


def grid_tag(combination: int) -> str:
    """``c07_A2_f12_R6_SNR20``-style name of a seed grid combination."""
    p = sim.grid_params(np.int32(combination))
    return (f"c{combination:02d}_A{float(p.amplitude_px):g}_f{float(p.rate_bpm):g}"
            f"_R{float(p.acceleration):g}_SNR{float(p.snr_db):g}")


def grid_sim_params(combination: int, like: SimParams = SimParams()) -> SimParams:
    """The seed grid's (A, f, R, SNR) of ``combination``, with ``like``'s 2-D motion and B0."""
    p = sim.grid_params(np.int32(combination))
    return SimParams(float(p.amplitude_px), float(p.rate_bpm), float(p.acceleration),
                     float(p.snr_db), like.amplitude_pe_px, like.rotation_deg, like.b0_hz)


# -- the device part -------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _batched_corrupt(options: sim.CorruptOptions):
    """``jit(vmap(corrupt))`` with these options; compiled once per batch shape."""
    kwargs = options.kwargs()
    return jax.jit(jax.vmap(lambda key, image, params, arrays: sim.corrupt(
        key, image, params, *arrays, **kwargs), in_axes=(0, 0, 0, None)))


def corrupt_slices(keys: jax.Array, images: np.ndarray, params: SimParams, *, tr: float,
                   te: float, options: sim.CorruptOptions = sim.CorruptOptions(),
                   weight_map: WeightMap | None = None, field_map: FieldMap | None = None,
                   coils: Coils | None = None, batch_size: int = 16) -> sim.Corrupted:
    """Corrupt ``images [n, ny, nx]`` float32 with one key each, in device batches.

    ``weight_map``: a distance-weighted displacement; ``field_map``: a spatial B0 map;
    ``coils``: receive coils (all built for the slice shape).

    Returns:
      :class:`kmri_jax.sim.Corrupted` of numpy arrays with a leading ``[n]`` axis; with coils,
      ``kspace`` and ``clean`` are ``[n, C, ny, nx]``.
    """
    if options.method not in METHODS:
        raise TaskError(f"--method must be one of {', '.join(METHODS)}; got {options.method!r}")
    n = images.shape[0]
    batch = max(1, min(int(batch_size), n))
    scalar = sim.CorruptionParams(params.amplitude_px, params.rate_bpm, params.acceleration,
                                  params.snr_db, tr=tr, te=te,
                                  amplitude_pe_px=params.amplitude_pe_px,
                                  rotation_deg=params.rotation_deg, b0_hz=params.b0_hz)
    shape = images.shape[1:]
    arrays = (None if weight_map is None else weight_map.build(shape),
              None if field_map is None else field_map.build(shape),
              None if coils is None else coils.maps(shape),
              None if coils is None else coils.covariance())
    try:
        sim.check_image(images, batched=True)
        sim.check_params(scalar)
        sim.validation.check_motion_options(images.shape, params=scalar,
                                            motion_states=options.motion_states,
                                            weight_map=arrays[0])
        sim.validation.check_field_and_coils(
            images.shape, motion_states=options.motion_states, field_map=arrays[1],
            coil_maps=arrays[2], noise_covariance=arrays[3],
            readout_bandwidth_hz_per_px=options.readout_bandwidth_hz_per_px)
        if options.method == "breathmetrics":
            last_line = np.asarray([sim.timing.scan_duration(
                images.shape[1], tr=tr, te=te, echo_train_length=options.echo_train_length,
                echo_spacing=options.echo_spacing)])
            sim.validation.check_cycle_budget(last_line, np.asarray([params.rate_bpm]),
                                              options.max_cycles)
    except ValueError as e:
        raise TaskError(f"cannot simulate these slices: {e}") from None
    fn = _batched_corrupt(options)
    p = sim.CorruptionParams(**{
        field: v if (field in sim.MotionGrid._fields and v == 0)  # static: the seed path
        else jnp.full((batch,), v, jnp.float32) for field, v in zip(scalar._fields, scalar)})
    parts = []
    for start in range(0, n, batch):
        idx = np.minimum(np.arange(start, start + batch), n - 1)
        out = fn(keys[idx], jnp.asarray(images[idx]), p, arrays)
        keep = min(batch, n - start)
        parts.append(jax.tree.map(lambda x: np.asarray(x)[:keep], out))
    return sim.Corrupted(*(None if leaves[0] is None else np.concatenate(leaves)
                           for leaves in zip(*parts)))


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
             output_dtype: str = "input", pattern: str | None = None,
             acquisition: sim.CorruptOptions | None = None,
             weight_map: WeightMap | None = None, field_map: FieldMap | None = None,
             coils: Coils | None = None) -> list[SimulatedVolume]:
    """Corrupt every input volume and write the results (see ``kmri-simulate --help``).

    Output naming: one input file and one parameter set: ``output`` is the ``.nii[.gz]`` file.
    A folder input or ``grid=True``: ``output`` is a folder; each volume is written to
    ``output/<its path relative to the input folder>``, with ``_c<NN>_A.._f.._R.._SNR..``
    appended to the name per grid combination. Companions sit next to each NIfTI:
    ``<name>_kspace.npz`` (``save_kspace_files``) and ``<name>_trace.csv`` (``save_trace``).
    ``preview`` (PNG) shows the first volume's first job. ``acquisition``: the simulator's
    timing and motion-state options (its ``method``/``center_fraction`` are replaced by the
    arguments of those names); ``weight_map``: a distance-weighted displacement;
    ``field_map``: a spatial B0 map (off-resonance peak ``params.b0_hz``); ``coils``: receive
    coils. With coils the NIfTI holds the root-sum-of-squares image of the corrupted coil
    k-space, and the k-space file the adjoint-SENSE combined k-space beside the coil data
    (:func:`~kmri_jax.tasks.kspace_files.save_kspace`).

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
    options = dataclasses.replace(acquisition or sim.CorruptOptions(), method=method,
                                  center_fraction=center_fraction)
    try:
        sim.timing.check_echo_train(options.ordering, options.echo_train_length,
                                    options.echo_spacing)
    except ValueError as e:
        raise TaskError(f"--{e.args[0].replace('_', '-')}") from None
    output = Path(output)
    combos = list(range(sim.num_combinations())) if grid else None
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
            last = sim.timing.scan_duration(slices.shape[1], tr=v.tr, te=v.te,
                                            echo_train_length=options.echo_train_length,
                                            echo_spacing=options.echo_spacing)
            rates = np.asarray([18.0 if grid else params.rate_bpm])
            try:
                sim.validation.check_cycle_budget(np.asarray([last]), rates, options.max_cycles)
            except ValueError as e:
                raise TaskError(f"{v.path}: {e} (lower TR or the rate)") from None
        try:
            scalar = sim.CorruptionParams(1.0, 15.0, 1.0, 20.0,
                                          rotation_deg=params.rotation_deg)
            shape = slices.shape[1:]
            sim.validation.check_motion_options(
                slices.shape, params=scalar, motion_states=options.motion_states,
                weight_map=None if weight_map is None else weight_map.build(shape))
            sim.validation.check_field_and_coils(
                slices.shape, motion_states=options.motion_states,
                field_map=None if field_map is None else field_map.build(shape),
                coil_maps=None if coils is None else coils.maps(shape),
                noise_covariance=None if coils is None else coils.covariance(),
                readout_bandwidth_hz_per_px=options.readout_bandwidth_hz_per_px)
        except ValueError as e:
            message = e.args[0]
            for api, flag in (("motion_states=K", "--motion-states K"),
                              ("field_map=None", "no --field-map"),
                              ("a spatial field_map", "a spatial field map (--field-map)")):
                message = message.replace(api, flag)
            raise TaskError(f"{v.path}: {message}") from None
        loaded[v.index] = (slices, image)

    results = []
    shown = False
    for v, c, out_path in _outputs(inputs, output, combos):
        slices, image = loaded[v.index]
        p = params if c < 0 else grid_sim_params(c, params)
        idx = np.arange(slices.shape[0])
        keys = sim.sample_keys(jax.random.key(seed), v.index, idx, None if c < 0 else c)
        try:
            corrupted = corrupt_slices(keys, slices, p, tr=v.tr, te=v.te, options=options,
                                       weight_map=weight_map, field_map=field_map, coils=coils,
                                       batch_size=batch_size)
        except TaskError as e:
            raise TaskError(f"{v.path}: {e}") from None
        maps = None if coils is None else coils.maps(slices.shape[1:])
        if maps is None:
            magnitude = np.asarray(sim.magnitude_image(corrupted.kspace))
        else:
            magnitude = np.asarray(sim.coil_combine(jnp.asarray(corrupted.kspace)))  # RSS
        corrupted_volume = volumes.from_slices(magnitude, axis)
        volumes.write_volume_like(out_path, corrupted_volume, image, dtype=output_dtype)
        k_file = t_file = None
        if save_kspace_files:
            k_file = save_kspace(_companion(out_path, "kspace", ".npz"), corrupted, image=image,
                                 axis=axis, slice_indices=idx, params=p, tr=v.tr, te=v.te,
                                 method=method, seed=seed, volume_index=v.index, combination=c,
                                 coil_maps=maps,
                                 noise_covariance=None if coils is None else coils.covariance(),
                                 field_map=None if field_map is None
                                 else field_map.build(slices.shape[1:]),
                                 readout_bandwidth_hz_per_px=options.readout_bandwidth_hz_per_px)
        if save_trace:
            t_file = save_trace_csv(_companion(out_path, "trace", ".csv"), corrupted, idx,
                                    v.tr, v.te)
        if preview is not None and not shown:
            from kmri_jax.tasks import figures

            view = corrupted if maps is None else jax.tree.map(
                np.asarray, sim.coils.combined_view(corrupted, maps))
            receive = "" if coils is None else f", {coils.n_coils} coils (adjoint-SENSE view)"
            figures.simulation_preview(preview, slices, view, tr=v.tr, te=v.te, params=p,
                                       title=f"{v.relative} ({p.tag}, {method}{receive})")
            shown = True
        log.info("wrote %s", out_path)
        results.append(SimulatedVolume(v, p, c, out_path, k_file, t_file))
    if grid:
        _write_grid_table(output / "grid.json")
    return results


def _write_grid_table(path: Path) -> None:
    table = {grid_tag(c): dataclasses.asdict(grid_sim_params(c))
             for c in range(sim.num_combinations())}
    with volumes.atomic_output(path) as tmp:
        tmp.write_text(json.dumps(table, indent=1))
