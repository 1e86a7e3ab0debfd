"""When each phase-encode line is acquired: the ordering of lines into echo trains.

A turbo (fast) spin echo acquires ``ETL`` lines per excitation (a *shot*), one per echo,
``echo_spacing`` apart; shots are ``TR`` apart. Acquisition slot ``a = 0, 1, ...`` is echo
``e = a % ETL`` of shot ``s = a // ETL``, at time ``s * TR + TE + e * echo_spacing``. The
seed acquires one line per TR in k-space order (``ordering="sequential"``, ``ETL = 1``):
``t[ky] = ky * TR + TE``.

Orderings (``n_shots = ceil(n / ETL)``, ``n`` lines):

* ``"sequential"``: slot ``a`` acquires the ``a``-th line (``ky = a`` when fully sampled).
* ``"segmented"``: slot ``(s, e)`` acquires entry ``e * n_shots + s`` of the lines in
  ``ky`` order, so echo ``e`` fills contiguous k-space segment ``e`` (the linear TSE order).
* ``"centric"``: the lines ordered by increasing ``|ky - ny // 2|`` (ties: lower ``ky``
  first); slot ``(s, e)`` takes entry ``e * n_shots + s`` of that order, so the early echoes
  (the highest signal, the least T2 decay) fill the centre of k-space.

With a line ``mask``, only acquired lines take slots: the ordering is applied to the acquired
lines (``n`` = their number, ``ky`` order and centre distance as above), so skipped lines cost
no scan time and a segmented train still fills contiguous segments of what it acquires. A line
that is not acquired gets the time of the slot it would take if it were inserted into that
sequence (finite, within the scan; its data are zeroed anyway).

Reference for the sequence: Bernstein, King, Zhou, *Handbook of MRI Pulse Sequences*
(Elsevier 2004), ch. 16 (RARE / fast spin echo: echo trains, view ordering).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

ORDERINGS = ("sequential", "segmented", "centric")


def sequence_rank(n_lines: int, ordering: str) -> np.ndarray:
    """Position of each line in the ordering's sequence (before echo interleaving), ``[n]``.

    ``"sequential"`` and ``"segmented"`` rank lines by ``ky``; ``"centric"`` by
    ``|ky - n // 2|`` with ties lower ``ky`` first. A static numpy permutation.
    """
    if ordering not in ORDERINGS:
        raise ValueError(f"ordering must be one of {ORDERINGS}; got {ordering!r}.")
    ky = np.arange(n_lines)
    if ordering == "centric":
        order = np.lexsort((ky, np.abs(ky - n_lines // 2)))  # distance first, then ky
    else:
        order = ky
    rank = np.empty(n_lines, np.int64)
    rank[order] = ky
    return rank


def check_echo_train(ordering: str, echo_train_length: int, echo_spacing) -> None:
    """Raise ``ValueError`` for an unknown ordering, an echo train length that is not a
    positive int, or (when concrete) a negative or non-finite echo spacing."""
    if ordering not in ORDERINGS:
        raise ValueError(f"ordering must be one of {ORDERINGS}; got {ordering!r}.")
    if int(echo_train_length) != echo_train_length or echo_train_length < 1:
        raise ValueError(
            f"echo_train_length must be a positive int (1 = one line per TR); "
            f"got {echo_train_length!r}."
        )
    if not isinstance(echo_spacing, jax.core.Tracer):
        es = np.asarray(echo_spacing, np.float64)
        if es.ndim or not np.isfinite(es) or es < 0:
            raise ValueError(f"echo_spacing must be a finite scalar >= 0 seconds; "
                             f"got {echo_spacing!r}.")


def line_slots(
    n_lines: int,
    *,
    ordering: str = "sequential",
    echo_train_length: int = 1,
    mask: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Shot and echo index of each phase-encode line (module docstring for the orderings).

    Args:
      n_lines: number of lines ``ny`` (static int).
      ordering: ``"sequential"`` (the seed), ``"segmented"`` or ``"centric"`` (static).
      echo_train_length: lines per shot, ``ETL`` (static int; 1 = the seed).
      mask: optional ``[n_lines]`` bool, acquired lines (may be traced); only these take slots.

    Returns:
      ``(shot, echo)``, two ``[n_lines]`` int32 arrays.
    """
    if int(n_lines) != n_lines or n_lines < 1:
        raise ValueError(f"n_lines must be a positive int; got {n_lines!r}.")
    n_lines = int(n_lines)
    check_echo_train(ordering, echo_train_length, 0.0)
    etl = int(echo_train_length)
    rank = sequence_rank(n_lines, ordering)
    if mask is None:
        entry = jnp.asarray(rank, jnp.int32)
        n_acquired = jnp.asarray(n_lines, jnp.int32)
    else:
        mask = jnp.asarray(mask, bool)
        if mask.shape != (n_lines,):
            raise ValueError(f"mask must be [{n_lines}] bool (one per line); got shape "
                             f"{tuple(mask.shape)}.")
        order = np.argsort(rank)  # lines in sequence order
        in_order = mask[order].astype(jnp.int32)
        before = jnp.cumsum(in_order) - in_order  # acquired lines earlier in the sequence
        entry = jnp.zeros(n_lines, jnp.int32).at[order].set(before)
        n_acquired = jnp.maximum(jnp.sum(in_order), 1)
    if ordering == "sequential":
        return entry // etl, entry % etl
    n_shots = (n_acquired + etl - 1) // etl
    return entry % n_shots, entry // n_shots


def _scalar_times(tr, te, echo_spacing):
    dtype = jnp.result_type(tr, te, jnp.float32)
    tr, te, echo_spacing = (jnp.asarray(v, dtype) for v in (tr, te, echo_spacing))
    if tr.ndim or te.ndim or echo_spacing.ndim:
        raise ValueError("line_times expects scalar tr, te and echo_spacing; use jax.vmap for "
                         "a batch.")
    return dtype, tr, te, echo_spacing


def line_times(
    n_lines: int,
    *,
    tr: jax.typing.ArrayLike,
    te: jax.typing.ArrayLike,
    ordering: str = "sequential",
    echo_train_length: int = 1,
    echo_spacing: jax.typing.ArrayLike = 0.0,
    mask: jax.Array | None = None,
) -> jax.Array:
    """Acquisition time of each phase-encode line, ``shot * tr + te + echo * echo_spacing``
    (:func:`line_slots`; module docstring for the orderings).

    Args:
      n_lines: number of lines ``ny`` (static int).
      tr: repetition time (time between shots), seconds (scalar, may be traced).
      te: echo time of the first echo, seconds (scalar, may be traced).
      ordering: ``"sequential"`` (the seed), ``"segmented"`` or ``"centric"`` (static).
      echo_train_length: lines per shot, ``ETL`` (static int; 1 = the seed).
      echo_spacing: time between echoes of a train, seconds (scalar, may be traced).
      mask: optional ``[n_lines]`` bool, acquired lines (may be traced); only these take slots.

    Returns:
      ``[n_lines]`` float32 times in seconds (float64 if ``tr``/``te`` are float64). With the
      defaults, ``t[ky] = ky * tr + te`` exactly.
    """
    check_echo_train(ordering, echo_train_length, echo_spacing)
    dtype, tr, te, echo_spacing = _scalar_times(tr, te, echo_spacing)
    if ordering == "sequential" and echo_train_length == 1 and mask is None:
        if int(n_lines) != n_lines or n_lines < 1:
            raise ValueError(f"n_lines must be a positive int; got {n_lines!r}.")
        return jnp.arange(int(n_lines), dtype=dtype) * tr + te  # the seed, bit for bit
    shot, echo = line_slots(n_lines, ordering=ordering, echo_train_length=echo_train_length,
                            mask=mask)
    return shot.astype(dtype) * tr + te + echo.astype(dtype) * echo_spacing


def echo_times(
    n_lines: int,
    *,
    te: jax.typing.ArrayLike,
    ordering: str = "sequential",
    echo_train_length: int = 1,
    echo_spacing: jax.typing.ArrayLike = 0.0,
    mask: jax.Array | None = None,
) -> jax.Array:
    """Echo time of each line, ``te + echo * echo_spacing`` (``te`` everywhere for ETL 1):
    the time from its excitation over which off-resonance builds up phase. ``[n_lines]``."""
    check_echo_train(ordering, echo_train_length, echo_spacing)
    dtype, _, te, echo_spacing = _scalar_times(0.0, te, echo_spacing)
    if echo_train_length == 1:
        return jnp.full((int(n_lines),), te, dtype)
    _, echo = line_slots(n_lines, ordering=ordering, echo_train_length=echo_train_length,
                         mask=mask)
    return te + echo.astype(dtype) * echo_spacing


def scan_duration(n_lines: int, *, tr: float, te: float, echo_train_length: int = 1,
                  echo_spacing: float = 0.0) -> float:
    """Time of the last slot of a fully sampled scan, seconds (an upper bound with a mask)."""
    n_shots = -(-int(n_lines) // int(echo_train_length))
    echoes = min(int(echo_train_length), int(n_lines))
    return (n_shots - 1) * tr + te + (echoes - 1) * echo_spacing
