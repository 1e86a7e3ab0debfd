"""Realistic acquisition and motion for sagittal spine T2w turbo spin echo (docs/realism.md).

The seed's data, model and optimizer (experiments/default.py) with the simulator's realism
options on: a segmented echo train of 16 lines, 10 ms apart, timed over the acquired lines
only; breathing moves the anatomy along both in-plane axes and turns it slightly; and the
displacement decays with distance from a reference level (the diaphragm), 50 mm decay length.
Every fixed evaluation also breaks its metrics down by the phase-encode amplitude and the
rotation, which vary over the grid (0 or 2 px, 0 or 2 degrees: 81 x 4 combinations).

    kmri-train --config experiments/spine_tse.py --workdir runs/spine_tse \
        --config.data.root=/path/to/ds005616
"""

from kmri_jax.config import base_config


def get_config(arg: str | None = None):
    """``arg``: optional data root (same as ``--config.data.root``)."""
    config = base_config()
    if arg:
        config.data.root = arg
    c = config.corruption
    c.ordering = "segmented"
    c.echo_train_length = 16
    c.echo_spacing = 0.010
    c.time_acquired_only = True
    c.amplitude_pe_px = (0.0, 2.0)
    c.rotation_deg = (0.0, 2.0)
    c.motion_states = 16
    c.weight_map = "distance"
    c.weight_axis = 1  # readout = superior-inferior in the seed's sagittal slices
    c.weight_reference = 0.3
    c.weight_full_side = "lower"  # below the reference (the abdomen) moves fully
    c.weight_decay_mm = 50.0
    c.weight_spacing_mm = 0.8
    return config
