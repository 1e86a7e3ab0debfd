"""The training loop, read top to bottom: data, state, compiled steps, resume, train, evaluate,
log, checkpoint. Everything heavy happens in the compiled steps; this module only wires."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.experimental import multihost_utils

from kmri_jax import data as kdata
from kmri_jax import sim
from kmri_jax.config import ConfigValueError
from kmri_jax.train import evaluation, monitoring, profiling, runtime, sharding
from kmri_jax.train.augment import check_augment
from kmri_jax.train.checkpointing import Checkpointer, abstract_like
from kmri_jax.train.corruption import Corruption
from kmri_jax.train.divergence import DivergenceWatch
from kmri_jax.train.losses import loss_from_config
from kmri_jax.train.metrics import magnitude_image
from kmri_jax.train.preemption import PreemptionGuard
from kmri_jax.train.state import create_state, learning_rate_schedule
from kmri_jax.train.networks import Network
from kmri_jax.train.step import (BASELINES, compiled_baseline, compiled_eval, make_train_step,
                                  reuses_search, searched_extras)
from kmri_jax.train.workdir_lock import WorkdirLock

log = logging.getLogger(__name__)

_FIXED_STREAM = 1  # fold_in(key(seed), 1): the seed replica's fixed training corruption.


def prepare_data(config: ml_collections.ConfigDict, workdir: Path) -> kdata.SliceStore:
    """Build (process 0) or reuse the slice store; the built-in phantom when no data root."""
    store_dir = Path(config.data.store) if config.data.store else workdir / "store"
    if not config.data.root and config.data.phantom_version not in kdata.PHANTOM_VERSIONS:
        raise ConfigValueError(
            f"data.phantom_version={config.data.phantom_version!r}: the built-in phantom has "
            f"versions {kdata.PHANTOM_VERSIONS} (2: whole spine, 1: the earlier blocky one).")
    if jax.process_index() == 0:
        kdata.ensure_store(
            config.data.root or None, store_dir, options=kdata.PreprocessOptions.from_mapping(config.data),
            splits=config.data.splits_file or None, split_seed=config.data.split_seed,
            pattern=config.data.pattern or None, strict=config.data.strict,
            phantom_subjects=config.data.phantom_subjects,
            phantom_slices=config.data.phantom_slices,
            phantom_version=config.data.phantom_version, seed=config.seed,
        )
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("kmri_jax: slice store ready")
    return kdata.SliceStore(store_dir)


def eval_baselines(spec: str) -> list[str]:
    """``config.eval.baselines`` (e.g. ``"input,oracle,estimate"``) as a list of method names."""
    names = [m.strip() for m in spec.split(",") if m.strip()]
    unknown = [m for m in names if m not in BASELINES]
    if unknown:
        raise ConfigValueError(f"eval.baselines={spec!r}: unknown {unknown}; choose from "
                               f"{', '.join(BASELINES)} (comma-separated, or '' for none)")
    return names


def eval_combinations(spec: str, corruption: Corruption | None = None) -> list[int]:
    """``config.eval.combinations`` as grid indices (:func:`kmri_jax.sim.parse_combinations`)
    of the corruption's grid (the seed's 81 by default)."""
    try:
        return (corruption or Corruption()).parse_combinations(spec)
    except ValueError as e:
        raise ConfigValueError(f"eval.combinations={e}") from None


def _images_for_tensorboard(out: dict[str, jax.Array], n: int) -> dict[str, np.ndarray]:
    """Magnitude-image and log k-space grids (corrupted | corrected | ground truth)."""
    host = {k: evaluation.to_host(v)[:n] for k, v in out.items()}
    order = ("input", "oracle", "output", "target")
    mags = [np.asarray(magnitude_image(host[k])) for k in order]
    logk = [monitoring.log_magnitude(np.asarray(sim.from_channels(host[k])), dynamic_range=1e4)
            for k in order]
    return {
        "images/corrupted_oracle_corrected_truth": monitoring.image_grid(mags, normalize="row"),
        "kspace/corrupted_oracle_corrected_truth": monitoring.image_grid(logk, normalize="tile"),
    }


def _beside(summary: dict[str, float], metric: str, digits: int) -> str:
    """``SSIM 0.3812 (input 0.2466, oracle 0.3905, estimate 0.3301)``: the network beside the
    methods evaluated with it."""
    others = [f"{m} {summary[f'{m}_{metric}']:.{digits}f}" for m in (*BASELINES, "motion")
              if f"{m}_{metric}" in summary]
    tail = f" ({', '.join(others)})" if others else ""
    return f"{metric} {summary[f'val_{metric}']:.{digits}f}{tail}"


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    *,
    on_step: Callable[[int, dict[str, jax.Array]], None] | None = None,
) -> dict[str, float]:
    """Train the network as ``config`` says, writing everything under ``workdir``.

    Resumes from the latest checkpoint in ``workdir`` when there is one; refuses a workdir
    another live run holds. ``on_step(step, metrics)`` is called after every step with the
    step's device scalars (reading them waits for the step). Returns the last evaluation
    summary (empty if none ran).

    Raises:
      TrainingDivergedError: a non-finite loss, gradient, parameter or validation metric.
      WorkdirBusyError, CheckpointError, ConfigValueError, DataError: one clear message each.
    """
    workdir = Path(workdir).absolute()
    multi_process = sharding.initialize_distributed()
    # Process 0 takes the lock (single process: without starting JAX's backends, whose CPU
    # device count is decided below).
    with WorkdirLock(workdir, enabled=not multi_process or jax.process_index() == 0):
        return _train_and_evaluate(config, workdir, multi_process=multi_process,
                                   on_step=on_step)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: Path, *, multi_process: bool,
                        on_step: Callable | None) -> dict[str, float]:
    """Set-up (runtime, data, state, compiled steps, resume), then :func:`_train`."""
    tc, ec = config.train, config.eval
    runtime.configure_cpu_allocator(config.runtime.cpu_malloc)
    runtime.configure_cpu_devices(config.runtime.cpu_devices, multi_process=multi_process,
                                  batch_sizes=(tc.batch_size, ec.batch_size))
    runtime.enable_compilation_cache(config.runtime.compilation_cache)
    mesh = sharding.make_mesh()
    runtime.warn_cpu_bfloat16(config.model.compute_dtype)
    host_batch = sharding.local_batch_size(tc.batch_size, mesh=mesh)
    eval_host_batch = sharding.local_batch_size(ec.batch_size, mesh=mesh, key="eval.batch_size")
    shard = dict(shard_index=jax.process_index(), shard_count=jax.process_count())

    corruption = Corruption.from_config(config)  # Config errors before any work.
    network = Network.from_config(config)
    loss_fn = loss_from_config(tc)
    augment = check_augment(config)
    eval_combos = eval_combinations(ec.combinations, corruption)
    baselines = eval_baselines(ec.baselines)

    # -- data -------------------------------------------------------------------------------
    store = prepare_data(config, workdir)
    steps_per_epoch = kdata.steps_per_epoch(
        store, batch_size=host_batch, shard_count=jax.process_count(),
        combinations_per_slice=corruption.combinations_per_slice,
    )
    total_steps = steps_per_epoch * tc.num_epochs
    if tc.max_steps > 0:
        total_steps = min(total_steps, tc.max_steps)

    # -- state and compiled steps -----------------------------------------------------------
    schedule = learning_rate_schedule(
        learning_rate=tc.learning_rate, end_learning_rate=tc.end_learning_rate,
        total_steps=steps_per_epoch * tc.num_epochs, steps_per_epoch=steps_per_epoch,
        per_epoch=tc.lr_per_epoch,
    )
    tx = optax.adam(schedule)
    state, defs = create_state(config.seed, model_config=config.model, tx=tx,
                               in_channels=network.in_channels)
    state = sharding.replicate(state, mesh)
    train_step = jax.jit(
        make_train_step(
            defs, tx, loss_fn=loss_fn, corruption=corruption, network=network,
            fixed_root=jax.random.fold_in(jax.random.key(config.seed), _FIXED_STREAM),
            schedule=schedule, augment=augment,
        ),
        donate_argnums=0,
    )
    eval_step, predict = compiled_eval(config, defs, loss_fn=loss_fn, corruption=corruption)
    baseline_step = compiled_baseline(config, methods=baselines, corruption=corruption)

    train_iter = kdata.train_iterator(
        store, batch_size=host_batch, seed=config.seed,
        combinations_per_slice=corruption.combinations_per_slice,
        worker_count=config.data.worker_count, prefetch=config.data.prefetch, **shard,
    )

    def eval_batches():
        return kdata.eval_batches(
            store, split=ec.split, batch_size=eval_host_batch, combinations=eval_combos, **shard
        )

    ckpt = Checkpointer(
        workdir, max_to_keep=config.checkpoint.max_to_keep,
        best_metric=config.checkpoint.best_metric or None, best_mode=config.checkpoint.best_mode,
        async_save=config.checkpoint.async_save, keep_hint="--config.checkpoint.max_to_keep",
    )
    with ckpt:
        start_step = 0
        if ckpt.latest_step() is not None:
            restored = ckpt.restore(abstract_like(state, sharding=sharding.replicated(mesh)),
                                    model_config=config.model)
            state = restored.state
            if restored.data_state is not None:
                train_iter.set_state(restored.data_state)
            start_step = int(restored.metadata["step"])
            log.info("resumed from %s at step %d", ckpt.step_path(start_step), start_step)
            if start_step >= total_steps:
                log.info("this run is complete (step %d of %d); use another --workdir, or raise "
                         "--config.train.num_epochs to train on", start_step, total_steps)
        return _train(config, workdir, ckpt=ckpt, state=state, start_step=start_step,
                      total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                      train_step=train_step, eval_step=eval_step, predict=predict,
                      baseline_step=baseline_step if baselines else None,
                      train_iter=train_iter, eval_batches=eval_batches, mesh=mesh,
                      on_step=on_step)


def _train(config, workdir: Path, *, ckpt: Checkpointer, state, start_step: int, total_steps: int,
           steps_per_epoch: int, train_step, eval_step, predict, baseline_step, train_iter,
           eval_batches, mesh, on_step) -> dict[str, float]:
    """The training loop proper: steps, logging, evaluation, checkpoints, stopping."""
    tc, ec = config.train, config.eval
    grid_table = Corruption.from_config(config).grid_table()  # the evaluation's breakdown
    monitor = monitoring.Monitor(workdir, purge_step=start_step or None)
    history = monitoring.History(workdir)
    progress = monitoring.Progress(total_steps=total_steps, batch_size=tc.batch_size, every=tc.log_every_steps)
    if start_step == 0:
        monitor.text("config", "```\n" + str(config) + "\n```")
    log.info(
        "training: %d steps (%d per epoch, global batch %d on %d %s device%s), eval on %d records",
        total_steps, steps_per_epoch, tc.batch_size, mesh.size, jax.default_backend().upper(),
        "" if mesh.size == 1 else "s", eval_batches().n_records,
    )
    watch = DivergenceWatch(config, last_saved=start_step or None)

    def save(step: int, epoch: int, summary: dict[str, float] | None = None) -> None:
        watch.check()  # Never save a state that went non-finite.
        ckpt.save(step, state, metadata={"epoch": epoch, "config": config.to_dict()},
                  data_state=train_iter.get_state(), metrics=summary)
        watch.saved(step)

    summary: dict[str, float] = {}
    baseline_rows: dict[str, np.ndarray] = {}  # the same every evaluation: computed once
    # The search's displacement per evaluation batch, found once by the baseline step, for the
    # networks that undo it (the corruption is fixed, so it never changes).
    searched: list[jax.Array] = []
    reuse = reuses_search(config.model.kind, eval_baselines(ec.baselines))
    collect = {"estimate_displacement": searched} if reuse else None
    loss_sum, loss_count = jnp.zeros(()), 0
    epoch_start = time.perf_counter()
    step = start_step
    trace = profiling.StepTrace(workdir / "tensorboard", start_step=start_step,
                                skip=config.runtime.profile_start_step,
                                steps=config.runtime.profile_steps)
    with monitor, PreemptionGuard() as guard, trace:
        while step < total_steps:
            batch = sharding.shard_batch(next(train_iter), mesh)
            state, metrics = train_step(state, batch)
            step += 1
            trace.after_step(step, metrics)
            watch.update(metrics)
            loss_sum, loss_count = loss_sum + metrics["loss"], loss_count + 1
            if on_step is not None:
                on_step(step, metrics)
            epoch, end_of_epoch = step // steps_per_epoch, step % steps_per_epoch == 0
            if progress.due(step):
                watch.check()
                host_metrics = jax.device_get({k: metrics[k] for k in ("loss", "grad_norm", "lr",
                                                                       "disp_l1") if k in metrics})
                stats = progress.update(step, epoch=epoch, loss=host_metrics["loss"],
                                        extra={"lr": host_metrics["lr"]})
                if stats is not None:
                    monitor.scalars({**host_metrics,
                                     "samples_per_s": stats.samples_per_s,
                                     "step_time_s": stats.step_time_s}, step, prefix="train/")
            last = step == total_steps
            if (end_of_epoch and epoch % ec.every_epochs == 0) or last:
                watch.check()
                if baseline_step is not None and not baseline_rows:
                    baseline_rows = evaluation.run_eval(baseline_step, None, eval_batches(), mesh,
                                                        collect=collect)
                extras = searched_extras(searched)
                per_sample = evaluation.merge(baseline_rows, evaluation.run_eval(
                    eval_step, state, eval_batches(), mesh, extras=extras))
                summary = evaluation.summarize(per_sample, grid_table)
                watch.check_summary(step, summary)
                train_loss = float(loss_sum) / max(loss_count, 1)
                monitor.scalars(summary, step, prefix="val/")
                first = next(iter(eval_batches()))
                shown = predict(state, {**sharding.shard_batch(first, mesh),
                                        **(extras[0] if extras else {})})
                for tag, grid in _images_for_tensorboard(shown, ec.num_images).items():
                    monitor.image(tag, grid, step)
                history.append(epoch=max(epoch, 1), train_loss=train_loss, val_loss=summary["val_loss"],
                               val_SSIM=summary["val_SSIM"], val_PSNR=summary["val_PSNR"],
                               lr=float(metrics["lr"]), time_s=time.perf_counter() - epoch_start)
                print(f"epoch {epoch} step {step}: train_loss {train_loss:.5g} | "
                      f"val_loss {summary['val_loss']:.5g} | {_beside(summary, 'SSIM', 4)} | "
                      f"{_beside(summary, 'PSNR', 2)} dB", flush=True)
                save(step, epoch, summary)
                progress.restart()  # the evaluation's time is not step time
                loss_sum, loss_count, epoch_start = jnp.zeros(()), 0, time.perf_counter()
            elif config.checkpoint.every_steps and step % config.checkpoint.every_steps == 0:
                save(step, epoch)
            if guard.should_stop_synced(step) and not last:
                log.warning("stopping at step %d on request; saving a checkpoint to resume from", step)
                save(step, epoch)
                break
        if summary:
            monitor.hparams(
                {"kind": config.model.kind, "loss": tc.loss, "batch_size": tc.batch_size,
                 "lr": tc.learning_rate,
                 "base_channels": config.model.base_channels, "corruption": config.corruption.mode},
                {f"hparam/{k}": v for k, v in summary.items() if k.startswith(("val_", "input_"))},
            )
    return summary
