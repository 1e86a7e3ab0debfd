"""Evaluate a checkpoint on a split over the corruption grid: the library side of
``kmri-evaluate``.

What is computed. Every slice of the split is corrupted with each requested grid combination
(A, f, R, SNR of :func:`kmri_jax.sim.grid_params`), exactly as the training loop's validation
does it: the compiled :func:`kmri_jax.train.step.make_eval_step`, fixed corruption keyed by
``fold_in(fold_in(fold_in(key(config.eval.seed), volume), slice), combination)`` with the
checkpoint's ``config.eval.seed``, breathing method and centre fraction, the seed's
normalisation, and SSIM/PSNR/NRMSE of the corrupted input and the network output against the
clean image (magnitude images divided by the truth's maximum, valid region, ``data_range=1``).
So on the same split and combinations the means equal the training loop's ``val_*`` numbers.

Outputs (all in ``output``; written to a staging folder first and moved in only when every
file is complete, so a failed run leaves none of them):

- ``per_sample.csv``: one row per (slice, combination): subject, volume, slice, combination,
  A, f, R, SNR, loss, input_/output_ ssim, psnr, nrmse.
- ``per_subject.csv``: means per (subject, A, f, R, SNR) with the number of slices ``n``.
- ``summary.csv`` / ``summary.md``: mean ± sd of input, output and gain (output - input, per
  sample) overall and per value of each parameter; sd is numpy's (population, ``ddof=0``), as
  in the plots. For NRMSE a negative gain is an improvement.
- ``metrics_vs_params.png``: :func:`kmri_jax.tasks.figures.metric_plots`.
- ``severity.png``: one slice (the middle slice of the split's first volume) at A = 2, 5, 8 px
  with f = 15/min, R = 4, SNR = 20 dB (grid combinations 13, 40, 67; same keys as above):
  corrupted / corrected / ground truth (:func:`kmri_jax.tasks.figures.severity_figure`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import jax
import numpy as np

from kmri_jax import data as kdata
from kmri_jax import sim
from kmri_jax.tasks import figures, model_io
from kmri_jax.tasks.errors import TaskError
from kmri_jax.train import evaluation, sharding
from kmri_jax.train.metrics import magnitude_image
from kmri_jax.train.step import compiled_eval

log = logging.getLogger(__name__)

__all__ = ["EvaluationResult", "OUTPUT_FILES", "SEVERITY_COMBINATIONS", "evaluate",
           "summary_lines"]

METRICS = ("ssim", "psnr", "nrmse")
PARAMS = ("A", "f", "R", "SNR")
SPLITS = ("train", "val", "test")
# A = 2, 5, 8 px at f = 15/min, R = 4, SNR = 20 dB: c = 27 i_A + 9 i_f + 3 i_R + i_SNR.
SEVERITY_COMBINATIONS = (13, 40, 67)
OUTPUT_FILES = ("per_sample.csv", "per_subject.csv", "summary.csv", "summary.md",
                "metrics_vs_params.png", "severity.png")
SAMPLE_COLUMNS = ("subject", "volume", "slice", "combination", *PARAMS, "loss",
                  *(f"{k}_{m}" for k in ("input", "output") for m in METRICS))


@dataclasses.dataclass
class EvaluationResult:
    """What :func:`evaluate` computed and wrote."""

    output: Path
    files: list[Path]
    per_sample: dict[str, np.ndarray]  # columns of per_sample.csv, [N] each
    overall: dict[str, dict[str, float]]  # metric -> input/output/gain mean and sd
    step: int
    split: str
    n_slices: int
    combinations: list[int]


# -- inputs ------------------------------------------------------------------------------------

def _open_store(model: model_io.LoadedModel, store: str | os.PathLike[str] | None,
                data_root: str | os.PathLike[str] | None, output: Path,
                splits: str | os.PathLike[str] | None) -> kdata.SliceStore:
    """The slice store to evaluate on: ``store`` as is, or one prepared from ``data_root``
    with the checkpoint's preprocessing and split rule (at ``store``, default
    ``<output>/store``)."""
    config = model.config
    if data_root:
        if not Path(data_root).exists():
            raise TaskError(f"--data-root {os.fspath(data_root)!r} does not exist")
        store_dir = Path(store) if store else output / "store"
        path = kdata.ensure_store(
            data_root, store_dir, options=kdata.PreprocessOptions.from_mapping(config.data),
            splits=splits or config.data.splits_file or None, split_seed=config.data.split_seed,
            pattern=config.data.pattern or None, strict=config.data.strict)
        opened = kdata.SliceStore(path)
    elif store:
        opened = kdata.SliceStore(store)
    else:
        raise TaskError("give --store (a prepared slice store) or --data-root (a dataset to "
                        "prepare with the checkpoint's preprocessing)")
    if opened.image_shape != model.image_shape:
        raise TaskError(
            f"the store {os.fspath(opened.path)!r} holds {opened.image_shape[0]}x"
            f"{opened.image_shape[1]} slices but the checkpoint was trained on "
            f"{model.image_shape[0]}x{model.image_shape[1]}; prepare the store with "
            f"--ny {model.image_shape[0]} --nx {model.image_shape[1]} (or pass --data-root)")
    return opened


def _combinations(spec: str) -> list[int]:
    try:
        return sim.parse_combinations(spec)
    except ValueError:
        raise TaskError(f"--combinations {spec!r}: use 'all' (81), 'orthogonal' (the balanced "
                        "9) or comma-separated grid indices in 0..80") from None


# -- running the compiled steps ----------------------------------------------------------------

def _with_identity(eval_step):
    """The eval step, its per-sample rows also carrying ``volume`` and ``slice``."""

    def step(state, batch):
        out = dict(eval_step(state, batch))
        out["volume"] = batch["volume"]
        out["slice"] = batch["slice"]
        return out

    return step


def _records_batches(store: kdata.SliceStore, rows: Sequence[int], combos: Sequence[int],
                     batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Batches (padded with weight 0 to ``batch_size``) of the records (row_i, combo_i)."""
    rows, combos = np.asarray(rows, np.int64), np.asarray(combos, np.int32)
    for start in range(0, len(rows), batch_size):
        pos = np.minimum(np.arange(start, start + batch_size), len(rows) - 1)
        batch = store.read(rows[pos])
        batch["combination"] = combos[pos]
        batch["weight"] = (np.arange(start, start + batch_size) < len(rows)).astype(np.float32)
        yield batch


def _severity_panels(store, state, eval_step, predict, split_rows: np.ndarray,
                     batch_size: int, mesh) -> tuple[list[dict[str, object]], str]:
    """Images and SSIMs of the severity figure (see the module doc), and which slice."""
    volumes = store.index["volume"][split_rows]
    first = split_rows[volumes == volumes[0]]
    row = int(first[len(first) // 2])
    n = len(SEVERITY_COMBINATIONS)
    parts: list[dict[str, np.ndarray]] = []
    for batch in _records_batches(store, [row] * n, SEVERITY_COMBINATIONS, batch_size):
        sharded = sharding.shard_batch(batch, mesh)
        out = {k: evaluation.to_host(v) for k, v in predict(state, sharded).items()}
        out.update({k: evaluation.to_host(v) for k, v in eval_step(state, sharded).items()})
        parts.append(out)
    merged = {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}
    rows_valid, cols_valid = (int(store.index[row][k]) for k in ("valid_rows", "valid_cols"))
    grid = sim.grid_table()
    vol, sl = int(store.index[row]["volume"]), int(store.index[row]["slice"])
    panels = []
    for i, c in enumerate(SEVERITY_COMBINATIONS):
        images = {k: np.asarray(magnitude_image(merged[k][i]))[:rows_valid, :cols_valid]
                  for k in ("input", "output", "target")}
        scale = float(images["target"].max()) or 1.0
        panels.append({
            "label": f"A = {grid['A'][c]:g} px (volume {vol}, slice {sl})",
            "corrupted": images["input"] / scale, "corrected": images["output"] / scale,
            "truth": images["target"] / scale,
            "input_ssim": float(merged["input_ssim"][i]), "output_ssim": float(merged["ssim"][i]),
        })
    return panels, f"volume {vol} ({store.volumes[vol]['subject']}), slice {sl}"


# -- tables ------------------------------------------------------------------------------------

def _fmt(v) -> str:
    if isinstance(v, (str, np.str_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.7g}"


def _csv_text(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_fmt(v) for v in r])
    return buf.getvalue()


def _per_sample_table(store: kdata.SliceStore, raw: Mapping[str, np.ndarray]
                      ) -> dict[str, np.ndarray]:
    grid = sim.grid_table()
    combos = raw["combination"].astype(np.int64)
    vol = raw["volume"].astype(np.int64)
    subjects = np.asarray([store.volumes[v]["subject"] for v in vol], dtype=object)
    table = {"subject": subjects, "volume": vol, "slice": raw["slice"].astype(np.int64),
             "combination": combos}
    table.update({p: grid[p][combos].astype(np.float64) for p in PARAMS})
    table["loss"] = raw["loss"].astype(np.float64)
    for m in METRICS:
        table[f"input_{m}"] = raw[f"input_{m}"].astype(np.float64)
        table[f"output_{m}"] = raw[m].astype(np.float64)
    return table


def _stats(values: np.ndarray) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def _metric_stats(t: Mapping[str, np.ndarray], sel: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for m in METRICS:
        a, b = t[f"input_{m}"][sel], t[f"output_{m}"][sel]
        out[m] = dict(zip(("input_mean", "input_sd"), _stats(a)))
        out[m].update(zip(("output_mean", "output_sd"), _stats(b)))
        out[m].update(zip(("gain_mean", "gain_sd"), _stats(b - a)))
    return out


def _groups(t: Mapping[str, np.ndarray]) -> list[tuple[str, str, np.ndarray]]:
    """(parameter, value, selection): overall first, then each value of A, f, R, SNR."""
    n = len(t["combination"])
    groups = [("all", "", np.ones(n, bool))]
    for p in PARAMS:
        for v in np.unique(t[p]):
            groups.append((p, f"{v:g}", t[p] == v))
    return groups


def _summary_csv(t: Mapping[str, np.ndarray]) -> str:
    cols = ("parameter", "value", "n", "metric", "input_mean", "input_sd", "output_mean",
            "output_sd", "gain_mean", "gain_sd")
    rows = []
    for p, v, sel in _groups(t):
        for m, s in _metric_stats(t, sel).items():
            rows.append((p, v, int(sel.sum()), m, *(s[c] for c in cols[4:])))
    return _csv_text(cols, rows)


def _per_subject_csv(t: Mapping[str, np.ndarray]) -> str:
    keys = list(zip(t["subject"], *(t[p] for p in PARAMS)))
    order: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        order.setdefault(k, []).append(i)
    value_cols = ["loss"] + [f"{k}_{m}" for k in ("input", "output") for m in METRICS]
    rows = []
    for k in sorted(order, key=lambda k: (str(k[0]), *k[1:])):
        idx = np.asarray(order[k])
        rows.append((*k, len(idx), *(float(np.mean(t[c][idx])) for c in value_cols)))
    return _csv_text(("subject", *PARAMS, "n", *value_cols), rows)


def _pm(mean: float, sd: float, digits: int) -> str:
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


_DIGITS = {"ssim": 4, "psnr": 2, "nrmse": 4}


def _summary_md(t: Mapping[str, np.ndarray], *, header: Sequence[str]) -> str:
    lines = ["# kmri-evaluate summary", "", *(f"- {h}" for h in header), "",
             "Mean ± sd over samples (slice x combination); gain = output - input per sample "
             "(for NRMSE, negative is better).", "", "## Overall", "",
             "| metric | corrupted input | network output | gain |", "|---|---|---|---|"]
    overall = _metric_stats(t, np.ones(len(t["combination"]), bool))
    for m, s in overall.items():
        d = _DIGITS[m]
        lines.append(f"| {m.upper()} | {_pm(s['input_mean'], s['input_sd'], d)} | "
                     f"{_pm(s['output_mean'], s['output_sd'], d)} | "
                     f"{_pm(s['gain_mean'], s['gain_sd'], d)} |")
    lines.append(f"| loss | | {_pm(*_stats(t['loss']), 5)} | |")
    for p in PARAMS:
        lines += ["", f"## By {p}", "",
                  f"| {p} | n | " + " | ".join(f"{m.upper()} in | {m.upper()} out | "
                                              f"{m.upper()} gain" for m in METRICS) + " |",
                  "|---" * (2 + 3 * len(METRICS)) + "|"]
        for _, v, sel in (g for g in _groups(t) if g[0] == p):
            s = _metric_stats(t, sel)
            cells = []
            for m in METRICS:
                d = _DIGITS[m]
                cells += [_pm(s[m]["input_mean"], s[m]["input_sd"], d),
                          _pm(s[m]["output_mean"], s[m]["output_sd"], d),
                          _pm(s[m]["gain_mean"], s[m]["gain_sd"], d)]
            lines.append(f"| {v} | {int(sel.sum())} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# -- atomic output folder ----------------------------------------------------------------------

@contextlib.contextmanager
def _staged(output: Path) -> Iterator[Path]:
    """A staging folder next to ``output``; on success its files replace those in ``output``
    (created if needed), on error it is removed and ``output`` is untouched."""
    output.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    try:
        yield stage
        if not output.exists():
            os.replace(stage, output)
            os.chmod(output, 0o777 & ~_umask())
            return
        if not output.is_dir():
            raise TaskError(f"--output {os.fspath(output)!r} exists and is not a folder")
        for f in sorted(stage.iterdir()):
            os.chmod(f, 0o666 & ~_umask())
            os.replace(f, output / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- the command -------------------------------------------------------------------------------

def evaluate(checkpoint: str | os.PathLike[str], output: str | os.PathLike[str], *,
             store: str | os.PathLike[str] | None = None,
             data_root: str | os.PathLike[str] | None = None,
             splits: str | os.PathLike[str] | None = None, split: str = "test",
             combinations: str = "all", batch_size: int | None = None,
             step: int | None = None) -> EvaluationResult:
    """Evaluate ``checkpoint`` on ``split`` over the grid and write the report to ``output``.

    Args:
      checkpoint: training workdir (latest step unless ``step``) or a step folder.
      output: folder for the report files (created; existing files of the same names are
        replaced, other files are left alone).
      store: a prepared slice store; with ``data_root``, where to prepare it (default
        ``<output>/store``; an up-to-date store there is reused).
      data_root: a BIDS/NIfTI dataset, prepared with the checkpoint's preprocessing options and
        split rule (``splits``, else the checkpoint's ``data.splits_file``, else its
        ``data.split_seed``).
      split: ``train``, ``val`` or ``test``.
      combinations: ``all``, ``orthogonal`` or ``"0,40,80"`` (grid indices).
      batch_size: slices per device call (global); default the checkpoint's ``eval.batch_size``.

    Raises:
      TaskError / DataError / CheckpointError: bad input, one message; nothing written.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise TaskError(f"--output {os.fspath(output)!r} exists and is not a folder")
    if split not in SPLITS:
        raise TaskError(f"--split must be one of {', '.join(SPLITS)}; got {split!r}")
    combos = _combinations(combinations)
    model = model_io.load_model(checkpoint, step=step)
    config = model.config
    source = _open_store(model, store, data_root, output, splits)
    split_rows = source.indices(split)
    if len(split_rows) == 0:
        raise TaskError(f"split {split!r} of the store {os.fspath(source.path)!r} has no slices "
                        f"(its subjects: {len(source.splits.get(split, []))}); choose another "
                        "--split or prepare the store with a split that has test subjects")

    mesh = sharding.make_mesh()
    global_batch = int(batch_size or config.eval.batch_size)
    if global_batch < 1 or global_batch % mesh.size:
        raise TaskError(f"--batch-size {global_batch} must be a positive multiple of the "
                        f"{mesh.size} device(s)")
    host_batch = global_batch // jax.process_count()
    eval_step, predict = compiled_eval(config, model.defs)
    eval_step = _with_identity(eval_step)
    state = sharding.replicate(model.state, mesh)

    batches = kdata.eval_batches(source, split=split, batch_size=host_batch,
                                 combinations=combos, shard_index=jax.process_index(),
                                 shard_count=jax.process_count())
    log.info("evaluating step %d on %d %s slices x %d combinations", model.step,
             len(split_rows), split, len(combos))
    raw = evaluation.run_eval(eval_step, state, batches, mesh)
    table = _per_sample_table(source, raw)
    panels, shown = _severity_panels(source, state, eval_step, predict, split_rows, host_batch,
                                     mesh)

    header = [f"checkpoint: `{os.fspath(model.step_dir)}` (step {model.step})",
              f"store: `{os.fspath(source.path)}`, split `{split}`: {len(split_rows)} slices "
              f"of {len(np.unique(table['subject']))} subject(s)",
              f"combinations: {len(combos)} ({combinations}); {len(table['loss'])} samples",
              f"fixed corruption: eval seed {int(config.eval.seed)}, breathing "
              f"{config.corruption.method}, centre fraction {config.corruption.center_fraction:g}",
              "severity.png: A = 2, 5, 8 px at f = 15/min, R = 4, SNR = 20 dB (combinations "
              f"{', '.join(map(str, SEVERITY_COMBINATIONS))}), {shown}"]
    if jax.process_index() != 0:  # every process computed the same; one writes
        return _result(output, [], table, model, split, split_rows, combos)
    written = []
    with _staged(output) as stage:
        (stage / "per_sample.csv").write_text(_csv_text(
            SAMPLE_COLUMNS, list(zip(*(table[c] for c in SAMPLE_COLUMNS)))))
        (stage / "per_subject.csv").write_text(_per_subject_csv(table))
        (stage / "summary.csv").write_text(_summary_csv(table))
        (stage / "summary.md").write_text(_summary_md(table, header=header))
        plotted = (*PARAMS, *(f"{k}_{m}" for k in ("input", "output") for m in METRICS))
        rows = [{c: table[c][i] for c in plotted} for i in range(len(table["loss"]))]
        figures.metric_plots(stage / "metrics_vs_params.png", rows)
        figures.severity_figure(stage / "severity.png", panels)
        written = [output / name for name in OUTPUT_FILES]
    return _result(output, written, table, model, split, split_rows, combos)


def _result(output, written, table, model, split, split_rows, combos) -> EvaluationResult:
    overall = _metric_stats(table, np.ones(len(table["loss"]), bool))
    return EvaluationResult(output, written, table, overall, model.step, split,
                            len(split_rows), list(combos))


def summary_lines(result: EvaluationResult) -> list[str]:
    """Overall input -> output means, one line per metric."""
    lines = [f"step {result.step}, split {result.split}: {result.n_slices} slices x "
             f"{len(result.combinations)} combinations"]
    for m, s in result.overall.items():
        d = _DIGITS[m]
        lines.append(f"{m.upper():5s} input {_pm(s['input_mean'], s['input_sd'], d)} -> output "
                     f"{_pm(s['output_mean'], s['output_sd'], d)} (gain {s['gain_mean']:+.{d}f})")
    return lines
