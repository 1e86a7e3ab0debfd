"""The seed's exact setting: fixed corruption per (slice, combination) of the 81-point grid.

424x736 slices, each expanded into the 81 combinations of A {2,5,8} px x f {12,15,18}/min x
R {2,4,6} x SNR {15,20,25} dB whose corruption is fixed for all epochs; batch 32, 20 epochs,
Adam 1e-3 with per-epoch cosine annealing to 1e-6, the seed's masked L1, seed 42,
70/15/15 subject split (pass the seed's splits.json to reuse its exact split).

Run::

    kmri-train --config experiments/seed_replica.py:/path/to/ds005616 --workdir runs/seed_replica \
        [--config.data.splits_file=/path/to/splits.json]
"""

from kmri_jax.config import base_config


def get_config(arg: str | None = None):
    """``arg``: the data root (a BIDS dataset laid out like ds005616)."""
    config = base_config()
    if arg:
        config.data.root = arg
    config.seed = 42
    config.data.blank_rows = 12
    config.model.residual = False
    config.model.input_scale = "clean"  # the seed normalised by the clean k-space
    config.corruption.mode = "fixed"
    config.corruption.combinations_per_slice = 81
    config.train.batch_size = 32
    config.train.num_epochs = 20
    config.train.lr_per_epoch = True
    config.train.loss = "seed_masked_l1"
    return config
