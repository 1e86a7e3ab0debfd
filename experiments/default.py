"""Default experiment: the seed's data, model and optimizer with fresh on-device corruption.

Every step draws new (A, f, R, SNR) per sample from the seed's grid and new breathing, mask
and noise randomness — on the accelerator, inside the compiled step.

Run (a BIDS dataset such as OpenNeuro ds005616; without --config.data.root the built-in
phantom data is used)::

    kmri-train --config experiments/default.py --workdir runs/default \
        --config.data.root=/path/to/ds005616
"""

from kmri_jax.config import base_config


def get_config(arg: str | None = None):
    """``arg``: optional data root (same as ``--config.data.root``)."""
    config = base_config()
    if arg:
        config.data.root = arg
    return config
