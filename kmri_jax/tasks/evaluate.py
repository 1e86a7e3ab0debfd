"""Evaluate a checkpoint on a split over the corruption grid: the library side of
``kmri-evaluate``.

What is computed. Every slice of the split is corrupted with each requested grid combination
(A, f, R, SNR of :func:`kmri_jax.sim.grid_params`), exactly as the training loop's validation
does it: fixed corruption keyed by ``fold_in(fold_in(fold_in(key(config.eval.seed), volume),
slice), combination)`` with the checkpoint's ``config.eval.seed``, breathing method and centre
fraction. Every method (``methods``) is evaluated on that same corruption, against the clean
image (magnitude images divided by the truth's maximum, valid region, ``data_range=1``): the
corrupted input, the oracle (the true motion undone, zero-filled), the training-free estimate
(:func:`kmri_jax.correct.estimate_motion`, undone, zero-filled) and the network
(:func:`kmri_jax.train.step.make_eval_step`). On the same split and combinations the means equal
the training loop's ``val_*`` / ``input_*`` / ``oracle_*`` / ``estimate_*`` numbers. The
tables are :mod:`kmri_jax.tasks.report`'s.

Outputs (all in ``output``; written to a staging folder first and moved in only when every
file is complete, so a failed run leaves none of them):

- ``per_sample.csv``: one row per (slice, combination): subject, volume, slice, combination,
  A, f, R, SNR, loss, then ssim, psnr, nrmse of each method (``input_``, ``output_`` for the
  network, ``oracle_``, ``estimate_``) and the displacement errors.
- ``per_subject.csv``: means per (subject, A, f, R, SNR) with the number of slices ``n``.
- ``summary.csv`` / ``summary.md``: mean ± sd of every method and its gain over the input (per
  sample) overall and per value of each parameter; ``summary.md`` has one table with one row
  per method. sd is numpy's (population, ``ddof=0``), as in the plots.
- ``metrics_vs_params.png``: :func:`kmri_jax.tasks.figures.metric_plots`.
- ``severity.png``: one slice (the middle slice of the split's first volume) at A = 2, 5, 8 px
  with f = 15/min, R = 4, SNR = 20 dB (grid combinations 13, 40, 67; same keys as above):
  corrupted input, each method's image and the ground truth side by side
  (:func:`kmri_jax.tasks.figures.severity_figure`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import jax
import numpy as np

from kmri_jax import data as kdata
from kmri_jax import sim
from kmri_jax import correct
from kmri_jax.tasks import figures, model_io, report
from kmri_jax.tasks.errors import TaskError
from kmri_jax.tasks.report import METHOD_COLUMNS, METRICS, PARAMS
from kmri_jax.train import evaluation, sharding
from kmri_jax.train.corruption import Corruption
from kmri_jax.train.metrics import magnitude_image
from kmri_jax.train.step import (SEARCHED, compiled_baseline, compiled_eval, reuses_search,
                                  searched_extras)

log = logging.getLogger(__name__)

__all__ = ["EvaluationResult", "OUTPUT_FILES", "SEVERITY_COMBINATIONS", "evaluate",
           "summary_lines"]

SPLITS = ("train", "val", "test")
METHODS = ("input", "oracle", "estimate", "model")
# A = 2, 5, 8 px at f = 15/min, R = 4, SNR = 20 dB: c = 27 i_A + 9 i_f + 3 i_R + i_SNR.
SEVERITY_COMBINATIONS = (13, 40, 67)
OUTPUT_FILES = ("per_sample.csv", "per_subject.csv", "summary.csv", "summary.md",
                "metrics_vs_params.png", "severity.png")
IDENTITY_COLUMNS = ("subject", "volume", "slice", "combination", *PARAMS)


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


def _combinations(spec: str, corruption: Corruption) -> list[int]:
    try:
        return corruption.parse_combinations(spec)
    except ValueError:
        total = corruption.num_combinations()
        raise TaskError(f"--combinations {spec!r}: use 'all' ({total}), 'orthogonal' (the "
                        f"balanced 9) or comma-separated grid indices in 0..{total - 1}"
                        ) from None


# -- running the compiled steps ----------------------------------------------------------------

def _with_identity(baseline_step):
    """The baseline step, its per-sample rows also carrying ``volume`` and ``slice``."""

    def step(batch):
        out = dict(baseline_step(batch))
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


def _severity_panels(store, state, predict, baseline_step, split_rows: np.ndarray,
                     methods: Sequence[str], batch_size: int, mesh, *, reuse: bool = False
                     ) -> tuple[list[dict[str, object]], str]:
    """Images of the severity figure (see the module doc) for each method, and which slice.
    ``reuse``: the network gets the estimate row's displacement instead of searching again."""
    volumes = store.index["volume"][split_rows]
    first = split_rows[volumes == volumes[0]]
    row = int(first[len(first) // 2])
    n = len(SEVERITY_COMBINATIONS)
    parts: list[dict[str, np.ndarray]] = []
    for batch in _records_batches(store, [row] * n, SEVERITY_COMBINATIONS, batch_size):
        sharded = sharding.shard_batch(batch, mesh)
        d = None
        if "estimate" in methods:  # the evaluation's own compiled search, same shapes
            d = baseline_step(sharded)["estimate_displacement"]
        out = dict(predict(state, {**sharded, SEARCHED: d} if reuse else sharded))
        if d is not None:
            out["estimate"] = sim.to_channels(correct.undo_motion(
                sim.from_channels(out["input"]), d))
        parts.append({k: evaluation.to_host(v) for k, v in out.items()})
    merged = {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}
    rows_valid, cols_valid = (int(store.index[row][k]) for k in ("valid_rows", "valid_cols"))
    grid = sim.grid_table()
    vol, sl = int(store.index[row]["volume"]), int(store.index[row]["slice"])
    shown = {"input": "input", "oracle": "oracle", "estimate": "estimate", "model": "output"}
    panels = []
    for i, c in enumerate(SEVERITY_COMBINATIONS):
        images = {k: np.asarray(magnitude_image(merged[k][i]))[:rows_valid, :cols_valid]
                  for k in ("target", *(shown[m] for m in methods))}
        scale = float(images["target"].max()) or 1.0
        columns = [(report.METHOD_NAMES[m], images[shown[m]] / scale) for m in methods]
        panels.append({"label": f"A = {grid['A'][c]:g} px (volume {vol}, slice {sl})",
                       "columns": columns, "truth": images["target"] / scale})
    return panels, f"volume {vol} ({store.volumes[vol]['subject']}), slice {sl}"


# -- tables ------------------------------------------------------------------------------------

def _per_sample_table(store: kdata.SliceStore, raw: Mapping[str, np.ndarray],
                      grid: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The evaluation's per-sample results as the report's table (see :mod:`report`);
    ``grid``: the run's grid table (``Corruption.grid_table()``)."""
    combos = raw["combination"].astype(np.int64)
    vol = raw["volume"].astype(np.int64)
    subjects = np.asarray([store.volumes[v]["subject"] for v in vol], dtype=object)
    table = {"subject": subjects, "volume": vol, "slice": raw["slice"].astype(np.int64),
             "combination": combos}
    table.update({p: grid[p][combos].astype(np.float64) for p in grid})
    if "loss" in raw:
        table["loss"] = raw["loss"].astype(np.float64)
    for method, prefix in METHOD_COLUMNS.items():
        source = "" if method == "model" else f"{method}_"
        for m in (*METRICS, "disp_rmse"):
            if source + m in raw:
                table[f"{prefix}_{m}"] = raw[source + m].astype(np.float64)
    return table


def _sample_columns(table: Mapping[str, np.ndarray]) -> list[str]:
    """Identity, loss, the metrics of the input, the network, the oracle, the estimate, then
    the displacement errors."""
    cols = [*IDENTITY_COLUMNS, *(p for p in report.MOTION_PARAMS if p in table)]
    cols += ["loss"] if "loss" in table else []
    prefixes = ("input", "output", "oracle", "estimate", "motion")
    cols += [f"{p}_{m}" for p in prefixes for m in METRICS if f"{p}_{m}" in table]
    return cols + [f"{p}_disp_rmse" for p in prefixes if f"{p}_disp_rmse" in table]


# -- the command -------------------------------------------------------------------------------

def _methods(spec: str | Sequence[str]) -> list[str]:
    names = [m.strip() for m in (spec.split(",") if isinstance(spec, str) else spec) if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise TaskError(f"--methods {','.join(names) or spec!r}: choose from "
                        f"{','.join(METHODS)} (comma-separated)")
    return ["input"] + [m for m in METHODS[1:] if m in names]  # the input: gains need it


def evaluate(checkpoint: str | os.PathLike[str], output: str | os.PathLike[str], *,
             store: str | os.PathLike[str] | None = None,
             data_root: str | os.PathLike[str] | None = None,
             splits: str | os.PathLike[str] | None = None, split: str = "test",
             combinations: str = "all", methods: str | Sequence[str] = METHODS,
             batch_size: int | None = None, step: int | None = None) -> EvaluationResult:
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
      methods: of ``input``, ``oracle``, ``estimate``, ``model`` (the input is always there).
      batch_size: slices per device call (global); default the checkpoint's ``eval.batch_size``.

    Raises:
      TaskError / DataError / CheckpointError: bad input, one message; nothing written.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise TaskError(f"--output {os.fspath(output)!r} exists and is not a folder")
    if split not in SPLITS:
        raise TaskError(f"--split must be one of {', '.join(SPLITS)}; got {split!r}")
    chosen = _methods(methods)
    model = model_io.load_model(checkpoint, step=step)
    config = model.config
    corruption = Corruption.from_config(config)
    combos = _combinations(combinations, corruption)
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
    baselines = [m for m in chosen if m != "model"]
    baseline_step = compiled_baseline(config, methods=baselines)
    state = sharding.replicate(model.state, mesh)

    def batches():
        return kdata.eval_batches(source, split=split, batch_size=host_batch,
                                  combinations=combos, shard_index=jax.process_index(),
                                  shard_count=jax.process_count())

    log.info("evaluating step %d on %d %s slices x %d combinations: %s", model.step,
             len(split_rows), split, len(combos), ", ".join(chosen))
    # A network that undoes the search reuses the displacements the estimate row found.
    reuse = reuses_search(config.model.kind, chosen)
    searched: list[jax.Array] = []
    parts = [evaluation.run_eval(_with_identity(baseline_step), None, batches(), mesh,
                                 collect={"estimate_displacement": searched} if reuse else None)]
    if "model" in chosen:
        parts.append(evaluation.run_eval(eval_step, state, batches(), mesh,
                                         extras=searched_extras(searched)))
    table = _per_sample_table(source, evaluation.merge(*parts), corruption.grid_table())
    panels, shown = _severity_panels(source, state, predict, baseline_step, split_rows, chosen,
                                     host_batch, mesh, reuse=reuse)

    header = [f"checkpoint: `{os.fspath(model.step_dir)}` (step {model.step}, "
              f"model.kind {config.model.kind})",
              f"store: `{os.fspath(source.path)}`, split `{split}`: {len(split_rows)} slices "
              f"of {len(np.unique(table['subject']))} subject(s)",
              f"combinations: {len(combos)} ({combinations}); {len(table['combination'])} "
              "samples",
              f"fixed corruption: eval seed {int(config.eval.seed)}, breathing "
              f"{config.corruption.method}, centre fraction {config.corruption.center_fraction:g}",
              "severity.png: A = 2, 5, 8 px at f = 15/min, R = 4, SNR = 20 dB (combinations "
              f"{', '.join(map(str, SEVERITY_COMBINATIONS))}), {shown}"]
    if jax.process_index() != 0:  # every process computed the same; one writes
        return _result(output, [], table, model, split, split_rows, combos)
    written = []
    columns = _sample_columns(table)
    with report.staged(output) as stage:
        (stage / "per_sample.csv").write_text(report.table_csv(
            columns, list(zip(*(table[c] for c in columns)))))
        (stage / "per_subject.csv").write_text(report.per_subject_csv(table))
        (stage / "summary.csv").write_text(report.summary_csv(table))
        (stage / "summary.md").write_text(report.summary_md(table, header=header))
        prefixes = [METHOD_COLUMNS[m] for m in chosen]
        plotted = (*PARAMS, *(f"{p}_{m}" for p in prefixes for m in METRICS))
        rows = [{c: table[c][i] for c in plotted} for i in range(len(table["combination"]))]
        figures.metric_plots(stage / "metrics_vs_params.png", rows,
                             methods=[(p, report.METHOD_NAMES[m]) for m, p in
                                      zip(chosen, prefixes)])
        figures.severity_figure(stage / "severity.png", panels)
        written = [output / name for name in OUTPUT_FILES]
    return _result(output, written, table, model, split, split_rows, combos)


def _result(output, written, table, model, split, split_rows, combos) -> EvaluationResult:
    overall = report.metric_stats(table, np.ones(len(table["combination"]), bool))
    return EvaluationResult(output, written, table, overall, model.step, split,
                            len(split_rows), list(combos))


def summary_lines(result: EvaluationResult) -> list[str]:
    """Every method's overall mean, one line per metric."""
    lines = [f"step {result.step}, split {result.split}: {result.n_slices} slices x "
             f"{len(result.combinations)} combinations"]
    for m, s in result.overall.items():
        d = 4 if m != "psnr" else 2
        cells = [f"{p} {s[f'{p}_mean']:.{d}f}" for p in METHOD_COLUMNS.values()
                 if f"{p}_mean" in s]
        lines.append(f"{m.upper():5s} " + " | ".join(cells))
    return lines
