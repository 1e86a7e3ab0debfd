"""Quickstart: the built-in phantom data at 64x96, on a laptop CPU in about 3 minutes.

Everything the full run does (phantom NIfTI data -> slice store -> Grain, on-device
corruption inside the compiled step, U-Net, evaluation with SSIM/PSNR/NRMSE, TensorBoard,
history.csv, checkpoints) at a size that trains on 2 CPU cores. The network predicts a
correction added to its input (``model.residual``), so it starts at the corrupted input's
quality and improves from there; a learning rate of 5e-4 keeps that start intact.

Run::

    kmri-train --config experiments/quickstart.py --workdir runs/quickstart
    tensorboard --logdir runs/quickstart/tensorboard
"""

from kmri_jax.config import base_config


def get_config(arg: str | None = None):
    """``arg``: unused."""
    del arg
    config = base_config()
    config.data.ny, config.data.nx = 64, 96
    config.data.phantom_subjects = 12
    config.data.phantom_slices = 12
    config.model.base_channels = 16
    config.train.batch_size = 8
    config.train.num_epochs = 40
    config.train.learning_rate = 5e-4
    config.train.log_every_steps = 25
    config.train.loss = "hybrid"
    config.train.loss_weights = {"kspace_l1": 1.0, "image_l1": 1.0}
    config.eval.every_epochs = 10
    config.eval.batch_size = 16
    config.eval.combinations = "orthogonal"
    config.checkpoint.max_to_keep = 2
    return config
