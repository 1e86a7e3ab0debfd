"""Quickstart: the built-in phantom data at 64x96, on a laptop CPU in about 3 minutes.

Everything the full run does (phantom NIfTI data -> slice store -> Grain, on-device
corruption inside the compiled step, the network, evaluation with SSIM/PSNR/NRMSE beside the
corrupted input, the oracle bound and the training-free motion estimate, TensorBoard,
history.csv, checkpoints) at a size that trains on 2 CPU cores.

The recipe is the best found within this budget (docs/results.md): the training-free motion
estimate undone first, then an image-domain U-Net on the zero-filled image
(``model.kind = "estimate_unet"``), residual (it starts at its input's quality), trained with
a k-space + image L1 at 5e-4 on clean slices flipped and given another contrast at random
(``train.augment = "flips,gamma"``: without augmentation it fits the phantom and fails on
other anatomy). Physics removes the motion, the network what physics cannot (undersampling,
noise), so it holds on other, real anatomy: above the oracle bound (true motion undone,
zero-filled) on the phantom and on a real brain. Its training step
undoes the true displacement (known in simulation) instead of running the search, so it is
as fast as an image U-Net's; the search runs once, for the evaluation's fixed corruption.

Run::

    kmri-train --config experiments/quickstart.py --workdir runs/quickstart
    tensorboard --logdir runs/quickstart/tensorboard
"""

from kmri_jax.config import image_domain_config


def get_config(arg: str | None = None):
    """``arg``: unused."""
    del arg
    config = image_domain_config("estimate_unet")
    config.data.ny, config.data.nx = 64, 96
    config.data.phantom_subjects = 12
    config.data.phantom_slices = 12
    config.model.base_channels = 16
    config.train.batch_size = 8
    config.train.num_epochs = 40
    config.train.log_every_steps = 25
    config.train.augment = "flips,gamma"
    config.eval.every_epochs = 10
    config.eval.batch_size = 16
    config.eval.combinations = "orthogonal"
    config.checkpoint.max_to_keep = 2
    return config
