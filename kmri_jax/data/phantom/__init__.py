"""Built-in default data: deterministic procedural spine phantoms, written as a real BIDS dataset
(``sub-XX/anat/sub-XX_T2w.nii.gz`` + JSON sidecars with TR/TE), so that the same discovery ->
store -> Grain path runs without any download.

``whole_spine`` (version 2, the default): the whole spine with texture, partial volume, bias
and lungs. ``blocky`` (version 1): the earlier cartoon, kept to reproduce old runs.
``dataset``: the BIDS writer. ``texture``: band-limited random fields and the bias field.
"""

from kmri_jax.data.phantom.dataset import PHANTOM_VERSIONS, phantom_volume, write_phantom_dataset

__all__ = ["PHANTOM_VERSIONS", "phantom_volume", "write_phantom_dataset"]
