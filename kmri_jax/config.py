"""Every experiment setting, with its default: ``base_config() -> ml_collections.ConfigDict``.

Experiment files in ``experiments/`` start from this and change what they need. The dict is
locked, so a mistyped key (in a file or a ``--config.KEY=VALUE`` override) is an error.
"""

from __future__ import annotations

import ml_collections


class ConfigValueError(ValueError):
    """A config value that cannot work; the message names the key and a valid value."""


def base_config() -> ml_collections.ConfigDict:
    """The defaults: the seed's data, model and optimizer, fresh on-device corruption."""
    c = ml_collections.ConfigDict()
    c.seed = 42  # Model initialisation and the training key stream.

    c.data = ml_collections.ConfigDict()
    c.data.root = ""  # BIDS or NIfTI folder; "" = the built-in phantom dataset.
    c.data.store = ""  # Prepared slice store; "" = <workdir>/store.
    c.data.splits_file = ""  # JSON {"train": [...], "val": [...], "test": [...]}; "" = make one.
    c.data.split_seed = 42
    c.data.pattern = ""  # Glob for volumes under root; "" = BIDS sub-*/anat/*_T2w.nii*.
    c.data.strict = True  # False: skip (and count) unreadable volumes instead of stopping.
    c.data.phantom_subjects = 10  # Built-in data: number of phantom subjects...
    c.data.phantom_slices = 24  # ...and sagittal slices per phantom volume.
    c.data.phantom_version = 2  # 2: whole spine, texture, lungs; 1: the earlier blocky phantom.
    c.data.worker_count = 0  # Grain worker processes (0: read in the main process).
    c.data.prefetch = 2  # Batches read ahead.
    c.data.ny = 424  # Slice size after crop/zero-pad (rows = phase encode).
    c.data.nx = 736
    c.data.axis = 0  # Array axis the volume is sliced along (0: sagittal in RAS).
    c.data.reorient = False  # Turn volumes to the closest RAS orientation first.
    c.data.clip_percentile = 99.5
    c.data.low_percentile = 2.0
    c.data.high_percentile = 99.0
    c.data.blank_rows = 0  # Zero this many rows at the top and bottom (seed's annotations: 12).
    c.data.slices = "all"  # "all", "central" (central_fraction) or "content" (threshold).
    c.data.central_fraction = 0.5
    c.data.content_threshold = 0.05

    c.corruption = ml_collections.ConfigDict()
    c.corruption.mode = "fresh"  # "fresh": new every step; "fixed": seed's per-(slice, combo).
    c.corruption.combinations_per_slice = 0  # "fixed" training: grid combinations per slice.
    c.corruption.distribution = "grid"  # "fresh": seed grid values, or "uniform" ranges.
    c.corruption.method = "breathmetrics"  # Breathing trace: "breathmetrics" or "sinusoidal".
    c.corruption.center_fraction = 0.08
    # Noise Gaussians: "fused" (an unrolled Threefry XLA fuses, ~2.5x faster on CPU) or "jax"
    # (jax.random.normal: the random streams before 2026-12-03). Same statistics.
    c.corruption.noise_rng = "fused"
    # Acquisition timing and 2-D motion (docs/realism.md); the defaults are the seed's.
    c.corruption.ordering = "sequential"  # Phase-encode order: "sequential", "segmented", "centric".
    c.corruption.echo_train_length = 1  # Lines per TR (turbo factor); 1 = the seed.
    c.corruption.echo_spacing = 0.0  # Seconds between the echoes of a train.
    c.corruption.time_acquired_only = False  # True: skipped lines take no scan time.
    c.corruption.amplitude_pe_px = (0.0,)  # Peak phase-encode displacement, px: grid values.
    c.corruption.rotation_deg = (0.0,)  # Peak in-plane rotation, degrees: grid values.
    c.corruption.motion_states = 0  # Image resamplings per slice (rotation, weight map); 0 = none.
    c.corruption.weight_map = ""  # "" (uniform displacement) or "distance" (decays away).
    c.corruption.weight_reference = 0.5  # Reference level, fraction of the axis.
    c.corruption.weight_axis = 1  # 0: rows (phase encode), 1: columns (readout).
    c.corruption.weight_decay_mm = 50.0  # Decay length, mm.
    c.corruption.weight_spacing_mm = 1.0  # Pixel size along weight_axis, mm.
    c.corruption.weight_full_side = "both"  # "both", "lower" or "higher": side kept at 1.
    c.corruption.b0_hz = (0.0,)  # Peak breathing off-resonance, Hz: grid values.
    c.corruption.field_map = ""  # "" (uniform field) or "lungs" (strongest at the lungs' edges).
    c.corruption.field_lungs = (0.5, 0.78)  # Lungs' edges (fractions of field_axis): phantom v2.
    c.corruption.field_axis = 1  # 0: rows, 1: columns (the readout along the spine).
    c.corruption.field_decay_mm = 60.0  # Decay length away from the lungs' edges, mm.
    c.corruption.field_spacing_mm = 1.0  # Pixel size along field_axis, mm.
    c.corruption.readout_bandwidth_hz_per_px = 0.0  # > 0: off-resonance shifts the readout.
    c.corruption.coils = 0  # Receive coils: 0 = one ideal coil (the seed); C >= 1 coil maps.
    c.corruption.coil_correlation = 0.0  # Noise correlation between every pair of coils.

    c.model = ml_collections.ConfigDict()
    # kspace_unet (the seed's: k-space in and out), image_unet (zero-filled image in, corrected
    # image out), motion_unet (per-line displacement predicted, undone exactly, then an image
    # U-Net), estimate_unet (the training-free estimate undone, then an image U-Net); see
    # kmri_jax/train/networks.py.
    c.model.kind = "kspace_unet"
    # With corruption.coils = C: "combined" (the adjoint-SENSE combined k-space, 2 channels)
    # or "coils" (every coil's k-space, 2C channels, residual on the combined; not motion_unet).
    c.model.input = "combined"
    # Network input scale s = max|K| + 1e-8 of the corrupted k-space (what exists at inference)
    # or of the clean one ("clean": the seed's normalisation).
    c.model.input_scale = "corrupted"
    c.model.motion_channels = 16  # motion_unet: width and depth of the motion network.
    c.model.motion_depth = 4
    c.model.base_channels = 32
    c.model.residual = True  # Predict a correction added to the input (False: the seed).
    c.model.compute_dtype = "float32"  # "bfloat16": mixed precision, float32 parameters.
    c.model.remat = False  # Recompute U-Net block activations in the backward pass (memory).
    # 3x3 convolutions: "lax" or "im2col" (one matrix product of 9 shifted copies, 9x the
    # activation memory; faster or slower by processor, docs/profile.md). Same parameters.
    c.model.conv = "lax"

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 32  # Global: split over all devices and hosts.
    c.train.num_epochs = 20
    c.train.max_steps = 0  # > 0: stop after this many steps (smoke tests).
    c.train.learning_rate = 1e-3
    c.train.end_learning_rate = 1e-6
    c.train.lr_per_epoch = False  # True: the seed's CosineAnnealingLR, stepped per epoch.
    c.train.loss = "seed_masked_l1"  # seed_masked_l1 | kspace_l1 | image_l1 | hybrid
    c.train.loss_weights = ml_collections.ConfigDict({"kspace_l1": 1.0, "image_l1": 0.0})
    c.train.displacement_weight = 0.1  # motion_unet: weight of the displacement L1 (px) term.
    # estimate_unet trains on the true displacement undone (with the estimate's constant),
    # optionally spoiled as an estimate is: per sample up to this fraction of lines left
    # uncorrected, and an error of up to this fraction of the displacement's spread on the
    # others (kmri_jax/train/spoil.py). 0.3 / 0.3 did not help at the quickstart's
    # budget (docs/results.md).
    c.train.spoil_keep = 0.0
    c.train.spoil_jitter = 0.0
    c.train.augment = ""  # Comma-separated "flips", "zoom", "gamma": change the clean slices first.
    c.train.log_every_steps = 50

    c.eval = ml_collections.ConfigDict()
    c.eval.every_epochs = 1
    c.eval.batch_size = 32
    c.eval.split = "val"
    c.eval.combinations = "all"  # Per slice: "all" 81, "orthogonal" (balanced 9), or "0,40,80".
    c.eval.seed = 0  # Fixed evaluation corruption: the same inputs for every run and epoch.
    c.eval.num_images = 4  # Samples shown in TensorBoard at each evaluation.
    # Reported beside the network on the same fixed corruption, once per run: the corrupted
    # input, the oracle (true motion undone, zero-filled), the training-free motion estimate.
    c.eval.baselines = "input,oracle,estimate"

    # kmri_jax.correct.estimate_motion's options (the "estimate" method, and the search of the
    # motion_unet and estimate_unet kinds); the defaults are the function's own
    # (docs/correction.md).
    c.correct = ml_collections.ConfigDict()
    c.correct.max_shift = 10.0  # Largest displacement searched, px.
    c.correct.hermitian = True  # Couple conjugate line pairs (a real object).
    c.correct.n_outer = 160  # Joint stage: outer iterations (0: autofocus only) ...
    c.correct.n_inner = 15  # ... and TV iterations per outer one.
    c.correct.search_step = 0.25  # Joint stage: grid step of the per-line search, px.
    c.correct.prior = True  # Joint stage: Gaussian displacement prior from the centre lines.
    c.correct.range_margin = 0.5  # Range guard of the strongest lines (None: off).

    c.runtime = ml_collections.ConfigDict()
    # CPU backend only: XLA devices to split the cores into (0 = one per core, dividing both
    # batch sizes; 1 = a single device). Several keep both cores busy: 1.4x on 2 cores.
    c.runtime.cpu_devices = 0
    # CPU backend only: "auto"/"keep" let glibc's malloc keep the memory XLA frees, so each
    # step reuses its pages instead of faulting in new ones (12% faster steps on 2 cores;
    # compiling ~30% slower, resident memory stays at its peak); "system": glibc's defaults.
    c.runtime.cpu_malloc = "auto"
    # Persistent XLA compilation cache: a resumed/requeued run skips compiling ("" = off).
    c.runtime.compilation_cache = "~/.cache/kmri_jax/xla"
    # JAX profiler trace of steps profile_start_step+1 .. +profile_steps of this run (counted
    # from where it started or resumed) into <workdir>/tensorboard (Profile tab); 0 = off.
    c.runtime.profile_steps = 0
    c.runtime.profile_start_step = 10

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.max_to_keep = 3
    c.checkpoint.every_steps = 0  # 0: at the end of each epoch (after evaluation) only.
    c.checkpoint.best_metric = "val_SSIM"
    c.checkpoint.best_mode = "max"
    c.checkpoint.async_save = True

    c.lock()
    return c


def image_domain_config(kind: str, data_root: str | None = None) -> ml_collections.ConfigDict:
    """:func:`base_config` with the recipe the image-domain kinds share (``image_unet``,
    ``motion_unet``, ``estimate_unet``): ``model.kind = kind``, a k-space + image L1
    (``train.loss = "hybrid"``, weights 1 and 1) at ``train.learning_rate = 5e-4``;
    ``data_root``: optional ``data.root``. The experiments in ``experiments/`` start here."""
    c = base_config()
    if data_root:
        c.data.root = data_root
    c.model.kind = kind
    c.train.loss = "hybrid"
    c.train.loss_weights = {"kspace_l1": 1.0, "image_l1": 1.0}
    c.train.learning_rate = 5e-4
    return c
