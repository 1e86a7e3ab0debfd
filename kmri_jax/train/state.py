"""The training state: a pytree of arrays, and the static pieces that go with it.

The loop uses Flax NNX in the functional style: the model is split once into a static
``graphdef`` and array states (``params``, ``batch_stats``); the jitted step merges them,
runs, and splits again. Only :class:`TrainState` crosses jit boundaries and checkpoints.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from kmri_jax import models


T = TypeVar("T")


class TrainState(NamedTuple):
    """Everything that changes during training (a pytree; checkpointed whole).

    step: int32 scalar, number of optimizer updates done.
    params / batch_stats: the U-Net's ``nnx.Param`` and ``nnx.BatchStat`` states.
    opt_state: the Optax state of ``params``.
    rng: uint32 ``[2]`` raw root key of the run; the step key is ``fold_in(rng, step)``.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array


class ModelDefs(NamedTuple):
    """Static description of the network: its graph definitions in training and in
    evaluation mode (what it computes, a residual connection included, is the model's own)."""

    train: Any
    eval: Any


def learning_rate_schedule(
    *, learning_rate: float, end_learning_rate: float, total_steps: int, steps_per_epoch: int,
    per_epoch: bool,
) -> optax.Schedule:
    """Cosine decay from ``learning_rate`` to ``end_learning_rate`` over the run.

    ``per_epoch=True`` reproduces the seed's ``CosineAnnealingLR`` stepped once per epoch
    (constant within an epoch); otherwise the decay is smooth over ``total_steps``.
    """
    alpha = end_learning_rate / learning_rate
    if not per_epoch:
        return optax.cosine_decay_schedule(learning_rate, max(total_steps, 1), alpha=alpha)
    num_epochs = max(total_steps // max(steps_per_epoch, 1), 1)
    by_epoch = optax.cosine_decay_schedule(learning_rate, num_epochs, alpha=alpha)
    return lambda step: by_epoch(step // steps_per_epoch)


def create_state(
    seed: int, *, model_config: Any, tx: optax.GradientTransformation, in_channels: int = 2
) -> tuple[TrainState, ModelDefs]:
    """A fresh state: the network of ``model_config`` (``in_channels``: see
    :func:`kmri_jax.train.networks.input_channels`) initialised from ``seed``, Optax state,
    root key.

    The model key and the run's root key are derived from ``seed`` independently.
    """
    model_key, run_key = jax.random.split(jax.random.key(seed))

    def build() -> nnx.Module:
        model = models.build(model_config, rngs=nnx.Rngs(params=model_key),
                             in_channels=in_channels)
        model.train()
        return model

    # Graph definitions from an abstract model; the arrays from one compiled initialiser
    # (eager initialisation compiled ~60 small programs: 10-18 s on a 2-core CPU).
    abstract = nnx.eval_shape(build)
    train_def = nnx.graphdef(abstract)
    eval_def = nnx.graphdef(nnx.view(abstract, use_running_average=True))
    params, batch_stats = jax.jit(lambda: nnx.split(build(), nnx.Param, nnx.BatchStat)[1:])()
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=batch_stats,
        opt_state=jax.jit(tx.init)(params),
        rng=jax.random.key_data(run_key),
    )
    return state, ModelDefs(train=train_def, eval=eval_def)


def run_model(defs: ModelDefs, params: Any, batch_stats: Any, fn: Callable[[nnx.Module], T], *,
              train: bool) -> tuple[T, Any]:
    """``fn(network)`` with the network merged from its state: ``(fn's result, batch_stats)``.

    ``train`` selects batch statistics (and returns updated running averages) or the running
    averages. ``fn`` decides what the network reads and how its outputs are used
    (:func:`kmri_jax.train.networks.predict`).
    """
    model = nnx.merge(defs.train if train else defs.eval, params, batch_stats, copy=True)
    out = fn(model)  # copy=True: fresh Variables in this trace
    return out, nnx.state(model, nnx.BatchStat)
