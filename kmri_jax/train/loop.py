"""The training loop, read top to bottom: data, state, compiled steps, resume, train, evaluate,
log, checkpoint. Everything heavy happens in the compiled steps; this module only wires."""

from __future__ import annotations

import dataclasses
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
from kmri_jax.config import ConfigValueError
from kmri_jax.train import evaluation, losses, monitoring, profiling, runtime, sharding
from kmri_jax.train.checkpointing import Checkpointer, abstract_like
from kmri_jax.train.metrics import magnitude_image
from kmri_jax.train.preemption import PreemptionGuard
from kmri_jax.train.state import create_state, learning_rate_schedule
from kmri_jax.train.step import make_eval_step, make_predict, make_train_step

log = logging.getLogger(__name__)

_FIXED_STREAM = 1  # fold_in(key(seed), 1): the seed replica's fixed training corruption.


def preprocess_options(config: ml_collections.ConfigDict) -> kdata.PreprocessOptions:
    """The data section's preprocessing fields as ``PreprocessOptions``."""
    names = {f.name for f in dataclasses.fields(kdata.PreprocessOptions)}
    return kdata.PreprocessOptions(**{k: v for k, v in config.data.items() if k in names})


def prepare_data(config: ml_collections.ConfigDict, workdir: Path) -> kdata.SliceStore:
    """Build (process 0) or reuse the slice store; the built-in phantom when no data root."""
    store_dir = Path(config.data.store) if config.data.store else workdir / "store"
    if jax.process_index() == 0:
        kdata.ensure_store(
            config.data.root or None, store_dir, options=preprocess_options(config),
            splits=config.data.splits_file or None, split_seed=config.data.split_seed,
            pattern=config.data.pattern or None, strict=config.data.strict,
            phantom_subjects=config.data.phantom_subjects,
            phantom_slices=config.data.phantom_slices, seed=config.seed,
        )
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("kmri_jax: slice store ready")
    return kdata.SliceStore(store_dir)


def orthogonal_combinations() -> list[int]:
    """The 9 grid combinations of the L9(3^4) orthogonal array.

    Each level of each of A, f, R, SNR appears 3 times and every pair of levels of two
    parameters once, so per-parameter means are balanced at 1/9 of the full grid's cost.
    Row (i, j) has levels (i, j, (i + j) % 3, (i + 2j) % 3), index ``27a + 9f + 3r + s``.
    """
    rows = [(i, j, (i + j) % 3, (i + 2 * j) % 3) for i in range(3) for j in range(3)]
    return [27 * a + 9 * f + 3 * r + s for a, f, r, s in rows]


def eval_combinations(spec: str) -> list[int]:
    """``"all"`` -> the 81 grid combinations; ``"orthogonal"`` -> the balanced 9; or ``"0,40,80"``."""
    spec = spec.strip()
    if spec == "all":
        return list(range(81))
    if spec == "orthogonal":
        return orthogonal_combinations()
    try:
        combos = [int(c) for c in spec.split(",") if c.strip()]
    except ValueError:
        combos = []
    if not combos or any(not 0 <= c < 81 for c in combos):
        raise ConfigValueError(
            f"eval.combinations={spec!r}: use 'all', 'orthogonal', or comma-separated grid "
            "indices in 0..80"
        )
    return combos


def _combinations_per_slice(config: ml_collections.ConfigDict) -> int:
    """Records per slice in training: K grid combinations in ``fixed`` mode, 0 in ``fresh``."""
    mode, k = config.corruption.mode, config.corruption.combinations_per_slice
    if mode not in ("fresh", "fixed"):
        raise ConfigValueError(f"corruption.mode must be 'fresh' or 'fixed', got {mode!r}")
    if mode == "fixed" and not 1 <= k <= 81:
        raise ConfigValueError(
            f"corruption.mode='fixed' needs 1 <= corruption.combinations_per_slice <= 81 (seed: 81), got {k}"
        )
    return k if mode == "fixed" else 0


def _images_for_tensorboard(out: dict[str, jax.Array], n: int) -> dict[str, np.ndarray]:
    """Magnitude-image and log k-space grids (corrupted | corrected | ground truth)."""
    host = {k: evaluation.to_host(v)[:n] for k, v in out.items()}
    order = ("input", "output", "target")
    mags = [np.asarray(magnitude_image(host[k])) for k in order]
    logk = [np.log1p(np.hypot(host[k][:, 0], host[k][:, 1]) * 1e3) for k in order]
    return {
        "images/corrupted_corrected_truth": monitoring.image_grid(mags, normalize="row"),
        "kspace/corrupted_corrected_truth": monitoring.image_grid(logk, normalize="tile"),
    }


def _check_same_model(config: ml_collections.ConfigDict, path: Path, metadata: dict) -> None:
    """Refuse to resume a checkpoint whose network computes another function.

    Shapes are checked on restore; ``model.residual`` changes the function with the same
    shapes, so it is compared with the config stored in the checkpoint's metadata.
    """
    stored = (metadata.get("config") or {}).get("model") or {}
    for key in ("residual", "base_channels"):
        if key in stored and stored[key] != config.model[key]:
            raise ConfigValueError(
                f"the checkpoint {path} was trained with model.{key}={stored[key]!r}, this config "
                f"has {config.model[key]!r}: pass --config.model.{key}={stored[key]!r} to resume "
                "it, or use another --workdir"
            )


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    *,
    on_step: Callable[[int, dict[str, jax.Array]], None] | None = None,
) -> dict[str, float]:
    """Train the U-Net as ``config`` says, writing everything under ``workdir``.

    Resumes from the latest checkpoint in ``workdir`` when there is one. ``on_step(step,
    metrics)`` is called after every step with the step's device scalars (reading them
    waits for the step). Returns the last evaluation summary (empty if none ran).
    """
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    tc, ec = config.train, config.eval
    multi_process = sharding.initialize_distributed()
    runtime.configure_cpu_devices(config.runtime.cpu_devices, multi_process=multi_process,
                                  batch_sizes=(tc.batch_size, ec.batch_size))
    runtime.enable_compilation_cache(config.runtime.compilation_cache)
    mesh = sharding.make_mesh()
    host_batch = sharding.local_batch_size(tc.batch_size, mesh=mesh)
    eval_host_batch = sharding.local_batch_size(ec.batch_size, mesh=mesh)
    shard = dict(shard_index=jax.process_index(), shard_count=jax.process_count())

    combos_per_slice = _combinations_per_slice(config)  # Config errors before any work.
    eval_combos = eval_combinations(ec.combinations)

    # -- data -------------------------------------------------------------------------------
    store = prepare_data(config, workdir)
    steps_per_epoch = kdata.steps_per_epoch(
        store, batch_size=host_batch, shard_count=jax.process_count(),
        combinations_per_slice=combos_per_slice,
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
    state, defs = create_state(config.seed, model_config=config.model, tx=tx)
    state = sharding.replicate(state, mesh)
    loss_options = {"weights": dict(tc.loss_weights)} if tc.loss == "hybrid" else {}
    loss_fn = losses.get_loss(tc.loss, **loss_options)
    corruption = dict(method=config.corruption.method, center_fraction=config.corruption.center_fraction)
    eval_root = jax.random.key(ec.seed)
    train_step = jax.jit(
        make_train_step(
            defs, tx, loss_fn=loss_fn, corruption_mode=config.corruption.mode,
            fixed_root=jax.random.fold_in(jax.random.key(config.seed), _FIXED_STREAM),
            distribution=config.corruption.distribution, schedule=schedule, **corruption,
        ),
        donate_argnums=0,
    )
    eval_step = jax.jit(make_eval_step(defs, loss_fn=loss_fn, eval_root=eval_root, **corruption))
    predict = jax.jit(make_predict(defs, eval_root=eval_root, **corruption))

    train_iter = kdata.train_iterator(
        store, batch_size=host_batch, seed=config.seed, combinations_per_slice=combos_per_slice,
        worker_count=config.data.worker_count, prefetch=config.data.prefetch, **shard,
    )

    def eval_batches():
        return kdata.eval_batches(
            store, split=ec.split, batch_size=eval_host_batch, combinations=eval_combos, **shard
        )

    ckpt = Checkpointer(
        workdir, max_to_keep=config.checkpoint.max_to_keep,
        best_metric=config.checkpoint.best_metric or None, best_mode=config.checkpoint.best_mode,
        async_save=config.checkpoint.async_save,
    )
    start_step = 0
    if ckpt.latest_step() is not None:
        _check_same_model(config, ckpt.step_path(ckpt.latest_step()), ckpt.metadata())
        restored = ckpt.restore(abstract_like(state, sharding=sharding.replicated(mesh)))
        state = restored.state
        if restored.data_state is not None:
            train_iter.set_state(restored.data_state)
        start_step = int(restored.metadata["step"])
        log.info("resumed from %s at step %d", ckpt.step_path(start_step), start_step)
        if start_step >= total_steps:
            log.info("this run is complete (step %d of %d); use another --workdir, or raise "
                     "--config.train.num_epochs to train on", start_step, total_steps)

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

    def save(step: int, epoch: int, summary: dict[str, float] | None = None) -> None:
        ckpt.save(step, state, metadata={"epoch": epoch, "config": config.to_dict()},
                  data_state=train_iter.get_state(), metrics=summary)

    # -- train ------------------------------------------------------------------------------
    summary: dict[str, float] = {}
    loss_sum, loss_count = jnp.zeros(()), 0
    epoch_start = time.perf_counter()
    step = start_step
    trace = profiling.StepTrace(workdir / "tensorboard", start_step=start_step,
                                skip=config.runtime.profile_start_step,
                                steps=config.runtime.profile_steps)
    with ckpt, monitor, PreemptionGuard() as guard, trace:
        while step < total_steps:
            batch = sharding.shard_batch(next(train_iter), mesh)
            state, metrics = train_step(state, batch)
            step += 1
            trace.after_step(step, metrics)
            loss_sum, loss_count = loss_sum + metrics["loss"], loss_count + 1
            if on_step is not None:
                on_step(step, metrics)
            epoch, end_of_epoch = step // steps_per_epoch, step % steps_per_epoch == 0
            if progress.due(step):
                host_metrics = jax.device_get(metrics)  # waits for the step: honest timing
                stats = progress.update(step, epoch=epoch, loss=host_metrics["loss"],
                                        extra={"lr": host_metrics["lr"]})
                if stats is not None:
                    monitor.scalars({**host_metrics,
                                     "samples_per_s": stats.samples_per_s,
                                     "step_time_s": stats.step_time_s}, step, prefix="train/")
            last = step == total_steps
            if (end_of_epoch and epoch % ec.every_epochs == 0) or last:
                per_sample = evaluation.run_eval(eval_step, state, eval_batches(), mesh)
                summary = evaluation.summarize(per_sample)
                train_loss = float(loss_sum) / max(loss_count, 1)
                monitor.scalars(summary, step, prefix="val/")
                first = next(iter(eval_batches()))
                shown = predict(state, sharding.shard_batch(first, mesh))
                for tag, grid in _images_for_tensorboard(shown, ec.num_images).items():
                    monitor.image(tag, grid, step)
                history.append(epoch=max(epoch, 1), train_loss=train_loss, val_loss=summary["val_loss"],
                               val_SSIM=summary["val_SSIM"], val_PSNR=summary["val_PSNR"],
                               lr=float(metrics["lr"]), time_s=time.perf_counter() - epoch_start)
                print(f"epoch {epoch} step {step}: train_loss {train_loss:.5g} | "
                      f"val_loss {summary['val_loss']:.5g} | SSIM {summary['val_SSIM']:.4f} "
                      f"(input {summary['input_SSIM']:.4f}) | PSNR {summary['val_PSNR']:.2f} dB "
                      f"(input {summary['input_PSNR']:.2f})", flush=True)
                save(step, epoch, summary)
                loss_sum, loss_count, epoch_start = jnp.zeros(()), 0, time.perf_counter()
            elif config.checkpoint.every_steps and step % config.checkpoint.every_steps == 0:
                save(step, epoch)
            if guard.should_stop_synced(step) and not last:
                log.warning("stopping at step %d on request; saving a checkpoint to resume from", step)
                save(step, epoch)
                break
        if summary:
            monitor.hparams(
                {"loss": tc.loss, "batch_size": tc.batch_size, "lr": tc.learning_rate,
                 "base_channels": config.model.base_channels, "corruption": config.corruption.mode},
                {f"hparam/{k}": v for k, v in summary.items() if k.startswith(("val_", "input_"))},
            )
    return summary
