"""kmri_jax.sim: the differentiable k-space corruption simulator (pure ``jax.numpy``).

Clean image -> centred k-space -> breathing motion (per-line phase ramp; optionally 2-D,
rotational and spatially varying, timed by echo trains) and breathing off-resonance (B0),
optionally seen through several receive coils -> Cartesian line mask -> complex Gaussian noise, in the seed's conventions (``docs/conventions.md``, ``docs/realism.md``). Every
function is pure, takes the PRNG key first and options keyword-only, and works under
``jit``, ``vmap`` and ``grad``::

    import jax
    from kmri_jax import sim

    params = sim.sample_params(key_p, batch, tr=batch_tr)          # [B] leaves
    sim.check_inputs(images, params)                               # host side, once
    out = jax.jit(jax.vmap(sim.corrupt))(jax.random.split(key, batch), images, params)
    x = sim.to_channels(out.kspace)                                # [B, 2, ny, nx] network input
"""

from kmri_jax.sim.breathing import breathing_trace
from kmri_jax.sim import coils, forward
from kmri_jax.sim.coils import coil_combine, coil_maps
from kmri_jax.sim.corrupt import CorruptionParams, CorruptOptions, Corrupted, corrupt
from kmri_jax.sim.grid import (
    RIGID_READOUT,
    SEED_GRID,
    MotionGrid,
    ParamGrid,
    grid_params,
    grid_table,
    num_combinations,
    orthogonal_combinations,
    parse_combinations,
    sample_keys,
    sample_params,
)
from kmri_jax.sim.kspace import (from_channels, image_to_kspace, kspace_to_image, magnitude_image,
                                 to_channels)
from kmri_jax.sim.motion import apply_motion
from kmri_jax.sim.rigid import apply_rigid_motion
from kmri_jax.sim.field import breathing_field_map
from kmri_jax.sim.timing import ORDERINGS, echo_times, line_times
from kmri_jax.sim.weight_map import breathing_weight_map
from kmri_jax.sim.noise import add_noise, noise_sigma
from kmri_jax.sim.rng import NOISE_RNGS, complex_normal
from kmri_jax.sim.sampling import cartesian_mask, center_lines
from kmri_jax.sim.validation import check_image, check_inputs, check_params

__all__ = [
    "RIGID_READOUT",
    "SEED_GRID",
    "MotionGrid",
    "NOISE_RNGS",
    "ORDERINGS",
    "CorruptOptions",
    "CorruptionParams",
    "Corrupted",
    "ParamGrid",
    "add_noise",
    "apply_motion",
    "apply_rigid_motion",
    "breathing_field_map",
    "breathing_weight_map",
    "breathing_trace",
    "cartesian_mask",
    "center_lines",
    "check_image",
    "check_inputs",
    "check_params",
    "coil_combine",
    "coil_maps",
    "complex_normal",
    "corrupt",
    "echo_times",
    "from_channels",
    "grid_params",
    "grid_table",
    "num_combinations",
    "orthogonal_combinations",
    "parse_combinations",
    "sample_keys",
    "image_to_kspace",
    "kspace_to_image",
    "line_times",
    "magnitude_image",
    "noise_sigma",
    "sample_params",
    "to_channels",
]
