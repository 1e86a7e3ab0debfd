"""corrupt() with echo-train timing, 2-D motion, rotation and a weight map."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kmri_jax import sim

NY, NX = 24, 32
OPTIONS = dict(ordering="segmented", echo_train_length=4, echo_spacing=0.012,
               time_acquired_only=True, motion_states=6)


def images(b):
    return jnp.asarray(np.random.default_rng(0).random((b, NY, NX)), jnp.float32)


def batch_params(b, rng):
    return sim.CorruptionParams(
        amplitude_px=jnp.asarray(rng.uniform(1, 6, b), jnp.float32),
        rate_bpm=jnp.asarray(rng.uniform(10, 20, b), jnp.float32),
        acceleration=jnp.asarray(rng.uniform(1, 4, b), jnp.float32),
        snr_db=jnp.asarray(rng.uniform(15, 30, b), jnp.float32),
        tr=jnp.asarray(rng.uniform(1, 3, b), jnp.float32),
        te=jnp.asarray(rng.uniform(0.01, 0.1, b), jnp.float32),
        amplitude_pe_px=jnp.asarray(rng.uniform(0, 3, b), jnp.float32),
        rotation_deg=jnp.asarray(rng.uniform(-4, 4, b), jnp.float32))


def test_defaults_are_the_seed_simulator():
    x = images(1)[0]
    p = sim.CorruptionParams(5.0, 15.0, 4.0, 20.0)
    key = jax.random.key(3)
    out = sim.corrupt(key, x, p)
    k_breath, k_mask, k_noise = jax.random.split(key, 3)
    times = jnp.arange(NY, dtype=jnp.float32) * 2.5 + 0.03
    trace = sim.breathing_trace(k_breath, times, rate_bpm=15.0)
    mask = sim.cartesian_mask(k_mask, NY, acceleration=4.0)
    moved = sim.apply_motion(sim.image_to_kspace(x), 5.0 * trace)
    ref = sim.add_noise(k_noise, jnp.where(mask[:, None], moved, 0), mask, snr_db=20.0)
    scale = float(jnp.max(jnp.abs(ref)))
    np.testing.assert_allclose(np.asarray(out.kspace), np.asarray(ref), rtol=0, atol=1e-6 * scale)
    np.testing.assert_array_equal(np.asarray(out.times), np.asarray(times))
    np.testing.assert_array_equal(np.asarray(out.displacement_pe), 0.0)


def test_components_follow_one_trace_at_the_echo_train_times():
    x = images(1)[0]
    p = sim.CorruptionParams(4.0, 14.0, 2.0, 25.0, tr=2.0, te=0.05, amplitude_pe_px=1.5,
                             rotation_deg=3.0)
    out = sim.corrupt(jax.random.key(1), x, p, **OPTIONS)
    times = sim.line_times(NY, tr=2.0, te=0.05, ordering="segmented", echo_train_length=4,
                           echo_spacing=0.012, mask=out.mask)
    np.testing.assert_allclose(np.asarray(out.times), np.asarray(times), atol=1e-6)
    k_breath = jax.random.split(jax.random.key(1), 3)[0]
    trace = sim.breathing_trace(k_breath, times, rate_bpm=14.0)
    np.testing.assert_allclose(np.asarray(out.trace), np.asarray(trace), atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.displacement_pe), 1.5 * np.asarray(trace), atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.rotation_deg), 3.0 * np.asarray(trace), atol=1e-5)
    # the lines of one echo train (36 ms) move far less among themselves than between trains
    shots = np.round((np.asarray(out.times) - 0.05) / 2.0)
    acquired = np.asarray(out.mask)
    d = np.asarray(out.displacement)
    within = np.mean([np.ptp(d[acquired & (shots == s)]) for s in np.unique(shots[acquired])])
    assert within < 0.5 * np.ptp(d[acquired])


def test_motion_matches_apply_rigid_motion_on_acquired_lines():
    x = images(1)[0]
    w = sim.breathing_weight_map((NY, NX), reference_px=8, decay_mm=10.0)
    p = sim.CorruptionParams(4.0, 14.0, 1.0, 200.0, amplitude_pe_px=2.0, rotation_deg=3.0)
    out = sim.corrupt(jax.random.key(2), x, p, w, **OPTIONS)
    ref = sim.apply_rigid_motion(x, dx=out.displacement, dy=out.displacement_pe,
                                 angle_deg=out.rotation_deg, weight_map=w, motion_states=6)
    m = np.asarray(out.mask)
    # SNR 200 dB: noise ~1e-10 of the signal
    assert np.allclose(np.asarray(out.kspace)[m], np.asarray(ref)[m], rtol=1e-4,
                       atol=1e-4 * float(jnp.max(jnp.abs(ref))))


def test_jit_vmap_equals_loop_and_does_not_retrace():
    b = 3
    traces = []

    def one(key, image, params, weight_map):
        traces.append(1)
        return sim.corrupt(key, image, params, weight_map, **OPTIONS)

    fn = jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None)))
    w = jnp.asarray(sim.breathing_weight_map((NY, NX), reference_px=12, decay_mm=20.0))
    keys = jax.random.split(jax.random.key(0), b)
    for seed in (0, 1):
        params = batch_params(b, np.random.default_rng(seed))
        batched = fn(keys, images(b), params, w)
        for i in range(b):
            single = sim.corrupt(keys[i], images(b)[i], jax.tree.map(lambda v: v[i], params), w,
                                 **OPTIONS)
            for got, want in zip(batched, single):
                if want is None:  # coil_kspace: only a combined view sets it
                    assert got is None
                    continue
                np.testing.assert_allclose(np.asarray(got[i]), np.asarray(want), rtol=1e-4,
                                           atol=1e-4 * float(np.max(np.abs(np.asarray(want)))))
    assert len(traces) == 1


def test_seed_params_still_vmap_with_default_realism_fields():
    p = sim.CorruptionParams(jnp.ones(2) * 3, jnp.ones(2) * 15, jnp.ones(2) * 2, jnp.ones(2) * 20,
                             tr=jnp.ones(2) * 2.5, te=jnp.ones(2) * 0.03)
    assert p.amplitude_pe_px == 0.0 and p.rotation_deg == 0.0
    out = jax.vmap(sim.corrupt)(jax.random.split(jax.random.key(0), 2), images(2), p)
    assert out.kspace.shape == (2, NY, NX)


def test_rotation_and_weight_map_need_motion_states():
    x = images(1)[0]
    with pytest.raises(ValueError, match="motion_states"):
        sim.corrupt(jax.random.key(0), x, sim.CorruptionParams(2, 12, 2, 20, rotation_deg=3.0))
    with pytest.raises(ValueError, match="motion_states"):
        sim.corrupt(jax.random.key(0), x, sim.CorruptionParams(2, 12, 2, 20), jnp.ones((NY, NX)))
    with pytest.raises(ValueError, match="ordering"):
        sim.corrupt(jax.random.key(0), x, sim.CorruptionParams(2, 12, 2, 20), ordering="radial")


def test_sample_params_keeps_the_seed_draws_and_adds_ranges():
    key = jax.random.key(4)
    seed = sim.sample_params(key, 16)
    motion = sim.MotionGrid(amplitude_pe_px=(0.0, 2.0), rotation_deg=(-3.0, 0.0, 3.0))
    extended = sim.sample_params(key, 16, motion=motion)
    for field in sim.ParamGrid._fields:
        np.testing.assert_array_equal(np.asarray(getattr(seed, field)),
                                      np.asarray(getattr(extended, field)))
    np.testing.assert_array_equal(np.asarray(seed.amplitude_pe_px), 0.0)
    assert set(np.asarray(extended.rotation_deg).tolist()) <= {-3.0, 0.0, 3.0}
    uniform = sim.sample_params(key, 64, distribution="uniform", motion=motion)
    r = np.asarray(uniform.rotation_deg)
    assert r.min() >= -3 and r.max() <= 3 and np.ptp(r) > 3
    assert sim.num_combinations(motion=motion) == 81 * 6
    table = sim.grid_table(motion=motion)
    assert set(table) == {"A", "f", "R", "SNR", "A_pe", "rot"}
    c = 7 * 6 + 5  # seed combination 7, A_pe level 1, rotation level 2
    p = sim.grid_params(c, motion=motion)
    seed7 = sim.grid_params(7)
    assert float(p.amplitude_px) == float(seed7.amplitude_px)
    assert float(p.snr_db) == float(seed7.snr_db)
    assert float(p.amplitude_pe_px) == 2.0 and float(p.rotation_deg) == 3.0
