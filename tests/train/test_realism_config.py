"""The realism options as a user meets them in a config: corruption.* keys, errors, the
training loop with echo trains, rotation and a weight map, and the evaluation breakdown."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kmri_jax import sim
from kmri_jax.config import ConfigValueError, base_config
from kmri_jax.train.corruption import Corruption
from tiny_run import tiny_config


def realism(c):
    c.corruption.ordering = "segmented"
    c.corruption.echo_train_length = 4
    c.corruption.echo_spacing = 0.01
    c.corruption.time_acquired_only = True
    c.corruption.amplitude_pe_px = (0.0, 2.0)
    c.corruption.rotation_deg = (0.0, 3.0)
    c.corruption.motion_states = 4
    c.corruption.weight_map = "distance"
    c.corruption.weight_reference = 0.3
    c.corruption.weight_decay_mm = 20.0
    return c


def test_seed_config_is_the_seed_corruption():
    corruption = Corruption.from_config(base_config())
    assert corruption.options == sim.CorruptOptions()
    assert corruption.motion == sim.RIGID_READOUT and corruption.weight_map is None
    assert corruption.num_combinations() == 81


@pytest.mark.parametrize("key, value, match", [
    ("rotation_deg", (0.0, 3.0), "motion_states"),
    ("weight_map", "distance", "motion_states"),
    ("weight_map", "gaussian", "weight_map"),
    ("ordering", "spiral", "ordering"),
    ("echo_train_length", 0, "echo_train_length"),
    ("amplitude_pe_px", ("a",), "amplitude_pe_px"),
])
def test_config_mistakes_name_the_key(key, value, match):
    c = base_config()
    c.corruption[key] = value
    with pytest.raises(ConfigValueError, match=match):
        Corruption.from_config(c)


def test_fixed_batch_is_the_simulator_with_the_run_grid():
    c = realism(base_config())
    corruption = Corruption.from_config(c)
    assert corruption.num_combinations() == 81 * 4
    rng = np.random.default_rng(0)
    ny, nx = 16, 24
    batch = {"image": jnp.asarray(rng.random((3, ny, nx)), jnp.float32),
             "tr": jnp.full(3, 2.0), "te": jnp.full(3, 0.05),
             "volume": jnp.asarray([0, 1, 2]), "slice": jnp.asarray([3, 4, 5]),
             "combination": jnp.asarray([3, 100, 323])}
    root = jax.random.key(9)
    got, params = corruption.corrupt_batch(root, batch, mode="fixed")
    w = sim.breathing_weight_map((ny, nx), reference_px=0.3 * (nx - 1), decay_mm=20.0)
    motion = sim.MotionGrid(amplitude_pe_px=(0.0, 2.0), rotation_deg=(0.0, 3.0))
    for i in range(3):
        p = sim.grid_params(int(batch["combination"][i]), tr=2.0, te=0.05, motion=motion)
        key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(root, i), 3 + i),
                                 int(batch["combination"][i]))
        want = sim.corrupt(key, batch["image"][i], p, w, ordering="segmented",
                           echo_train_length=4, echo_spacing=0.01, time_acquired_only=True,
                           motion_states=4)
        np.testing.assert_allclose(np.asarray(got.kspace[i]), np.asarray(want.kspace),
                                   atol=1e-4 * float(jnp.max(jnp.abs(want.kspace))))
    # combination 323 = seed combination 80 with A_pe 2 and rotation 3
    assert float(params.amplitude_pe_px[2]) == 2.0 and float(params.rotation_deg[2]) == 3.0


def test_loop_trains_and_breaks_evaluation_down_by_the_new_parameters(tmp_path):
    from kmri_jax.train.loop import train_and_evaluate

    c = realism(tiny_config())
    c.train.max_steps = 2
    c.eval.combinations = "0,1,2,3"  # seed combination 0 with every (A_pe, rot) pair
    summary = train_and_evaluate(c, tmp_path / "run")
    assert np.isfinite(summary["val_SSIM"])
    for key in ("by_A_pe/0/val_SSIM", "by_A_pe/2/val_SSIM", "by_rot/0/val_SSIM",
                "by_rot/3/val_SSIM"):
        assert np.isfinite(summary[key]), key


@pytest.mark.parametrize("key, value, match", [
    ("field_map", "lungs", "motion_states"),
    ("field_map", "liver", "field_map"),
    ("coils", 4, "motion_states"),
    ("coils", -1, "corruption.coils"),
    ("coil_correlation", 0.5, "coil_correlation"),
    ("readout_bandwidth_hz_per_px", -3.0, "readout_bandwidth"),
    ("b0_hz", ("x",), "b0_hz"),
])
def test_field_and_coil_mistakes_name_the_key(key, value, match):
    c = base_config()
    c.corruption[key] = value
    with pytest.raises(ConfigValueError, match=match):
        Corruption.from_config(c)


def test_coils_and_field_give_the_combined_single_coil_view():
    c = base_config()
    c.corruption.b0_hz = (0.0, 10.0)
    c.corruption.field_map = "lungs"
    c.corruption.readout_bandwidth_hz_per_px = 20.0
    c.corruption.coils = 4
    c.corruption.coil_correlation = 0.2
    c.corruption.motion_states = 4
    corruption = Corruption.from_config(c)
    assert corruption.num_combinations() == 162
    assert "B0" in corruption.grid_table([0, 1])
    b, ny, nx = 2, 16, 24
    images = jnp.asarray(np.random.default_rng(0).random((b, ny, nx)), jnp.float32)
    batch = {"image": images, "tr": jnp.full(b, 2.0), "te": jnp.full(b, 0.03),
             "combination": jnp.asarray([1, 161]), "volume": jnp.zeros(b, jnp.int32),
             "slice": jnp.arange(b)}
    out, params = corruption.corrupt_batch(jax.random.key(0), batch, mode="fixed")
    assert out.kspace.shape == out.clean.shape == (b, ny, nx)
    np.testing.assert_allclose(np.asarray(params.b0_hz), [10.0, 10.0])
    ref = np.fft.fftshift(np.fft.fft2(np.asarray(images)), axes=(-2, -1))
    np.testing.assert_allclose(np.asarray(out.clean), ref, atol=1e-4 * np.abs(ref).max())
