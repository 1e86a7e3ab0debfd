"""The compiled steps: corrupt on the device, run the U-Net, loss, update / metrics.

``make_train_step`` and ``make_eval_step`` close over static pieces (graph definitions,
optimizer, options) and return pure functions of arrays, which the loop jits once.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from kmri_jax.train import metrics
from kmri_jax.train.corruption import Corruption, network_io
from kmri_jax.train.losses import LossFn, loss_from_config
from kmri_jax.train.state import ModelDefs, TrainState, apply_model

Batch = Mapping[str, jax.Array]


def make_train_step(
    defs: ModelDefs,
    tx: optax.GradientTransformation,
    *,
    loss_fn: LossFn,
    corruption: Corruption,
    fixed_root: jax.Array,
    schedule: optax.Schedule | None = None,
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
    """``train_step(state, batch) -> (state, metrics)``, to be jitted.

    Metrics: ``loss``, ``grad_norm``, ``lr`` (with a schedule), ``step`` (the step just
    taken, 1-based) and ``finite`` (loss, gradient norm and updated parameters all finite:
    the loop stops a diverging run on it without an extra host sync).

    The step key is ``fold_in(state.rng, state.step)``; in ``fixed`` mode the corruption is
    keyed by ``fixed_root`` and each sample's (volume, slice, combination) instead.
    """

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        step_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        key = step_key if corruption.mode == "fresh" else fixed_root
        corrupted, _ = corruption.corrupt_batch(key, batch, mode=corruption.mode)
        x, target, _ = network_io(corrupted)

        def objective(params):
            pred, batch_stats = apply_model(defs, params, state.batch_stats, x, train=True)
            return loss_fn(pred, target, batch["valid_shape"]), batch_stats

        (loss, batch_stats), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & jnp.isfinite(
            optax.tree.norm(params))
        out = {"loss": loss, "grad_norm": grad_norm, "step": state.step + 1, "finite": finite}
        if schedule is not None:
            out["lr"] = jnp.asarray(schedule(state.step), jnp.float32)
        new_state = state._replace(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
        )
        return new_state, out

    return train_step


def make_eval_step(
    defs: ModelDefs,
    *,
    loss_fn: LossFn,
    corruption: Corruption,
    eval_root: jax.Array,
) -> Callable[[TrainState, Batch], dict[str, jax.Array]]:
    """``eval_step(state, batch) -> {name: [B]}`` per-sample loss and image metrics.

    Corruption is fixed per (volume, slice, combination) under ``eval_root``. Metrics are
    for the network output (``ssim``, ``psnr``, ``nrmse``) and for the corrupted input
    (``input_ssim``, ...), both against the clean image; padded samples carry ``weight`` 0.
    """

    def per_sample_loss(pred, target, valid_shape):
        return jax.vmap(lambda p, t, v: loss_fn(p[None], t[None], v[None]))(pred, target, valid_shape)

    def eval_step(state: TrainState, batch: Batch) -> dict[str, jax.Array]:
        corrupted, _ = corruption.corrupt_batch(eval_root, batch, mode="fixed")
        x, target, _ = network_io(corrupted)
        pred, _ = apply_model(defs, state.params, state.batch_stats, x, train=False)
        valid = batch["valid_shape"]
        out = {"loss": per_sample_loss(pred, target, valid)}
        out.update(metrics.image_metrics(pred, target, valid))
        out.update({f"input_{k}": v for k, v in metrics.image_metrics(x, target, valid).items()})
        out["weight"] = batch["weight"]
        out["combination"] = batch["combination"]
        return out

    return eval_step


def make_predict(
    defs: ModelDefs, *, corruption: Corruption, eval_root: jax.Array,
) -> Callable[[TrainState, Batch], dict[str, jax.Array]]:
    """``predict(state, batch) -> {'input', 'output', 'target'}`` k-space channels ``[B, 2, ny, nx]``.

    The same fixed corruption as evaluation; used for the images shown in TensorBoard.
    """

    def predict(state: TrainState, batch: Batch) -> dict[str, jax.Array]:
        corrupted, _ = corruption.corrupt_batch(eval_root, batch, mode="fixed")
        x, target, _ = network_io(corrupted)
        pred, _ = apply_model(defs, state.params, state.batch_stats, x, train=False)
        return {"input": x, "output": pred, "target": target}

    return predict


def compiled_eval(config: Any, defs: ModelDefs, *, loss_fn: LossFn | None = None,
                  corruption: Corruption | None = None) -> tuple[Callable, Callable]:
    """The jitted ``(eval_step, predict)`` of a run's config: its loss and corruption (built
    from the config unless given) and the fixed evaluation key ``key(config.eval.seed)``, the
    same in the training loop and in ``kmri-evaluate``."""
    loss_fn = loss_from_config(config.train) if loss_fn is None else loss_fn
    corruption = Corruption.from_config(config) if corruption is None else corruption
    eval_root = jax.random.key(int(config.eval.seed))
    eval_step = make_eval_step(defs, loss_fn=loss_fn, corruption=corruption, eval_root=eval_root)
    predict = make_predict(defs, corruption=corruption, eval_root=eval_root)
    return jax.jit(eval_step), jax.jit(predict)
