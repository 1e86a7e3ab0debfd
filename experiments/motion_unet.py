"""Motion estimated, undone exactly, then an image U-Net: the recipe that leaves to the network
only what physics cannot do (undersampling, noise).

``image_unet.py`` with ``model.kind = "motion_unet"``: each line's displacement is
``kmri_jax.correct.estimate_motion`` (training-free, inside the compiled step) plus a correction
a motion network predicts; the motion is undone exactly and the image U-Net corrects the rest;
trained end to end with a displacement L1 (``train.displacement_weight``) next to the image
loss. The search costs about 240 ms per 64 x 96 slice on 2 CPU cores, so a step is many times
an image U-Net's on a CPU. It generalises best to other anatomy (docs/results.md).

Run (a BIDS dataset such as OpenNeuro ds005616; without it the built-in phantom data)::

    kmri-train --config experiments/motion_unet.py:/path/to/ds005616 --workdir runs/motion_unet
"""

from kmri_jax.config import image_domain_config


def get_config(arg: str | None = None):
    """``arg``: optional data root (same as ``--config.data.root``)."""
    config = image_domain_config("motion_unet", arg)
    config.train.displacement_weight = 0.1
    return config
