"""The compiled steps: corrupt on the device, run the network, loss, update / metrics.

``make_train_step``, ``make_eval_step`` and ``make_baseline_step`` close over static pieces
(graph definitions, optimizer, options) and return pure functions of arrays, which the loop
jits once.

Evaluation reports methods side by side on the same fixed corruption: the network (``model``:
keys ``ssim``, ``psnr``, ``nrmse``, ``loss``), and, computed once per run since they do not
change while the network trains, the corrupted input (``input_*``), the oracle bound (the true
motion undone, zero-filled: ``oracle_*``) and the training-free estimate
(:func:`kmri_jax.correct.estimate_motion` then the exact undo, zero-filled: ``estimate_*``).
Methods that estimate motion also report the displacement RMS error over the acquired lines
after the best constant (``disp_rmse``, ``estimate_disp_rmse``; ``input_disp_rmse`` is that of
estimating no motion at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from kmri_jax import correct
from kmri_jax.train import metrics
from kmri_jax.train.augment import augment as augment_images
from kmri_jax.train.corruption import Corruption
from kmri_jax.train.losses import LossFn, loss_from_config
from kmri_jax.train.networks import SEARCHING_KINDS, Network, channels, input_scale
from kmri_jax.train.state import ModelDefs, TrainState, run_model

Batch = Mapping[str, jax.Array]
BASELINES = ("input", "oracle", "estimate")
SEARCHED = "searched"
"""Batch key of the search's displacement ``[B, ny]``, when the baseline step already found it."""
METHODS = (*BASELINES, "model")


def reuses_search(kind: str, methods: Sequence[str]) -> bool:
    """Whether the evaluation's network step can take the ``estimate`` row's displacements
    (:data:`SEARCHED`) instead of searching again: a ``kind`` that undoes the search, and the
    ``estimate`` row among ``methods``."""
    return kind in SEARCHING_KINDS and "estimate" in methods


def searched_extras(displacements: Sequence[jax.Array]) -> list[dict[str, jax.Array]] | None:
    """The estimate row's displacements, one ``[B, ny]`` per evaluation batch, as the per-batch
    ``extras`` of :func:`kmri_jax.train.evaluation.run_eval` (None when there are none)."""
    return [{SEARCHED: d} for d in displacements] or None


def displacement_error(estimate: jax.Array, truth: jax.Array, mask: jax.Array) -> jax.Array:
    """RMS of ``estimate - truth`` over the acquired lines after the best constant: ``[B]``
    (the standard deviation of the error; a global shift is not identifiable)."""
    m = mask.astype(jnp.float32)
    n = jnp.maximum(jnp.sum(m, -1), 1.0)
    e = (estimate - truth) * m
    mean = jnp.sum(e, -1) / n
    return jnp.sqrt(jnp.maximum(jnp.sum(m * (e - mean[:, None]) ** 2, -1) / n, 0.0))


def displacement_l1(estimate: jax.Array, truth: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean absolute error (px) over the acquired lines, both sides with zero mean there."""
    m = mask.astype(jnp.float32)
    n = jnp.maximum(jnp.sum(m, -1, keepdims=True), 1.0)
    centre = lambda d: (d - jnp.sum(d * m, -1, keepdims=True) / n) * m  # noqa: E731
    return jnp.sum(jnp.abs(centre(estimate) - centre(truth))) / jnp.sum(n)


def make_train_step(
    defs: ModelDefs,
    tx: optax.GradientTransformation,
    *,
    loss_fn: LossFn,
    corruption: Corruption,
    fixed_root: jax.Array,
    network: Network = Network(),
    schedule: optax.Schedule | None = None,
    augment: tuple[str, ...] = (),
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
    """``train_step(state, batch) -> (state, metrics)``, to be jitted.

    Metrics: ``loss``, ``grad_norm``, ``lr`` (with a schedule), ``step`` (the step just
    taken, 1-based) and ``finite`` (loss, gradient norm and updated parameters all finite:
    the loop stops a diverging run on it without an extra host sync); ``disp_l1`` for networks
    that predict motion.

    The step key is ``fold_in(state.rng, state.step)``; in ``fixed`` mode the corruption is
    keyed by ``fixed_root`` and each sample's (volume, slice, combination) instead.
    ``augment`` (names of :mod:`.augment`) transforms the clean slices first (key
    ``fold_in(step key, 1)``); ``estimate_unet``'s spoiled displacement is keyed by
    ``fold_in(step key, 2)``.
    """

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        step_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        key = step_key if corruption.mode == "fresh" else fixed_root
        if augment:
            batch = {**batch, "image": augment_images(augment, jax.random.fold_in(step_key, 1),
                                                      batch["image"])}
        corrupted, _ = corruption.corrupt_batch(key, batch, mode=corruption.mode)

        def objective(params):
            def run(fn):
                return run_model(defs, params, state.batch_stats, fn, train=True)

            captured = {}

            def run_capturing(fn):
                out, captured["batch_stats"] = run(fn)
                return out

            pred = network.predict(run_capturing, corrupted,
                                   train_key=jax.random.fold_in(step_key, 2))
            loss = loss_fn(pred.kspace, pred.target, batch["valid_shape"])
            aux = {}
            if pred.displacement is not None:
                aux["disp_l1"] = displacement_l1(pred.displacement, corrupted.displacement,
                                                 corrupted.mask)
                loss = loss + network.displacement_weight * aux["disp_l1"]
            return loss, (captured["batch_stats"], aux)

        (loss, (batch_stats, aux)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & jnp.isfinite(
            optax.tree.norm(params))
        out = {"loss": loss, "grad_norm": grad_norm, "step": state.step + 1, "finite": finite,
               **aux}
        if schedule is not None:
            out["lr"] = jnp.asarray(schedule(state.step), jnp.float32)
        new_state = state._replace(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
        )
        return new_state, out

    return train_step


def _per_sample_loss(loss_fn: LossFn, pred: jax.Array, target: jax.Array, valid: jax.Array
                     ) -> jax.Array:
    return jax.vmap(lambda p, t, v: loss_fn(p[None], t[None], v[None]))(pred, target, valid)


def _eval_predict(defs: ModelDefs, network: Network, state: TrainState, corrupted, batch: Batch):
    def run(fn):
        return run_model(defs, state.params, state.batch_stats, fn, train=False)[0]

    return network.predict(run, corrupted, searched=batch.get(SEARCHED))


def make_eval_step(
    defs: ModelDefs,
    *,
    loss_fn: LossFn,
    corruption: Corruption,
    eval_root: jax.Array,
    network: Network = Network(),
) -> Callable[[TrainState, Batch], dict[str, jax.Array]]:
    """``eval_step(state, batch) -> {name: [B]}`` the network's per-sample loss and metrics.

    Corruption is fixed per (volume, slice, combination) under ``eval_root``. Keys: ``loss``,
    ``ssim``, ``psnr``, ``nrmse`` against the clean image; for networks that predict motion also
    ``disp_rmse`` and ``motion_*`` (their displacement undone, zero-filled: the motion
    estimate alone); ``weight`` (0 for padding) and ``combination``. A batch may carry the
    search's displacement under :data:`SEARCHED` (the baseline step's ``estimate_displacement``
    of the same batch): networks that undo it reuse it instead of searching again.
    """

    def eval_step(state: TrainState, batch: Batch) -> dict[str, jax.Array]:
        corrupted, _ = corruption.corrupt_batch(eval_root, batch, mode="fixed")
        pred = _eval_predict(defs, network, state, corrupted, batch)
        valid = batch["valid_shape"]
        out = {"loss": _per_sample_loss(loss_fn, pred.kspace, pred.target, valid)}
        out.update(metrics.image_metrics(pred.kspace, pred.target, valid))
        if pred.displacement is not None:  # the network's motion estimate alone, zero-filled
            out["disp_rmse"] = displacement_error(pred.displacement, corrupted.displacement,
                                                  corrupted.mask)
            undone = channels(correct.undo_motion(corrupted.kspace, pred.displacement),
                              pred.scale)
            out.update({f"motion_{k}": v for k, v in
                        metrics.image_metrics(undone, pred.target, valid).items()})
        out["weight"] = batch["weight"]
        out["combination"] = batch["combination"]
        return out

    return eval_step


def make_baseline_step(
    *,
    corruption: Corruption,
    eval_root: jax.Array,
    methods: Sequence[str] = BASELINES,
    estimate_options: Mapping[str, Any] | None = None,
) -> Callable[[Batch], dict[str, jax.Array]]:
    """``baseline_step(batch) -> {name: [B]}``: the methods without a network, on the same fixed
    corruption as :func:`make_eval_step`: ``input_*``, ``oracle_*``, ``estimate_*`` (SSIM,
    PSNR, NRMSE), ``estimate_disp_rmse`` / ``input_disp_rmse`` (px) and the estimated
    displacement ``estimate_displacement [B, ny]``."""
    unknown = set(methods) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; baselines are {BASELINES}")
    estimate = jax.vmap(lambda k, m: correct.estimate_motion(k, m, **(estimate_options or {})))

    def baseline_step(batch: Batch) -> dict[str, jax.Array]:
        corrupted, _ = corruption.corrupt_batch(eval_root, batch, mode="fixed")
        valid = batch["valid_shape"]
        scale = input_scale(corrupted, "corrupted")
        target = channels(corrupted.clean, scale)
        out: dict[str, jax.Array] = {}

        def add(name, kspace):
            found = metrics.image_metrics(channels(kspace, scale), target, valid)
            out.update({f"{name}_{k}": v for k, v in found.items()})

        if "input" in methods:
            add("input", corrupted.kspace)
            out["input_disp_rmse"] = displacement_error(
                jnp.zeros_like(corrupted.displacement), corrupted.displacement, corrupted.mask)
        if "oracle" in methods:
            add("oracle", correct.oracle(corrupted))
        if "estimate" in methods:
            d = estimate(corrupted.kspace, corrupted.mask)
            add("estimate", correct.undo_motion(corrupted.kspace, d))
            out["estimate_disp_rmse"] = displacement_error(d, corrupted.displacement,
                                                           corrupted.mask)
            out["estimate_displacement"] = d  # [B, ny]: for figures
        out["weight"] = batch["weight"]
        out["combination"] = batch["combination"]
        return out

    return baseline_step


def make_predict(
    defs: ModelDefs, *, corruption: Corruption, eval_root: jax.Array,
    network: Network = Network(),
) -> Callable[[TrainState, Batch], dict[str, jax.Array]]:
    """``predict(state, batch) -> {'input', 'output', 'target'}`` k-space channels ``[B, 2, ny, nx]``
    (divided by the input scale), and ``'oracle'``: the true motion undone. The same fixed
    corruption as evaluation; used for the images of TensorBoard and the figures. A batch may
    carry :data:`SEARCHED`, as in :func:`make_eval_step`."""

    def predict(state: TrainState, batch: Batch) -> dict[str, jax.Array]:
        corrupted, _ = corruption.corrupt_batch(eval_root, batch, mode="fixed")
        pred = _eval_predict(defs, network, state, corrupted, batch)
        return {"input": channels(corrupted.kspace, pred.scale), "output": pred.kspace,
                "target": pred.target, "oracle": channels(correct.oracle(corrupted), pred.scale)}

    return predict


def compiled_eval(config: Any, defs: ModelDefs, *, loss_fn: LossFn | None = None,
                  corruption: Corruption | None = None) -> tuple[Callable, Callable]:
    """The jitted ``(eval_step, predict)`` of a run's config: its network, loss and corruption
    (built from the config unless given) and the fixed evaluation key ``key(config.eval.seed)``,
    the same in the training loop and in ``kmri-evaluate``."""
    loss_fn = loss_from_config(config.train) if loss_fn is None else loss_fn
    corruption = Corruption.from_config(config) if corruption is None else corruption
    network = Network.from_config(config)
    eval_root = jax.random.key(int(config.eval.seed))
    eval_step = make_eval_step(defs, loss_fn=loss_fn, corruption=corruption, eval_root=eval_root,
                               network=network)
    predict = make_predict(defs, corruption=corruption, eval_root=eval_root, network=network)
    return jax.jit(eval_step), jax.jit(predict)


def compiled_baseline(config: Any, *, methods: Sequence[str] = BASELINES,
                      corruption: Corruption | None = None) -> Callable:
    """The jitted baseline step of a run's config (see :func:`make_baseline_step`)."""
    corruption = Corruption.from_config(config) if corruption is None else corruption
    return jax.jit(make_baseline_step(
        corruption=corruption, eval_root=jax.random.key(int(config.eval.seed)),
        methods=methods, estimate_options=estimate_options(config)))


def estimate_options(config: Any) -> dict[str, Any]:
    """``config.correct`` as keyword options of :func:`kmri_jax.correct.estimate_motion`."""
    return dict(config.correct)
