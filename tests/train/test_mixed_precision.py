"""Mixed precision: ``model.compute_dtype = "bfloat16"`` computes the U-Net in bfloat16 and
keeps everything else (parameters, optimizer state, BatchNorm statistics, the simulator's FFTs,
the loss) in float32 / complex64.

Tolerance of the loss: measured on this test's problem (32 x 48, base 4 channels, batch 4, the
seed's plain U-Net, masked L1, Adam 1e-3, fresh corruption; 20 steps from the same
initialisation and the same batches), the bfloat16 loss differed from the float32 loss by at
most 0.35% (relative) at every step, typically 0.1%. bfloat16 keeps 8 significant bits, a
relative rounding step of 2**-8 = 0.39%; the loss is a mean over ~10^4 entries, so rounding
errors of single activations mostly average out, while the parameters drift apart slowly as the
two runs take slightly different updates. We allow 1% per step: about 3x the largest difference
seen, and well below the 3-10% the loss moves between consecutive steps here, so a
bfloat16-specific bug (e.g. an overflowed or badly rounded loss or normalisation) still fails.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from kmri_jax import sim
from kmri_jax.train import losses
from kmri_jax.train.state import create_state
from kmri_jax.train.corruption import Corruption
from kmri_jax.train.step import make_train_step

STEPS = 10
LOSS_RTOL = 0.01
METHOD = "breathmetrics"


def _batch(rng, b=4, ny=32, nx=48):
    """Clean phantom-like slices (ellipses) with per-sample TR, per the batch contract."""
    yy, xx = np.mgrid[:ny, :nx]
    images = np.stack([
        ((yy - ny / 2 - rng.integers(-4, 5)) ** 2 / 90 + (xx - nx / 2) ** 2 / 200 < 1)
        .astype(np.float32) * rng.uniform(0.5, 1.0) for _ in range(b)
    ])
    return dict(image=images, valid_shape=np.tile([ny - 4, nx - 6], (b, 1)).astype(np.int32),
                tr=rng.uniform(2.0, 3.0, b).astype(np.float32), te=np.full(b, 0.03, np.float32),
                volume=np.arange(b, dtype=np.int32), slice=np.arange(b, dtype=np.int32),
                combination=np.full(b, -1, np.int32), weight=np.ones(b, np.float32))


def _setup(config, dtype):
    config.model.compute_dtype = dtype
    config.model.residual = False  # random start: large, quickly falling loss
    tx = optax.adam(1e-3)
    state, defs = create_state(0, model_config=config.model, tx=tx)
    corruption = Corruption(mode="fresh", options=sim.CorruptOptions(method=METHOD))
    step = make_train_step(defs, tx, loss_fn=losses.get_loss("seed_masked_l1"),
                           corruption=corruption, fixed_root=jax.random.key(1))
    return state, step


def _sub_jaxprs(value):
    """Jaxprs nested in an equation parameter (pjit, custom_jvp/vjp, cond branches, ...)."""
    if hasattr(value, "eqns"):
        yield value
    elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        yield value.jaxpr
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _sub_jaxprs(v)


def _operand_dtypes(jaxpr, primitive_prefix):
    """Input dtypes of every equation whose primitive name starts with ``primitive_prefix``."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name.startswith(primitive_prefix):
            found.append(tuple(str(v.aval.dtype) for v in eqn.invars))
        for param in eqn.params.values():
            for sub in _sub_jaxprs(param):
                found += _operand_dtypes(sub, primitive_prefix)
    return found


def _float_dtypes(tree):
    return {str(x.dtype) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}


def test_bfloat16_loss_tracks_float32(config):
    runs = {}
    for dtype in ("float32", "bfloat16"):
        state, step = _setup(config.copy_and_resolve_references(), dtype)
        step = jax.jit(step)
        rng = np.random.default_rng(0)  # the same batches for both runs
        seen = []
        for _ in range(STEPS):
            state, metrics = step(state, _batch(rng))
            seen.append(float(metrics["loss"]))
        runs[dtype] = (np.array(seen), state)

    f32, state32 = runs["float32"]
    bf16, state16 = runs["bfloat16"]
    assert np.all(np.isfinite(bf16))
    np.testing.assert_allclose(bf16, f32, rtol=LOSS_RTOL)
    assert bf16[-1] < 0.8 * bf16[0]  # and it learns

    # Parameters, optimizer state and BatchNorm statistics stay float32 in the bf16 run.
    assert _float_dtypes(state16.params) == {"float32"}
    assert _float_dtypes(state16.opt_state) == {"float32"}
    assert _float_dtypes(state16.batch_stats) == {"float32"}
    assert _float_dtypes(state32.params) == {"float32"}


def test_bfloat16_step_keeps_simulator_in_float32(config):
    """In the traced bf16 step, every FFT runs in single precision (complex64, or float32 for
    the real-input rfft of the clean image) and the convolutions in bfloat16."""
    state, step = _setup(config, "bfloat16")
    batch = _batch(np.random.default_rng(0))
    jaxpr = jax.make_jaxpr(step)(state, batch).jaxpr

    ffts = _operand_dtypes(jaxpr, "fft")
    assert ffts, "no FFT found in the train step"
    assert all(d in (("complex64",), ("float32",)) for d in ffts), ffts

    convs = _operand_dtypes(jaxpr, "conv_general_dilated")
    assert convs, "no convolution found in the train step"
    assert all(d == ("bfloat16", "bfloat16") for d in convs), convs

    # The float32 config computes its convolutions in float32 (the switch really switches).
    config.model.compute_dtype = "float32"
    state32, step32 = _setup(config, "float32")
    convs32 = _operand_dtypes(jax.make_jaxpr(step32)(state32, batch).jaxpr, "conv_general_dilated")
    assert all(d == ("float32", "float32") for d in convs32)
