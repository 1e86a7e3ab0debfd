"""U-Net: parameter count, shapes, and agreement with a PyTorch reference of the seed's model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from kmri_jax.models import UNet, count_params
from kmri_jax.models.unet import conv3x3_im2col, resolve_conv
from kmri_jax.models.torch_weights import default_key_map, torch_to_nnx_state


def test_parameter_count_matches_seed() -> None:
    model = nnx.eval_shape(lambda: UNet(rngs=nnx.Rngs(0)))
    assert count_params(model) == 1_926_754


def test_parameter_count_formula_small_base() -> None:
    """Independent count: per block 9*cin*cout + 9*cout^2 + 4*cout, up 4*cin*cout + cout."""

    def block(cin: int, cout: int) -> int:
        return 9 * cin * cout + 9 * cout * cout + 4 * cout

    c = 4
    expected = (
        block(2, c) + block(c, 2 * c) + block(2 * c, 4 * c) + block(4 * c, 8 * c)
        + (4 * 8 * c * 4 * c + 4 * c) + block(8 * c, 4 * c)
        + (4 * 4 * c * 2 * c + 2 * c) + block(4 * c, 2 * c)
        + (4 * 2 * c * c + c) + block(2 * c, c)
        + (c * 2 + 2)
    )
    model = nnx.eval_shape(lambda: UNet(rngs=nnx.Rngs(0), base_channels=c))
    assert count_params(model) == expected


@pytest.mark.parametrize("shape", [(13, 21), (16, 8), (5, 3)])
def test_output_shape_equals_input_shape(shape: tuple[int, int]) -> None:
    model = UNet(rngs=nnx.Rngs(0), base_channels=2)
    x = jnp.ones((2, 2, *shape), jnp.float32)
    out = jax.eval_shape(lambda m, x: m(x), model, x)
    assert out.shape == x.shape and out.dtype == jnp.float32


def test_wrong_input_shape_is_a_clear_error() -> None:
    model = UNet(rngs=nnx.Rngs(0), base_channels=2)
    with pytest.raises(ValueError, match=r"\[B, 2, H, W\]"):
        model(jnp.ones((1, 8, 8, 2)))


# ---------------------------------------------------------------------------------------------
# PyTorch reference: the seed's UNet2D written out independently.


def _torch_unet(base: int):  # noqa: ANN202 - torch types only exist when torch is installed
    from torch_reference import SeedUNet

    return SeedUNet(base)


@pytest.fixture(scope="module")
def torch_and_model():  # noqa: ANN201
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    base = 4
    ref = _torch_unet(base)
    assert sum(p.numel() for p in ref.parameters()) == count_params(
        nnx.eval_shape(lambda: UNet(rngs=nnx.Rngs(0), base_channels=base))
    )
    # Non-trivial BatchNorm statistics and affine parameters.
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    state_dict = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}
    model = UNet(rngs=nnx.Rngs(1), base_channels=base)
    nnx.update(model, torch_to_nnx_state(state_dict, model))
    return torch, ref, model


@pytest.mark.parametrize("resample, conv", [("einsum", "im2col"), ("einsum", "lax"),
                                            ("lax", "lax")])
def test_matches_pytorch_reference_eval(torch_and_model, resample: str, conv: str) -> None:  # noqa: ANN001
    torch, ref, model = torch_and_model
    # Same parameters, other implementations of pooling / up-sampling / the 3x3 convolutions.
    other = UNet(rngs=nnx.Rngs(2), base_channels=4, resample=resample, conv=conv)
    nnx.update(other, nnx.state(model))
    model = other
    x = np.random.default_rng(0).normal(size=(2, 2, 12, 19)).astype(np.float32)
    ref.eval()
    model.eval()
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    got = np.asarray(model(jnp.asarray(x)))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_matches_pytorch_reference_train_mode(torch_and_model) -> None:  # noqa: ANN001
    """Training-mode outputs (batch statistics) agree, and running means update alike."""
    torch, ref, model = torch_and_model
    import copy

    ref = copy.deepcopy(ref)
    model = nnx.clone(model)
    x = np.random.default_rng(1).normal(size=(2, 2, 16, 16)).astype(np.float32)
    ref.train()
    model.train()
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    got = np.asarray(model(jnp.asarray(x)))
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(
        np.asarray(model.enc1.bn1.mean[...]), ref.enc1.block[1].running_mean.numpy(), atol=1e-5
    )
    # torch updates running_var with the unbiased variance (n / (n - 1)); flax with the biased.
    n = 2 * 16 * 16
    var_ref, var_ours = ref.enc1.block[1].running_var.numpy(), np.asarray(model.enc1.bn1.var[...])
    prev = torch_and_model[1].enc1.block[1].running_var.numpy()
    np.testing.assert_allclose((var_ours - 0.9 * prev) * n / (n - 1), var_ref - 0.9 * prev, atol=1e-5)


def test_torch_weights_errors_name_the_problem(torch_and_model) -> None:  # noqa: ANN001
    _, ref, model = torch_and_model
    state_dict = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    del state_dict["up2.bias"]
    with pytest.raises(KeyError, match="up2.bias"):
        torch_to_nnx_state(state_dict, model)
    wide = nnx.eval_shape(lambda: UNet(rngs=nnx.Rngs(0), base_channels=8))
    full = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    with pytest.raises(ValueError, match="base_channels"):
        torch_to_nnx_state(full, wide)
    assert len(default_key_map()) == 78


def test_remat_gives_the_same_loss_gradients_and_batch_statistics() -> None:
    """model.remat recomputes block activations in the backward pass: same function."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 2, 16, 24)), jnp.float32)
    target = jnp.asarray(np.random.default_rng(1).normal(size=(2, 2, 16, 24)), jnp.float32)

    def loss_and_grads(remat: bool):
        model = UNet(rngs=nnx.Rngs(3), base_channels=4, remat=remat)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)

        def loss(p):
            m = nnx.merge(graphdef, p, rest, copy=True)
            out = jnp.mean(jnp.abs(m(x) - target))
            return out, nnx.state(m, nnx.BatchStat)

        (value, stats), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
        return value, grads, stats

    v0, g0, s0 = loss_and_grads(False)
    v1, g1, s1 = loss_and_grads(True)
    np.testing.assert_allclose(float(v1), float(v0), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4,
                                   atol=1e-6 * float(np.max(np.abs(np.asarray(b)))) + 1e-9)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s0)):  # running stats updated alike
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    assert any(float(jnp.max(jnp.abs(leaf))) > 0 for leaf in jax.tree.leaves(g0))


def test_im2col_conv_matches_scipy_correlate() -> None:
    """conv3x3_im2col is the zero-padded 3x3 cross-correlation summed over input channels."""
    from scipy.signal import correlate

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 7, 9, 3)).astype(np.float32)
    k = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    got = np.asarray(conv3x3_im2col(jnp.asarray(x), jnp.asarray(k)))
    ref = np.zeros((2, 7, 9, 4))
    for b in range(2):
        for o in range(4):
            for c in range(3):
                ref[b, :, :, o] += correlate(x[b, :, :, c].astype(np.float64), k[:, :, c, o],
                                             mode="same")
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_im2col_gradients_match_finite_differences() -> None:
    with jax.enable_x64(True):
        rng = np.random.default_rng(4)
        x = jnp.asarray(rng.normal(size=(1, 5, 6, 2)))
        k = jnp.asarray(rng.normal(size=(3, 3, 2, 3)))
        w = jnp.asarray(rng.normal(size=(1, 5, 6, 3)))

        def loss(x, k):
            return jnp.sum(w * jnp.tanh(conv3x3_im2col(x, k)))

        gx, gk = jax.grad(loss, argnums=(0, 1))(x, k)
        eps = 1e-6
        for arr, grad, arg in ((x, gx, 0), (k, gk, 1)):
            flat = np.asarray(arr).ravel()
            for i in rng.choice(flat.size, 6, replace=False):
                step = np.zeros_like(flat)
                step[i] = eps
                plus = [x, k]
                minus = [x, k]
                plus[arg] = jnp.asarray((flat + step).reshape(arr.shape))
                minus[arg] = jnp.asarray((flat - step).reshape(arr.shape))
                fd = (loss(*plus) - loss(*minus)) / (2 * eps)
                np.testing.assert_allclose(np.asarray(grad).ravel()[i], fd, rtol=1e-6, atol=1e-9)


def test_conv_option_rejects_bad_values() -> None:
    assert resolve_conv("im2col") == "im2col"
    with pytest.raises(ValueError, match="conv must be one of"):
        UNet(rngs=nnx.Rngs(0), base_channels=4, conv="winograd")
