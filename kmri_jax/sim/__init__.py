"""kmri_jax.sim: the differentiable k-space corruption simulator (pure ``jax.numpy``).

Clean image -> centred k-space -> breathing motion (per-line phase ramp) -> Cartesian line
mask -> complex Gaussian noise, in the seed's conventions (``shared/DESIGN.md``). Every
function is pure, takes the PRNG key first and options keyword-only, and works under
``jit``, ``vmap`` and ``grad``::

    import jax
    from kmri_jax import sim

    params = sim.sample_params(key_p, batch, tr=batch_tr)          # [B] leaves
    sim.check_inputs(images, params)                               # host side, once
    out = jax.jit(jax.vmap(sim.corrupt))(jax.random.split(key, batch), images, params)
    x = sim.to_channels(out.kspace)                                # [B, 2, ny, nx] network input
"""

from kmri_jax.sim.breathing import breathing_trace, line_times
from kmri_jax.sim.corrupt import (
    SEED_GRID,
    CorruptionParams,
    Corrupted,
    ParamGrid,
    corrupt,
    grid_params,
    sample_params,
)
from kmri_jax.sim.kspace import from_channels, image_to_kspace, kspace_to_image, to_channels
from kmri_jax.sim.motion import apply_motion
from kmri_jax.sim.noise import add_noise, noise_sigma
from kmri_jax.sim.sampling import cartesian_mask, center_lines
from kmri_jax.sim.validation import check_image, check_inputs, check_params

__all__ = [
    "SEED_GRID",
    "CorruptionParams",
    "Corrupted",
    "ParamGrid",
    "add_noise",
    "apply_motion",
    "breathing_trace",
    "cartesian_mask",
    "center_lines",
    "check_image",
    "check_inputs",
    "check_params",
    "corrupt",
    "from_channels",
    "grid_params",
    "image_to_kspace",
    "kspace_to_image",
    "line_times",
    "noise_sigma",
    "sample_params",
    "to_channels",
]
