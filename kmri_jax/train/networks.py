"""What each kind of network sees and predicts (``config.model.kind``), from corrupted k-space.

Every kind maps a batch of :class:`kmri_jax.sim.Corrupted` to a :class:`Prediction` in one
common currency: k-space channels ``[B, 2, ny, nx]`` divided by the input scale ``s``, next
to the clean target in the same units, so that one set of losses and metrics serves them all.
Only what exists at inference enters a network: the corrupted k-space and its line mask; the
scale is ``s = max|K_corrupted| + 1e-8`` (``model.input_scale = "corrupted"``, the default) or,
to reproduce the seed exactly, ``max|K_clean| + 1e-8`` (``"clean"``, ``seed_replica``).

- ``kspace_unet`` (the seed's): ``[Re, Im](K_c) / s`` in, corrected k-space channels out.
- ``image_unet``: the zero-filled complex image ``z = ifft2c(K_c)`` in, as ``[Re, Im](z) / m``
  with ``m = max|z| + 1e-8``; the corrected complex image out (the network is residual: it
  starts as the zero-filled image); the prediction is its k-space.
- ``motion_unet``: each line's readout displacement is estimated, the motion undone exactly
  (:func:`kmri_jax.correct.undo_motion`), and an image U-Net, as ``image_unet``, removes what
  physics cannot (undersampling, noise). The displacement is the training-free
  :func:`kmri_jax.correct.estimate_motion` (options ``config.correct``) plus a correction that
  a motion network predicts from the lines with that estimate undone (the network starts at
  zero, i.e. at the estimate, and learns what the search cannot tell apart, e.g. a line one
  vertebra off). Trained end to end: the displacement has a loss of its own against the true
  one (known in simulation), and the image loss reaches the motion network through the exact
  undo; no gradient flows into the search.
- ``estimate_unet``: :func:`kmri_jax.correct.estimate_motion`'s displacement undone, then an
  image U-Net as ``image_unet``. In training the step undoes the true displacement (known in
  simulation, with the estimate's constant; optionally spoiled as an estimate is:
  :mod:`.spoil`, ``train.spoil_keep`` / ``train.spoil_jitter``) instead of running
  the search, so a step costs what ``image_unet``'s does; evaluation and inference run the
  search (once per fixed evaluation corruption).

With receive coils (``corruption.coils = C``) every kind reads the adjoint-SENSE combined
k-space (``model.input = "combined"``). ``model.input = "coils"`` (``kspace_unet``,
``image_unet``) feeds every coil instead: ``[Re, Im]`` of each coil's k-space (or zero-filled
coil image for ``image_unet``), in the same units, ``2C`` channels in; the residual adds the
network's 2 output channels to the combined view's, which stays the target's domain.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from kmri_jax import correct, sim
from kmri_jax.config import ConfigValueError
from kmri_jax.train.spoil import spoiled_displacement

KINDS = ("kspace_unet", "image_unet", "motion_unet", "estimate_unet")
SEARCHING_KINDS = ("motion_unet", "estimate_unet")
"""Kinds that run :func:`kmri_jax.correct.estimate_motion` and read the combined k-space."""
INPUT_SCALES = ("corrupted", "clean")
INPUTS = ("combined", "coils")


def input_channels(config: ml_collections.ConfigDict) -> int:
    """Channels the network reads: 2, or ``2C`` with ``model.input = "coils"``."""
    if config.model.get("input", "combined") == "coils":
        return 2 * int(config.corruption.coils)
    return 2


@dataclasses.dataclass(frozen=True)
class Network:
    """Which network a run trains and how (static; from ``config.model`` and ``config.train``).

    Attributes:
      kind: one of :data:`KINDS`.
      input_scale: ``"corrupted"`` or ``"clean"`` (see the module doc).
      displacement_weight: weight of the displacement L1 (px) in the loss of ``motion_unet``.
      estimate_options: ``(name, value)`` options of ``correct.estimate_motion``.
      input: ``"combined"`` or ``"coils"`` (see the module doc).
      in_channels: channels the network reads (:func:`input_channels`).
      spoil: ``(keep, jitter)`` of :func:`.spoil.spoiled_displacement`
        (``estimate_unet``'s training input).
    """

    kind: str = "kspace_unet"
    input_scale: str = "corrupted"
    displacement_weight: float = 0.0
    estimate_options: tuple[tuple[str, Any], ...] = ()
    input: str = "combined"
    in_channels: int = 2
    spoil: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict) -> Network:
        m = config.model
        if m.kind not in KINDS:
            raise ConfigValueError(f"model.kind must be one of {KINDS}, got {m.kind!r}")
        if m.input_scale not in INPUT_SCALES:
            raise ConfigValueError(f"model.input_scale must be one of {INPUT_SCALES}, got "
                                   f"{m.input_scale!r}")
        if m.kind != "kspace_unet" and not m.residual:
            raise ConfigValueError(f"model.kind={m.kind!r} is residual in the image domain; "
                                   "drop --config.model.residual=False")
        if m.input not in INPUTS:
            raise ConfigValueError(f"model.input must be one of {INPUTS}, got {m.input!r}")
        if m.input == "coils" and not config.corruption.coils:
            raise ConfigValueError("model.input='coils' reads every receive coil: set "
                                   "corruption.coils to their number (e.g. 8)")
        if m.input == "coils" and m.kind in SEARCHING_KINDS:
            raise ConfigValueError(f"model.kind={m.kind!r} reads the combined k-space: use "
                                   "model.input='combined' (or kind kspace_unet/image_unet)")
        spoil = (float(config.train.spoil_keep), float(config.train.spoil_jitter))
        if not (0.0 <= spoil[0] <= 1.0 and spoil[1] >= 0.0):
            raise ConfigValueError("train.spoil_keep must be in [0, 1] and train.spoil_jitter "
                                   f">= 0; got {spoil[0]!r} and {spoil[1]!r}")
        return cls(kind=m.kind, input_scale=m.input_scale,
                   displacement_weight=float(config.train.displacement_weight),
                   estimate_options=tuple(sorted(config.correct.items())), input=m.input,
                   in_channels=input_channels(config), spoil=spoil)

    def predict(self, run: Callable[[Callable[[Any], Any]], Any], corrupted: sim.Corrupted,
                *, train_key: jax.Array | None = None, searched: jax.Array | None = None
                ) -> Prediction:
        """:func:`predict` with this network's kind and input scale.

        ``train_key``: in a training step, the key of ``estimate_unet``'s spoiled true
        displacement (it replaces the search). ``searched``: ``[B, ny]`` the search's
        displacement when already computed (evaluation reuses its baseline's).
        """
        if self.kind == "estimate_unet" and train_key is not None:
            keep, jitter = self.spoil
            searched = spoiled_displacement(
                train_key, corrupted.displacement, corrupted.mask, keep=keep, jitter=jitter)
        return predict(run, corrupted, kind=self.kind, scale_from=self.input_scale,
                       estimate_options=dict(self.estimate_options),
                       coils=self.input == "coils", searched=searched)


class Prediction(NamedTuple):
    """One batch through a network (leaves with a leading ``[B]``).

    Attributes:
      kspace: ``[B, 2, ny, nx]`` float32 predicted k-space channels, divided by ``scale``.
      target: ``[B, 2, ny, nx]`` float32 clean k-space channels, divided by ``scale``.
      scale: ``[B]`` the input scale ``s``.
      displacement: ``[B, ny]`` float32 predicted displacement (px, with the constant of
        ``correct.centre_displacement``; 0 off the acquired lines), or None for kinds that
        predict none.
    """

    kspace: jax.Array
    target: jax.Array
    scale: jax.Array
    displacement: jax.Array | None = None


def input_scale(corrupted: sim.Corrupted, how: str) -> jax.Array:
    """``s [B] = max|K| + 1e-8`` of the corrupted (default) or the clean k-space."""
    k = corrupted.kspace if how == "corrupted" else corrupted.clean
    return jnp.max(jnp.abs(k), axis=(-2, -1)) + 1e-8


def channels(kspace: jax.Array, scale: jax.Array) -> jax.Array:
    """``[B, ny, nx]`` complex k-space -> ``[B, 2, ny, nx]`` float32 channels divided by ``scale``."""
    return (sim.to_channels(kspace) / scale[:, None, None, None]).astype(jnp.float32)


def coil_channels(coils: jax.Array, scale: jax.Array) -> jax.Array:
    """``[B, C, ny, nx]`` complex -> ``[B, 2C, ny, nx]`` float32: ``[Re, Im]`` of each coil in
    turn, divided by ``scale``."""
    b, c, ny, nx = coils.shape
    parts = jnp.stack([coils.real, coils.imag], axis=2) / scale[:, None, None, None, None]
    return parts.reshape(b, 2 * c, ny, nx).astype(jnp.float32)


def _call(model: Callable[..., jax.Array], combined: jax.Array, coils: jax.Array | None,
          scale: jax.Array) -> jax.Array:
    """The U-Net on the combined channels, or on the coils' with the combined as residual base."""
    if coils is None:
        return model(combined)
    return model(coil_channels(coils, scale), base=combined)


def _image_stage(net: Callable[[jax.Array], jax.Array], kspace: jax.Array, scale: jax.Array,
                 coil_kspace: jax.Array | None = None) -> jax.Array:
    """Zero-filled image (and coil images) -> residual image network -> its k-space, as
    channels / ``scale``."""
    z = sim.kspace_to_image(kspace)
    m = jnp.max(jnp.abs(z), axis=(-2, -1)) + 1e-8
    coil_images = None if coil_kspace is None else sim.kspace_to_image(coil_kspace)
    y = _call(net, channels(z, m), coil_images, m).astype(jnp.float32)
    corrected = sim.from_channels(y) * m[:, None, None].astype(z.dtype)
    return channels(sim.image_to_kspace(corrected), scale)


def motion_features(kspace: jax.Array, mask: jax.Array) -> jax.Array:
    """What the motion network reads: the hybrid space ``h = ifft_x(K)`` (each line as the 1-D
    image it encodes, shifted by its own displacement) and the conjugate of its mirror line
    ``conj(h[-ky])`` (for a real object the same profile with the mirror line's displacement),
    both divided by the largest ``|h|``, and the line mask: ``[B, 5, ny, nx]`` float32."""
    h = jnp.fft.fftshift(jnp.fft.ifft(jnp.fft.ifftshift(kspace, axes=-1), axis=-1), axes=-1)
    h_mirror = jnp.conj(h[:, _mirror_rows(kspace.shape[-2]), :])
    top = jnp.max(jnp.abs(h), axis=(-2, -1), keepdims=True) + 1e-12
    m = jnp.broadcast_to(mask[:, :, None].astype(jnp.float32), h.shape)
    parts = [h.real / top, h.imag / top, h_mirror.real / top, h_mirror.imag / top]
    return jnp.stack([p.astype(jnp.float32) for p in parts] + [m], axis=1)


def _mirror_rows(ny: int) -> jax.Array:
    """Row of the line ``-ky`` for each row of a centred grid (DC at ``ny // 2``); rows whose
    mirror falls outside the grid (``ky = -ny/2`` for even ``ny``) map to themselves."""
    rows = jnp.arange(ny)
    mirror = 2 * (ny // 2) - rows
    return jnp.where((mirror >= 0) & (mirror < ny), mirror, rows)


def forward(run: Callable[[Callable[[Any], Any]], Any], kspace: jax.Array, mask: jax.Array,
            scale: jax.Array, *, kind: str, estimate_options: dict[str, Any] | None = None,
            coil_kspace: jax.Array | None = None, searched: jax.Array | None = None
            ) -> tuple[jax.Array, jax.Array | None]:
    """The network on corrupted k-space alone (training, evaluation and inference alike).

    Args:
      run: ``run(f)`` calls ``f(model)`` with the merged network (and takes care of its
        BatchNorm state), e.g. :func:`kmri_jax.train.state.run_model` with its state bound.
      kspace: ``[B, ny, nx]`` complex corrupted k-space.
      mask: ``[B, ny]`` bool acquired lines.
      scale: ``[B]`` the input scale ``s``.
      kind: one of :data:`KINDS`.
      estimate_options: options of ``correct.estimate_motion`` (``motion_unet``).
      coil_kspace: ``[B, C, ny, nx]`` corrupted coil k-space, for a network that reads coils
        (``model.input = "coils"``); None otherwise.
      searched: ``motion_unet`` / ``estimate_unet``: ``[B, ny]`` px, the search's
        displacement when already computed (evaluation reuses its baseline's; the training
        step of ``estimate_unet`` passes its spoiled true displacement); None: run the search.

    Returns:
      ``[B, 2, ny, nx]`` float32 predicted k-space channels divided by ``scale``, and the
      predicted displacement ``[B, ny]`` (``correct.centre_displacement``'s constant) or None.
    """
    if kind == "kspace_unet":
        x = channels(kspace, scale)
        return run(lambda model: _call(model, x, coil_kspace, scale).astype(jnp.float32)), None
    if kind == "image_unet":
        return run(lambda model: _image_stage(model, kspace, scale, coil_kspace)), None
    if kind not in SEARCHING_KINDS:
        raise ValueError(f"model.kind must be one of {KINDS}, got {kind!r}")
    if coil_kspace is not None:
        raise ValueError(f"model.kind={kind!r} reads the combined k-space only")
    if searched is None:
        options = estimate_options or {}
        searched = jax.vmap(lambda k, m: correct.estimate_motion(k, m, **options))(kspace, mask)
    first = jax.lax.stop_gradient(searched)
    undone = correct.undo_motion(kspace, first)
    if kind == "estimate_unet":
        return run(lambda model: _image_stage(model, undone, scale)), None

    def both(model):  # motion_unet
        step = model.motion(motion_features(undone, mask)).astype(jnp.float32)
        d = correct.centre_displacement(first + step, mask)
        return _image_stage(model.image, correct.undo_motion(kspace, d), scale), d

    return run(both)


def predict(run: Callable[[Callable[[Any], Any]], Any], corrupted: sim.Corrupted, *, kind: str,
            scale_from: str = "corrupted", estimate_options: dict[str, Any] | None = None,
            coils: bool = False, searched: jax.Array | None = None) -> Prediction:
    """:func:`forward` on a simulated batch, with the clean target in the same units.

    ``scale_from``: ``"corrupted"`` or ``"clean"`` (see the module doc); ``coils``: also feed
    ``corrupted.coil_kspace``; ``searched``: see :func:`forward`.
    """
    scale = input_scale(corrupted, scale_from)
    if coils and corrupted.coil_kspace is None:
        raise ValueError("model.input='coils' needs coil data: corruption.coils >= 1")
    pred, displacement = forward(run, corrupted.kspace, corrupted.mask, scale, kind=kind,
                                 estimate_options=estimate_options,
                                 coil_kspace=corrupted.coil_kspace if coils else None,
                                 searched=searched)
    return Prediction(pred, channels(corrupted.clean, scale), scale, displacement)
