"""2-D per-line motion (translation, rotation, weight maps) against numpy/scipy references."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi

from kmri_jax import sim
from kmri_jax.sim import motion_states

NY, NX = 24, 32


def smooth_image(ny=NY, nx=NX, dtype=np.float32):
    y, x = np.mgrid[:ny, :nx]
    blob = np.exp(-((y - 0.45 * ny) ** 2 / (0.04 * ny * ny) + (x - 0.55 * nx) ** 2 / (0.06 * nx * nx)))
    blob += 0.5 * np.exp(-((y - 0.6 * ny) ** 2 / (0.02 * ny * ny) + (x - 0.35 * nx) ** 2 / (0.02 * nx * nx)))
    return blob.astype(dtype)


def kspace(image):
    return np.fft.fftshift(np.fft.fft2(image))


def image(k):
    return np.fft.ifft2(np.fft.ifftshift(np.asarray(k)))


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def test_dx_alone_is_apply_motion():
    x = np.random.default_rng(0).random((NY, NX)).astype(np.float32)
    dx = np.random.default_rng(1).uniform(-4, 4, NY).astype(np.float32)
    got = sim.apply_rigid_motion(jnp.asarray(x), dx=jnp.asarray(dx))
    ref = sim.apply_motion(sim.image_to_kspace(x), dx)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=0, atol=1e-5)


@pytest.mark.parametrize("shift", [-3, 2])
def test_integer_dy_is_np_roll_rows(shift):
    x = np.random.default_rng(2).random((NY, NX)).astype(np.float32)
    got = image(sim.apply_rigid_motion(jnp.asarray(x), dx=jnp.zeros(NY), dy=jnp.full(NY, shift)))
    np.testing.assert_allclose(got.real, np.roll(x, shift, axis=0), atol=1e-4)
    np.testing.assert_allclose(got.imag, 0.0, atol=1e-4)


def test_per_line_dy_is_the_numpy_phase_formula():
    rng = np.random.default_rng(3)
    x = rng.random((NY, NX))
    dx, dy = rng.uniform(-3, 3, NY), rng.uniform(-3, 3, NY)
    got = sim.apply_rigid_motion(jnp.asarray(x, jnp.float32), dx=dx, dy=dy)
    u = np.fft.fftshift(np.fft.fftfreq(NX))
    v = np.fft.fftshift(np.fft.fftfreq(NY))
    ref = kspace(x) * np.exp(-2j * np.pi * (dx[:, None] * u[None, :] + dy[:, None] * v[:, None]))
    assert rel(got, ref) < 1e-5


def test_constant_rotation_matches_scipy_rotate():
    x = smooth_image(48, 64)
    ref = ndi.rotate(x, 5.0, axes=(1, 0), reshape=False, order=3)
    got = image(sim.apply_rigid_motion(jnp.asarray(x), dx=jnp.zeros(48),
                                       angle_deg=jnp.full(48, 5.0), motion_states=2))
    assert rel(got.real, ref) < 0.02


def per_line_reference(x, dx, dy, angle, weight):
    """Line ky from the FFT of the image moved by line ky's own motion (scipy spline warp)."""
    ny, nx = x.shape
    rows, cols = np.mgrid[:ny, :nx].astype(np.float64)
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    out = np.zeros((ny, nx), complex)
    for ky in range(ny):
        r, c = rows - weight * dy[ky], cols - weight * dx[ky]
        t = np.deg2rad(angle[ky])
        src_r = np.cos(t) * (r - cy) + np.sin(t) * (c - cx) + cy
        src_c = -np.sin(t) * (r - cy) + np.cos(t) * (c - cx) + cx
        moved = ndi.map_coordinates(x, [src_r, src_c], order=3, mode="grid-wrap")
        out[ky] = kspace(moved)[ky]
    return out


def test_rotation_and_translation_per_line_match_scipy():
    rng = np.random.default_rng(4)
    x = smooth_image().astype(np.float64)
    dx, dy, angle = rng.uniform(-2, 2, NY), rng.uniform(-2, 2, NY), rng.uniform(-6, 6, NY)
    got = sim.apply_rigid_motion(jnp.asarray(x, jnp.float32), dx=dx, dy=dy, angle_deg=angle,
                                 motion_states=NY)
    # no weight map: each line's own translation is an exact (Fourier) shift after the
    # spline rotation
    rotated = per_line_reference(x, 0 * dx, 0 * dy, angle, 1.0)
    u = np.fft.fftshift(np.fft.fftfreq(NX))
    v = np.fft.fftshift(np.fft.fftfreq(NY))
    ref = rotated * np.exp(-2j * np.pi * (dx[:, None] * u[None, :] + dy[:, None] * v[:, None]))
    assert rel(got, ref) < 1e-4


def test_weight_map_per_line_matches_scipy():
    rng = np.random.default_rng(5)
    x = smooth_image().astype(np.float64)
    w = sim.breathing_weight_map((NY, NX), reference_px=10, axis=1, decay_mm=8.0)
    dx, dy, angle = rng.uniform(-3, 3, NY), rng.uniform(-2, 2, NY), rng.uniform(-4, 4, NY)
    got = sim.apply_rigid_motion(jnp.asarray(x, jnp.float32), dx=dx, dy=dy, angle_deg=angle,
                                 weight_map=w, motion_states=NY)
    assert rel(got, per_line_reference(x, dx, dy, angle, w.astype(np.float64))) < 1e-4


def test_weight_map_of_ones_equals_the_rigid_path():
    x = np.random.default_rng(6).random((NY, NX)).astype(np.float32)
    dx = np.random.default_rng(7).choice([-2.0, 1.0, 5.0], NY).astype(np.float32)
    got = sim.apply_rigid_motion(jnp.asarray(x), dx=dx, weight_map=jnp.ones((NY, NX)),
                                 motion_states=3)
    ref = sim.apply_rigid_motion(jnp.asarray(x), dx=dx)
    assert float(jnp.max(jnp.abs(got - ref)) / jnp.max(jnp.abs(ref))) < 1e-4


def test_fewer_states_approximate_a_breathing_motion():
    x = smooth_image()
    r = np.sin(np.linspace(0, 9, NY))
    exact = per_line_reference(x.astype(np.float64), 3 * r, 0 * r, 5 * r, 1.0)
    errors = [rel(sim.apply_rigid_motion(jnp.asarray(x), dx=3 * r, angle_deg=5 * r,
                                         motion_states=k), exact) for k in (2, 4, 8)]
    assert errors[0] > errors[1] > errors[2]


def test_resampling_needs_motion_states():
    with pytest.raises(ValueError, match="motion_states"):
        sim.apply_rigid_motion(jnp.ones((NY, NX)), dx=jnp.zeros(NY), angle_deg=jnp.ones(NY))
    with pytest.raises(ValueError, match="motion_states"):
        sim.apply_rigid_motion(jnp.ones((NY, NX)), dx=jnp.zeros(NY), weight_map=jnp.ones((NY, NX)))
    with pytest.raises(ValueError, match="dy must be"):
        sim.apply_rigid_motion(jnp.ones((NY, NX)), dx=jnp.zeros(NY), dy=jnp.zeros(NX))


def test_gradients_match_finite_differences_float64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(8)
        ny, nx = 12, 16
        x = jnp.asarray(smooth_image(ny, nx, np.float64))
        w = jnp.asarray(sim.breathing_weight_map((ny, nx), reference_px=4, decay_mm=6.0,
                                                 dtype=np.float64))
        dx = jnp.asarray(rng.uniform(-2, 2, ny))
        dy0 = jnp.asarray(rng.uniform(-2, 2, ny))
        a0 = jnp.asarray(rng.uniform(-5, 5, ny))
        target = jnp.asarray(rng.normal(size=(ny, nx)) + 1j * rng.normal(size=(ny, nx)))

        def loss(img, dy, angle, weight_map):
            k = sim.apply_rigid_motion(img, dx=dx, dy=dy, angle_deg=angle, weight_map=weight_map,
                                       motion_states=ny)
            return jnp.sum(jnp.abs(k - target) ** 2) / k.size

        loss = jax.jit(loss)
        h = 1e-6
        for weight_map in (None, w):
            grads = jax.grad(loss, argnums=(0, 1, 2))(x, dy0, a0, weight_map)
            for arg, g in zip(range(3), grads):
                base = [x, dy0, a0]
                v = jnp.asarray(rng.normal(size=base[arg].shape))
                plus, minus = list(base), list(base)
                plus[arg] = base[arg] + h * v
                minus[arg] = base[arg] - h * v
                fd = (loss(*plus, weight_map) - loss(*minus, weight_map)) / (2 * h)
                assert float(jnp.vdot(g, v)) == pytest.approx(float(fd), rel=1e-5)


def brute_force_partition(x, k):
    """Smallest within-group sum of squares over all cuts of sorted x into k groups."""
    xs = np.sort(x)
    best = np.inf
    for cuts in itertools.combinations(range(1, len(xs)), k - 1):
        groups = np.split(xs, cuts)
        best = min(best, sum(((g - g.mean()) ** 2).sum() for g in groups))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_assign_states_is_optimal_1d_kmeans(seed):
    x = np.random.default_rng(seed).normal(size=9)
    states = np.asarray(motion_states.assign_states(jnp.asarray(x), 3))
    assert set(states) == {0, 1, 2}
    cost = sum(((x[states == s] - x[states == s].mean()) ** 2).sum() for s in range(3))
    assert cost == pytest.approx(brute_force_partition(x, 3), rel=1e-4, abs=1e-6)


def test_assign_states_reproduces_distinct_values():
    x = np.random.default_rng(3).choice([-7.0, 0.5, 1.0, 9.0], 40)
    states = np.asarray(motion_states.assign_states(jnp.asarray(x), 4))
    for s in range(4):
        assert len(set(x[states == s])) == 1


def test_weight_map_formula():
    w = sim.breathing_weight_map((4, 6), reference_px=2.0, axis=1, decay_mm=10.0,
                                 spacing_mm=2.5)
    expected = np.exp(-np.abs(np.arange(6) - 2.0) * 2.5 / 10.0)
    np.testing.assert_allclose(w, np.broadcast_to(expected, (4, 6)), rtol=1e-6)
    lower = sim.breathing_weight_map((5, 3), reference_px=1.0, axis=0, decay_mm=4.0,
                                     full_side="higher")
    np.testing.assert_allclose(lower[:, 0], [np.exp(-0.25), 1, 1, 1, 1], rtol=1e-6)
    with pytest.raises(ValueError, match="decay_mm"):
        sim.breathing_weight_map((4, 6), reference_px=0, decay_mm=0.0)
