"""Quickstart: the built-in phantom data at 64x96, on a laptop CPU in about 3 minutes.

Everything the full run does (phantom NIfTI data -> slice store -> Grain, on-device
corruption inside the compiled step, the network, evaluation with SSIM/PSNR/NRMSE beside the
corrupted input, the oracle bound and the training-free motion estimate, TensorBoard,
history.csv, checkpoints) at a size that trains on 2 CPU cores.

The recipe is the best found within this budget (docs/results.md): an image-domain U-Net
(``model.kind = "image_unet"``) on the zero-filled image, residual (it starts at the input's
quality), trained with a k-space + image L1 at 5e-4, on clean slices flipped and magnified at
random (``train.augment = "flips,zoom"``): without them it fits phantom v2 better but ends
below its input on other, real anatomy. It ends above the oracle bound (true motion undone,
zero-filled) on the phantom. ``experiments/motion_unet.py`` (motion estimated and undone
first) is better still and generalises better to other anatomy, but its motion search makes
a CPU step several times slower.

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
    config.model.kind = "image_unet"
    config.model.base_channels = 16
    config.train.batch_size = 8
    config.train.num_epochs = 40
    config.train.learning_rate = 5e-4
    config.train.log_every_steps = 25
    config.train.loss = "hybrid"
    config.train.loss_weights = {"kspace_l1": 1.0, "image_l1": 1.0}
    config.train.augment = "flips,zoom"
    config.eval.every_epochs = 10
    config.eval.batch_size = 16
    config.eval.combinations = "orthogonal"
    config.checkpoint.max_to_keep = 2
    return config
