"""model.input = "coils": every coil's data beside the combined view, in training, evaluation
and kmri-infer; channel layout against numpy, the residual start, and one clear error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from kmri_jax import models, sim
from kmri_jax.config import ConfigValueError, base_config
from kmri_jax.train import networks
from tiny_run import config_with, tiny_config


def test_coil_channels_stack_re_im_per_coil():
    rng = np.random.default_rng(0)
    coils = (rng.random((2, 3, 4, 5)) + 1j * rng.random((2, 3, 4, 5))).astype(np.complex64)
    scale = np.array([2.0, 4.0], np.float32)
    got = np.asarray(networks.coil_channels(jnp.asarray(coils), jnp.asarray(scale)))
    assert got.shape == (2, 6, 4, 5)
    for c in range(3):
        np.testing.assert_allclose(got[:, 2 * c], coils[:, c].real / scale[:, None, None])
        np.testing.assert_allclose(got[:, 2 * c + 1], coils[:, c].imag / scale[:, None, None])


@pytest.mark.parametrize("kind", ["kspace_unet", "image_unet"])
def test_coil_network_starts_at_the_combined_view_and_reads_every_coil(kind):
    c = base_config()
    c.model.kind, c.model.input, c.model.residual = kind, "coils", True
    c.model.base_channels = 4
    c.corruption.coils, c.corruption.motion_states = 3, 2
    network = networks.Network.from_config(c)
    assert network.in_channels == 2 * 3
    model = models.build(c.model, rngs=nnx.Rngs(params=0), in_channels=network.in_channels)
    model.eval()
    maps = sim.coil_maps((16, 24), n_coils=3)
    image = np.random.default_rng(1).random((2, 16, 24)).astype(np.float32)
    params = sim.sample_params(jax.random.key(2), 2)
    params = params._replace(amplitude_pe_px=0.0, rotation_deg=0.0, b0_hz=0.0)
    out = jax.vmap(lambda k, x, p: sim.corrupt(k, x, p, coil_maps=maps, motion_states=2))(
        jax.random.split(jax.random.key(3), 2), jnp.asarray(image), params)
    view = sim.coils.combined_view(out, maps)
    scale = networks.input_scale(view, "corrupted")

    def predict(coil_kspace):
        return networks.forward(lambda f: f(model), view.kspace, view.mask, scale, kind=kind,
                                coil_kspace=coil_kspace)[0]

    assert model.enc1.conv1.kernel[...].shape[2] == 6            # the coils' 2C channels
    # Untrained, residual: the combined corrupted input comes back (kspace_unet: its channels;
    # image_unet: its zero-filled image, as k-space channels).
    np.testing.assert_allclose(np.asarray(predict(view.coil_kspace)),
                               np.asarray(networks.channels(view.kspace, scale)), atol=1e-5)
    # With a trained-like output layer, changing one coil changes the output.
    model.out_conv.kernel[...] = jax.random.normal(jax.random.key(4),
                                                   model.out_conv.kernel[...].shape)
    other = view.coil_kspace.at[:, 2].multiply(1.5)
    assert not np.allclose(np.asarray(predict(view.coil_kspace)), np.asarray(predict(other)))


@pytest.mark.parametrize("changes, match", [
    ({"model.input": "coils"}, "corruption.coils"),
    ({"model.input": "all", "corruption.coils": 2}, "model.input must be one of"),
    ({"model.input": "coils", "corruption.coils": 2, "model.kind": "motion_unet"}, "combined"),
])
def test_coil_input_mistakes_name_the_key(changes, match):
    with pytest.raises(ConfigValueError, match=match):
        networks.Network.from_config(config_with(changes))


def test_loop_trains_with_coil_input_and_kmri_infer_reads_coil_files(tmp_path):
    from kmri_jax.data.phantom import write_phantom_dataset
    from kmri_jax.tasks import infer, simulate
    from kmri_jax.tasks.errors import TaskError
    from kmri_jax.train.corruption import Coils
    from kmri_jax.train.loop import train_and_evaluate

    c = tiny_config()
    c.model.kind, c.model.residual, c.model.input = "image_unet", True, "coils"
    c.corruption.coils, c.corruption.motion_states = 2, 2
    c.train.max_steps = 2
    summary = train_and_evaluate(c, tmp_path / "run")
    assert np.isfinite(summary["val_SSIM"])

    root = write_phantom_dataset(tmp_path / "bids", n_subjects=1, shape=(4, 32, 48), seed=9)
    volume = root / "sub-01" / "anat" / "sub-01_T2w.nii.gz"
    done = simulate.simulate(volume, tmp_path / "sim" / "c.nii.gz", save_kspace_files=True,
                             acquisition=sim.CorruptOptions(motion_states=2),
                             coils=Coils(2, 0.0))
    result = infer.infer(tmp_path / "run", tmp_path / "out.nii.gz",
                         kspace_path=done[0].kspace_file)
    assert result is not None and (tmp_path / "out.nii.gz").is_file()
    # From a clean volume, kmri-infer simulates the coils the model was trained with.
    infer.infer(tmp_path / "run", tmp_path / "out3.nii.gz", input_path=volume)
    assert (tmp_path / "out3.nii.gz").is_file()
    plain = simulate.simulate(volume, tmp_path / "sim1" / "p.nii.gz", save_kspace_files=True)
    with pytest.raises(TaskError, match="--coils 2"):
        infer.infer(tmp_path / "run", tmp_path / "out2.nii.gz",
                    kspace_path=plain[0].kspace_file)


def test_residual_unet_on_other_channels_needs_its_base():
    model = models.UNet(rngs=nnx.Rngs(params=0), base_channels=4, in_channels=6, residual=True)
    x = jnp.ones((1, 6, 8, 8))
    with pytest.raises(ValueError, match="base="):
        model(x)
    base = jnp.full((1, 2, 8, 8), 3.0)
    np.testing.assert_allclose(np.asarray(model(x, base=base)), np.asarray(base))  # zero start
