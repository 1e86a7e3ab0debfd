"""Phase-encode orderings and echo-train timing against hand-written slot tables."""

import numpy as np
import pytest

from kmri_jax import sim

TR, TE, ES = 2.0, 0.1, 0.01


def times(n, **kw):
    return np.asarray(sim.line_times(n, tr=TR, te=TE, **kw), np.float64)


def slot_time(shot, echo):
    return shot * TR + TE + echo * ES


def test_default_is_the_seed_linear_ordering():
    np.testing.assert_array_equal(times(7), np.arange(7, dtype=np.float32) * np.float32(TR)
                                  + np.float32(TE))


def test_segmented_etl4_slot_table():
    got = times(8, ordering="segmented", echo_train_length=4, echo_spacing=ES)
    table = {0: (0, 0), 2: (0, 1), 4: (0, 2), 6: (0, 3),   # shot 0: ky 0, 2, 4, 6
             1: (1, 0), 3: (1, 1), 5: (1, 2), 7: (1, 3)}   # shot 1, one TR later
    for ky, (shot, echo) in table.items():
        assert got[ky] == pytest.approx(slot_time(shot, echo), abs=1e-6)


def test_centric_etl1_order():
    got = times(6, ordering="centric")
    assert list(np.argsort(got)) == [3, 2, 4, 1, 5, 0]
    np.testing.assert_allclose(np.sort(got), np.arange(6) * TR + TE, atol=1e-6)


def test_centric_etl2_early_echoes_at_the_centre():
    got = times(8, ordering="centric", echo_train_length=2, echo_spacing=ES)
    # centric order of 8 lines: 4, 3, 5, 2, 6, 1, 7, 0; 4 shots; slot (s, e) = entry 4e + s
    order = [4, 3, 5, 2, 6, 1, 7, 0]
    for entry, ky in enumerate(order):
        echo, shot = divmod(entry, 4)
        assert got[ky] == pytest.approx(slot_time(shot, echo), abs=1e-6)


def test_sequential_echo_train():
    got = times(5, echo_train_length=2, echo_spacing=ES)
    expected = [slot_time(a // 2, a % 2) for a in range(5)]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_uneven_last_shot():
    got = times(7, ordering="segmented", echo_train_length=4, echo_spacing=ES)
    n_shots = 2
    expected = [slot_time(ky % n_shots, ky // n_shots) for ky in range(7)]
    np.testing.assert_allclose(got, expected, atol=1e-6)


MASK = np.array([1, 0, 1, 1, 0, 0, 1, 1], bool)


def test_mask_skipped_lines_take_no_time():
    got = times(8, mask=MASK)
    np.testing.assert_allclose(got[MASK], np.arange(5) * TR + TE, atol=1e-6)
    assert np.all(np.isfinite(got))


def test_mask_segmented_orders_the_acquired_lines():
    got = times(8, mask=MASK, ordering="segmented", echo_train_length=2, echo_spacing=ES)
    acquired = np.flatnonzero(MASK)  # 0, 2, 3, 6, 7 -> 3 shots
    for entry, ky in enumerate(acquired):
        echo, shot = divmod(entry, 3)
        assert got[ky] == pytest.approx(slot_time(shot, echo), abs=1e-6)


def test_mask_centric_reference_loop():
    rng = np.random.default_rng(0)
    n, etl = 20, 3
    mask = rng.random(n) < 0.6
    got = times(n, mask=mask, ordering="centric", echo_train_length=etl, echo_spacing=ES)
    acquired = sorted(np.flatnonzero(mask), key=lambda ky: (abs(ky - n // 2), ky))
    n_shots = -(-len(acquired) // etl)
    for entry, ky in enumerate(acquired):
        echo, shot = divmod(entry, n_shots)
        assert got[ky] == pytest.approx(slot_time(shot, echo), abs=1e-5)
    # every acquired line has its own slot
    assert len(set(np.round(got[mask], 6))) == mask.sum()


def test_traced_mask_under_jit():
    import jax
    fn = jax.jit(lambda m: sim.line_times(8, tr=TR, te=TE, ordering="segmented",
                                          echo_train_length=2, echo_spacing=ES, mask=m))
    np.testing.assert_allclose(np.asarray(fn(MASK)),
                               times(8, mask=MASK, ordering="segmented", echo_train_length=2,
                                     echo_spacing=ES), atol=1e-6)


@pytest.mark.parametrize("kw, match", [
    ({"ordering": "spiral"}, "ordering"),
    ({"echo_train_length": 0}, "echo_train_length"),
    ({"echo_spacing": -1.0}, "echo_spacing"),
    ({"mask": np.ones(5, bool)}, "mask"),
])
def test_bad_options_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        sim.line_times(8, tr=TR, te=TE, **kw)
