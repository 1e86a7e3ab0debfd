"""Process-wide JAX settings from ``config.runtime``; applied before anything runs on JAX.

- :func:`configure_cpu_devices`: on the CPU backend, one XLA device per core, so the
  data-parallel step keeps every core busy (GPU runs are unaffected).
- :func:`configure_cpu_allocator`: on the CPU backend, glibc's malloc keeps the memory XLA
  frees, so each step reuses the previous step's pages instead of faulting in new ones.
- :func:`enable_compilation_cache`: a persistent XLA compilation cache, so a resumed or
  requeued run, or a second run of the same config, does not compile its steps again.
- :func:`warn_cpu_bfloat16`: says so when bfloat16 compute is asked of the CPU backend, where it
  does not make the step faster.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import logging
import math
import os
import pkgutil
import platform
from collections.abc import Sequence
from pathlib import Path

import jax

from kmri_jax.config import ConfigValueError

__all__ = ["CPU_MALLOC", "configure_cpu_allocator", "configure_cpu_devices", "cpu_device_count",
           "enable_compilation_cache", "fewer_devices_than_cores", "usable_cpus",
           "warn_cpu_bfloat16"]

log = logging.getLogger(__name__)


def cpu_device_count(*, batch_sizes: Sequence[int], cpus: int | None = None) -> int:
    """How many XLA devices to split the CPU into: one per core, dividing every batch.

    The largest divisor of ``gcd(batch_sizes)`` that is at most ``cpus`` (default: the cores
    this process may run on). On a 2-core CPU with batch 8 that is 2: the train step then
    runs as two half-batch programs side by side, which keeps both cores busy (XLA:CPU runs
    the many small BatchNorm/ReLU/transpose fusions of one program on one thread at a time).
    """
    if cpus is None:
        cpus = usable_cpus()
    common = math.gcd(*(int(b) for b in batch_sizes))
    return max(n for n in range(1, max(1, min(cpus, common)) + 1) if common % n == 0)


def usable_cpus() -> int:
    """The cores this process may run on (SLURM/taskset affinity), else all of them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def fewer_devices_than_cores(count: int, *, cpus: int, batch_sizes: Sequence[int]) -> str | None:
    """A note for the log when the automatic count leaves cores to share a device, else None.

    A device with several cores runs its share of the batch on them less well than one
    device per core does (docs/profile.md: 143 ms for one sample on one two-core device
    against 97 ms per sample on two one-core devices, 128 x 128).
    """
    if count >= cpus:
        return None
    sizes = ", ".join(str(int(b)) for b in batch_sizes)
    return (f"{count} XLA CPU device{'s' if count > 1 else ''} for {cpus} cores: no larger "
            f"count divides the batch sizes ({sizes}); batch sizes that are multiples of "
            f"{cpus} would give every core its own device, the faster split")


def _cpu_is_the_backend() -> bool:
    """Whether JAX will run on the CPU: ``JAX_PLATFORMS`` says so, or no accelerator plugin
    (CUDA, ROCm, TPU) is installed. Decided without starting JAX."""
    platforms = (jax.config.jax_platforms or "").strip()
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    if importlib.metadata.entry_points(group="jax_plugins"):
        return False
    try:
        plugins = importlib.util.find_spec("jax_plugins")
    except (ImportError, ValueError):
        plugins = None
    return plugins is None or not any(pkgutil.iter_modules(plugins.submodule_search_locations))


def configure_cpu_devices(
    requested: int, *, batch_sizes: Sequence[int], multi_process: bool = False
) -> int | None:
    """Splits the CPU backend into several XLA devices; call before anything runs on JAX.

    Only the CPU backend is affected, and automatic mode acts only where JAX will run on
    the CPU (``JAX_PLATFORMS=cpu``, or no accelerator plugin installed): a GPU install keeps
    JAX's defaults.
    Nothing is changed when the user already chose (``--xla_force_host_platform_device_count``
    in ``XLA_FLAGS``, ``JAX_NUM_CPU_DEVICES`` or ``jax_num_cpu_devices`` set in code) or when
    JAX's backends are already running (e.g. inside a test session).

    Args:
      requested: ``config.runtime.cpu_devices``: 0 = automatic (:func:`cpu_device_count`,
        single-process CPU runs only), N >= 1 = exactly N.
      batch_sizes: the global batch sizes the mesh must divide (train and eval).
      multi_process: this run spans several processes (automatic mode leaves it at 1 device).

    Returns:
      The CPU device count set, or None when it was left as it was.
    """
    if requested < 0:
        raise ConfigValueError(
            f"config.runtime.cpu_devices must be >= 0 (0 = automatic, 1 = one device); "
            f"got {requested}"
        )
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return None
    if jax.config.jax_num_cpu_devices != -1:  # Set by JAX_NUM_CPU_DEVICES or in code.
        return None
    if requested == 0 and (multi_process or not _cpu_is_the_backend()):
        return None
    cpus = usable_cpus()
    count = requested or cpu_device_count(batch_sizes=batch_sizes, cpus=cpus)
    note = None if requested else fewer_devices_than_cores(count, cpus=cpus,
                                                           batch_sizes=batch_sizes)
    if note:
        log.info(note)
    if count == 1 and not requested:
        return None
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # Backends already initialised: their devices stay as they are.
        log.info("JAX already running: CPU device count left at its current value")
        return None
    log.info("CPU backend split into %d XLA devices%s (--config.runtime.cpu_devices=1: one)",
             count, "" if requested else ", one per core dividing the batch sizes")
    return count


CPU_MALLOC = ("auto", "keep", "system")

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
# Environment variables through which a user sets glibc's malloc up themselves.
_MALLOC_ENV = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_",
               "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def _jax_is_running() -> bool:
    """Whether JAX's backends (and their worker threads) have started."""
    from jax._src import xla_bridge

    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if started else bool(getattr(xla_bridge, "_backends", None))


def configure_cpu_allocator(mode: str) -> bool:
    """Lets the process keep, and reuse, the memory XLA:CPU frees; call before JAX starts.

    XLA:CPU takes each step's buffers from ``malloc`` and frees them when the step ends.
    glibc hands large blocks, and every block of a worker thread's arena that exceeds its
    heap, back to the kernel at once, so the next step faults each page in again: at
    128 x 128, batch 8, on 2 CPU devices, 116,000 page faults and ~0.2 s of kernel time per
    ~0.8 s step (docs/profile.md). ``"keep"`` sets glibc's malloc (``mallopt``) to serve all
    threads from the main arena (``M_ARENA_MAX = 1``), from the heap rather than from fresh
    mappings (``M_MMAP_MAX = 0``), and never to shrink that heap (``M_TRIM_THRESHOLD = -1``):
    each step then reuses the pages of the one before, and the process's resident memory
    stays at its peak instead of returning to the system between steps. Threads that
    already have their arena keep it, hence "before JAX starts". The price is paid in
    compilation: XLA's compiler threads then share that one arena, and compiling took ~30%
    longer; so only training, whose steps dominate and whose programs are cached, sets it.

    Args:
      mode: ``config.runtime.cpu_malloc``. ``"auto"``: ``"keep"`` when JAX will run on the
        CPU (as :func:`configure_cpu_devices` decides), the C library is glibc, JAX has not
        started and the user set none of glibc's ``MALLOC_*`` variables; otherwise nothing.
        ``"keep"``: always (glibc only; with JAX already running, only for threads started
        later). ``"system"``: leave the C library's allocator as it is.

    Returns:
      Whether the allocator was set up.
    """
    if mode not in CPU_MALLOC:
        raise ConfigValueError(
            f"config.runtime.cpu_malloc must be one of {CPU_MALLOC}; got {mode!r}")
    if mode == "system":
        return False
    glibc = platform.libc_ver()[0] == "glibc"
    if mode == "auto":
        user_set = (any(v in os.environ for v in _MALLOC_ENV)
                    or "malloc" in os.environ.get("GLIBC_TUNABLES", ""))
        if not glibc or user_set or _jax_is_running() or not _cpu_is_the_backend():
            return False
    elif not glibc:
        raise ConfigValueError(
            "config.runtime.cpu_malloc='keep' needs glibc's malloc (Linux with glibc); "
            f"this C library is {platform.libc_ver()[0] or 'unknown'}: use 'auto' or 'system'")
    elif _jax_is_running():
        log.warning("config.runtime.cpu_malloc='keep' set after JAX started: XLA's running "
                    "threads keep their own arenas")
    libc = ctypes.CDLL(None)
    applied: list[str] = []
    for name, param, value in (("M_ARENA_MAX", _M_ARENA_MAX, 1), ("M_MMAP_MAX", _M_MMAP_MAX, 0),
                               ("M_TRIM_THRESHOLD", _M_TRIM_THRESHOLD, -1)):
        if libc.mallopt(param, value) != 1:
            log.warning("mallopt(%s, %d) failed (%s): freed memory may still go back to the "
                        "system between steps", name, value,
                        f"{', '.join(applied)} already set" if applied else "nothing changed")
            return False
        applied.append(name)
    log.info("CPU allocator: freed memory is kept for reuse (--config.runtime.cpu_malloc=system: "
             "the C library's default)")
    return True


def enable_compilation_cache(directory: str) -> Path | None:
    """Turns on JAX's persistent compilation cache in ``directory`` (``~`` is expanded).

    Programs that take at least ``jax_persistent_cache_min_compile_time_secs`` (1 s by
    default) to compile are stored there and loaded on the next run with the same program,
    JAX version and devices. Nothing is changed for ``""`` (off) or when a cache directory
    is already set (``JAX_COMPILATION_CACHE_DIR`` or in code).

    Returns:
      The cache directory now in use, or None when this call changed nothing.
    """
    if not directory or jax.config.jax_compilation_cache_dir:
        return None
    path = Path(directory).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigValueError(
            f"config.runtime.compilation_cache: cannot create {os.fspath(path)!r} ({e}); "
            "pass a writable folder, or --config.runtime.compilation_cache='' to turn it off"
        ) from None
    jax.config.update("jax_compilation_cache_dir", os.fspath(path))
    log.info("XLA compilation cache: %s", path)
    return path


def warn_cpu_bfloat16(compute_dtype: str) -> bool:
    """Logs a warning when ``model.compute_dtype`` is bfloat16 and JAX runs on the CPU.

    XLA:CPU (jaxlib 0.10.2) computes a bfloat16 convolution as a float32 one between
    conversions, so the U-Net step is no faster than in float32 (0-7% slower measured), even on
    processors with bfloat16 instructions, where PyTorch's CPU autocast runs its step 1.8x
    faster (docs/benchmarks.md). Returns whether it warned.
    """
    if str(compute_dtype) != "bfloat16" or jax.default_backend() != "cpu":
        return False
    log.warning("model.compute_dtype=bfloat16 on the CPU: XLA:CPU computes the convolutions in "
                "float32, so the step is no faster (docs/benchmarks.md); "
                "--config.model.compute_dtype=float32 is the CPU's choice")
    return True
