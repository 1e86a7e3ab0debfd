"""Run a trained U-Net on a volume: the library side of ``kmri-infer``.

Two sources of corrupted k-space:

* ``input`` (a clean NIfTI volume): each slice is corrupted exactly as ``kmri-simulate`` does
  (same keys, :func:`kmri_jax.sim.sample_keys` with volume index 0), the network
  corrects it, and the clean volume is the reference for metrics.
* ``kspace`` (a ``kmri-simulate --save-kspace`` ``.npz``): the saved corrupted k-space is
  corrected; when the file also holds the clean k-space it is the reference.

Normalisation (the network's input scale ``s``, its output multiplied back by ``s``): networks
trained with ``model.input_scale = "corrupted"`` (the default) use ``s = max|K_corrupted| +
1e-8``, which real data has too. Checkpoints trained the seed's way (``"clean"``:
``s = max|K_clean| + 1e-8``) get the clean scale for a simulated corruption; for a k-space
file ``"auto"`` (default) uses the corrupted one (close to the clean value: the k-space maximum
is the always-acquired centre, whose magnitude motion does not change), i.e. a file is treated
like real data. ``normalize`` forces either.

Slice size: the model is fully convolutional, but it only learned the k-space statistics of
its training size ``(ny, nx)`` (``config.data``). A slice of another size is an error by
default; ``fit="pad"`` applies the training preprocessing's rule instead (centre-crop larger
dimensions, zero-pad smaller ones at the bottom/right), with a warning, and writes the
corrected valid region back in place: rows/columns that a crop removed are 0 in the output.
A k-space file must match the training size (fitting would change its corruption).

The output volume (corrected magnitude, in the input's intensity units) keeps the input's
shape, affine and header (data type as :mod:`kmri_jax.tasks.volumes` describes).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
from pathlib import Path

import jax
import numpy as np

from kmri_jax import sim
from kmri_jax.data.preprocess import crop_or_pad
from kmri_jax.tasks import inputs, kspace_files, model_io, simulate, volumes
from kmri_jax.tasks.errors import TaskError
from kmri_jax.train import metrics as tmetrics
from kmri_jax.train.corruption import Coils

log = logging.getLogger(__name__)

__all__ = ["InferenceResult", "infer"]

FITS = ("error", "pad")
NORMALIZE = ("auto", "clean", "corrupted")
_METRICS = ("ssim", "psnr", "nrmse")


@dataclasses.dataclass
class InferenceResult:
    """Per-slice results of :func:`infer` (numpy)."""

    output: Path
    corrected: np.ndarray            # [n, ny, nx] magnitude on the model grid
    corrupted: np.ndarray            # [n, ny, nx] magnitude of the corrupted k-space
    truth: np.ndarray | None         # [n, ny, nx] clean magnitude, when known
    metrics: dict[str, np.ndarray]   # input_/output_ ssim, psnr, nrmse [n] (empty without truth)
    slice_index: np.ndarray
    figure: Path | None = None


def _fit(slices: np.ndarray, shape: tuple[int, int], fit: str, what: str
         ) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """Slices on the model grid, their valid (rows, cols) and the (row, col) crop offsets."""
    h, w = slices.shape[1:]
    ny, nx = shape
    if (h, w) == (ny, nx):
        return slices, (h, w), (0, 0)
    if fit == "error":
        raise TaskError(
            f"{what}: slices are {h}x{w} but the model was trained on {ny}x{nx}; pass --fit pad "
            "to centre-crop/zero-pad them to the training size, or use a checkpoint trained "
            "at this size")
    log.warning("%s: slices are %dx%d, the model's training size is %dx%d: %s", what, h, w, ny,
                nx, "centre-cropping larger and zero-padding smaller dimensions; cropped "
                "rows/columns are 0 in the output")
    fitted, valid = crop_or_pad(slices, ny, nx)
    offsets = ((h - ny) // 2 if h > ny else 0, (w - nx) // 2 if w > nx else 0)
    return fitted, valid, offsets


def _run_network(model: model_io.LoadedModel, kspace: np.ndarray, mask: np.ndarray,
                 clean: np.ndarray | None, scale: np.ndarray, valid: tuple[int, int],
                 batch_size: int, coil_kspace: np.ndarray | None = None
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Corrected k-space ``[n, ny, nx] complex64`` and per-slice metrics (when ``clean``);
    ``coil_kspace [n, C, ny, nx]`` for a network that reads coils."""
    predict = model.predictor()
    metric_fn = jax.jit(tmetrics.image_metrics)
    n = kspace.shape[0]
    b = max(1, min(batch_size, n))
    out = np.empty_like(kspace, dtype=np.complex64)
    found: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, b):
        idx = np.minimum(np.arange(start, start + b), n - 1)
        keep = min(b, n - start)
        s = scale[idx][:, None, None, None]
        x = np.asarray(sim.to_channels(kspace[idx])) / s
        y = np.asarray(predict(kspace[idx], mask[idx], scale[idx],
                               None if coil_kspace is None else coil_kspace[idx]))
        out[start:start + keep] = (np.asarray(sim.from_channels(y)) * s[:, 0])[:keep]
        if clean is not None:
            target = np.asarray(sim.to_channels(clean[idx])) / s
            for prefix, pred in (("output_", y), ("input_", x)):
                m = metric_fn(pred, target, np.asarray(valid, np.int32))
                for k in _METRICS:
                    found.setdefault(prefix + k, []).append(np.asarray(m[k])[:keep])
    return out, {k: np.concatenate(v) for k, v in found.items()}


def _write_metrics_csv(path: Path, slice_index: np.ndarray, m: dict[str, np.ndarray]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    cols = [f"{kind}_{k}" for k in _METRICS for kind in ("input", "output")]
    w.writerow(["slice", *cols])
    for i, s in enumerate(slice_index):
        w.writerow([int(s), *(f"{m[c][i]:.6g}" for c in cols)])
    with volumes.atomic_output(path) as tmp:
        tmp.write_text(buf.getvalue())


def infer(checkpoint: str | os.PathLike[str], output: str | os.PathLike[str], *,
          input_path: str | os.PathLike[str] | None = None,
          kspace_path: str | os.PathLike[str] | None = None,
          params: simulate.SimParams = simulate.SimParams(), method: str | None = None,
          tr: float | None = None, te: float | None = None, seed: int = 0,
          step: int | None = None, axis: int | None = None, fit: str = "error",
          normalize: str = "auto", batch_size: int = 8,
          figure: str | os.PathLike[str] | None = None,
          metrics_csv: str | os.PathLike[str] | None = None,
          output_dtype: str = "input") -> InferenceResult:
    """Correct one volume with a checkpoint (see the module doc and ``kmri-infer --help``).

    Everything is checked (checkpoint, volume, sizes, parameters) before any file is written.
    """
    if (input_path is None) == (kspace_path is None):
        raise TaskError("pass exactly one of --input (clean NIfTI, corrupted here) and --kspace "
                        "(a kmri-simulate --save-kspace .npz)")
    if fit not in FITS:
        raise TaskError(f"--fit must be one of {FITS}; got {fit!r}")
    if normalize not in NORMALIZE:
        raise TaskError(f"--normalize must be one of {NORMALIZE}; got {normalize!r}")
    if batch_size < 1:
        raise TaskError(f"--batch-size must be >= 1; got {batch_size}")
    output = volumes.check_output_path(output)
    if figure is not None and Path(figure).suffix.lower() != ".png":
        raise TaskError(f"--figure {os.fspath(figure)!r} must end in .png")
    if input_path is not None:
        simulate.check_params(params)
    model = model_io.load_model(checkpoint, step=step)
    shape = model.image_shape
    cfg = model.config

    if input_path is not None:
        found = inputs.find_inputs(input_path, tr=tr, te=te)
        if len(found) != 1:
            raise TaskError(f"--input {os.fspath(input_path)!r} holds {len(found)} volumes; "
                            "kmri-infer takes one NIfTI file")
        v = found[0]
        data, image = volumes.read_volume(v.path)
        axis = int(cfg.data.axis) if axis is None else axis
        slices = volumes.to_slices(data, axis)
        fitted, valid, offsets = _fit(slices, shape, fit, os.fspath(v.path))
        slice_index = np.arange(slices.shape[0])
        keys = sim.sample_keys(jax.random.key(seed), 0, slice_index)
        coils = Coils(int(cfg.corruption.coils), float(cfg.corruption.coil_correlation)) \
            if model.reads_coils else None
        options = sim.CorruptOptions(
            method=method or str(cfg.corruption.method),
            center_fraction=float(cfg.corruption.center_fraction),
            motion_states=int(cfg.corruption.motion_states) if coils else 0,
            noise_rng=str(cfg.corruption.noise_rng))
        corrupted = simulate.corrupt_slices(keys, fitted, params, tr=v.tr, te=v.te,
                                            options=options, coils=coils,
                                            batch_size=batch_size)
        if coils is not None:  # the combined view, coils beside it, as the model was trained
            corrupted = jax.tree.map(np.asarray, sim.coils.combined_view(
                corrupted, coils.maps(shape)))
        k_bad, k_clean, mask = corrupted.kspace, corrupted.clean, corrupted.mask
        coil_kspace = corrupted.coil_kspace
        volume_shape = slices.shape
        source = f"{v.relative}, simulated {params.tag}"
    else:
        kdata = kspace_files.load_kspace(kspace_path)
        k_bad = kdata["kspace"].astype(np.complex64)
        if tuple(k_bad.shape[1:]) != shape:
            raise TaskError(f"{os.fspath(kspace_path)}: k-space slices are "
                            f"{k_bad.shape[1]}x{k_bad.shape[2]} but the model was trained on "
                            f"{shape[0]}x{shape[1]}; simulate at the training size (k-space "
                            "cannot be padded without changing its corruption)")
        k_clean = kdata["clean"].astype(np.complex64) if "clean" in kdata else None
        coil_kspace = kdata.get("coil_kspace")
        if model.reads_coils and (coil_kspace is None or coil_kspace.shape[1]
                                  != int(cfg.corruption.coils)):
            raise TaskError(f"{os.fspath(kspace_path)}: this model reads "
                            f"{int(cfg.corruption.coils)} coils (model.input='coils'); write "
                            f"the file with kmri-simulate --coils {int(cfg.corruption.coils)} "
                            "--motion-states K --save-kspace")
        if not model.reads_coils:
            coil_kspace = None
        mask = (kdata["mask"].astype(bool) if "mask" in kdata
                else np.any(np.abs(k_bad) > 0, axis=-1))  # lines not acquired are zero
        image = kspace_files.image_from_kspace_file(kdata)
        axis = int(kdata["axis"])
        slice_index = kdata["slice_index"].astype(np.int64)
        moved = np.moveaxis(np.zeros(image.shape, np.float32), axis, 0)
        volume_shape = moved.shape
        if slice_index.size and (slice_index.min() < 0 or slice_index.max() >= volume_shape[0]
                                 or volume_shape[1:] != k_bad.shape[1:]):
            raise TaskError(f"{os.fspath(kspace_path)}: slice indices or sizes do not fit the "
                            "stored volume shape; the file is inconsistent")
        valid, offsets = shape, (0, 0)
        source = f"{Path(kspace_path).name}"
    if normalize == "clean" and k_clean is None:
        raise TaskError("--normalize clean needs the clean k-space, which the k-space file does "
                        "not hold; use --normalize corrupted")
    trained_clean = str(cfg.model.input_scale) == "clean"
    use_clean = normalize == "clean" or (normalize == "auto" and input_path is not None
                                         and trained_clean)
    scale = model_io.scale_of(k_clean if use_clean else k_bad)

    k_fixed, found = _run_network(model, k_bad, mask, k_clean, scale, valid, batch_size,
                                  coil_kspace)
    corrected = np.asarray(sim.magnitude_image(k_fixed))
    bad_img = np.asarray(sim.magnitude_image(k_bad))
    truth = np.asarray(sim.magnitude_image(k_clean)) if k_clean is not None else None

    # Back into the volume: the valid region of each slice at its place.
    out_slices = np.zeros(volume_shape, np.float32)
    (r0, c0), (vr, vc) = offsets, valid
    out_slices[slice_index, r0:r0 + vr, c0:c0 + vc] = corrected[:, :vr, :vc]
    volumes.write_volume_like(output, volumes.from_slices(out_slices, axis), image,
                              dtype=output_dtype)
    if metrics_csv is not None and found:
        _write_metrics_csv(Path(metrics_csv), slice_index, found)
    result = InferenceResult(output, corrected, bad_img, truth, found, slice_index)
    if figure is not None:
        result.figure = _figure(figure, result, k_bad, k_fixed, k_clean, valid, axis, source)
    return result


def _figure(path, r: InferenceResult, k_bad, k_fixed, k_clean, valid, axis, source) -> Path:
    from kmri_jax.tasks import figures

    i = r.corrected.shape[0] // 2
    vr, vc = valid
    col = vc // 2
    crop = lambda a: None if a is None else a[:, :vr, :vc]  # noqa: E731
    stacks = {"corrupted": crop(r.corrupted), "corrected": crop(r.corrected),
              "ground truth": crop(r.truth)}
    per_slice = {}
    if r.metrics:
        per_slice = {"corrupted": {k: float(r.metrics[f"input_{k}"][i]) for k in _METRICS},
                     "corrected": {k: float(r.metrics[f"output_{k}"][i]) for k in _METRICS}}
    label = (f"axial reformat (column {col})" if axis == 0 else f"reformat across slices "
             f"(column {col})")
    return figures.inference_figure(
        path, images={k: None if v is None else v[i] for k, v in stacks.items()},
        kspaces={"corrupted": k_bad[i], "corrected": k_fixed[i],
                 "ground truth": None if k_clean is None else k_clean[i]},
        reformats={k: None if v is None else v[:, :, col] for k, v in stacks.items()},
        slice_index=int(r.slice_index[i]), reformat_label=label, metrics=per_slice,
        title=f"kmri-infer: {source}")


def summary_lines(result: InferenceResult) -> list[str]:
    """Mean metrics over slices (NaN slices, e.g. empty ones, skipped) as printable lines."""
    if not result.metrics:
        return ["no clean reference: metrics not computed"]
    lines = []
    for k in _METRICS:
        a, b = result.metrics[f"input_{k}"], result.metrics[f"output_{k}"]
        ok = np.isfinite(a) & np.isfinite(b)
        lines.append(f"{k.upper():5s} corrupted {np.mean(a[ok]):.4f} -> corrected "
                     f"{np.mean(b[ok]):.4f} (mean over {int(ok.sum())} slices)")
    return lines
