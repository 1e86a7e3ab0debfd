"""``config.runtime``: one XLA device per CPU core, the CPU allocator, and the persistent
compilation cache.

Both are process-wide and fixed when JAX starts, so the cases run in fresh subprocesses.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from kmri_jax.config import ConfigValueError
from kmri_jax.train.runtime import (configure_cpu_allocator, configure_cpu_devices, cpu_device_count,
                                    fewer_devices_than_cores, warn_cpu_bfloat16)

from tiny_run import clean_env, run_loop



def _python(script: str, *args: str, xla_flags: str = "", **env_vars: str) -> dict:
    env = clean_env(XLA_FLAGS=xla_flags, **env_vars)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("batches", [(8,), (8, 32), (32, 32), (4, 8), (6, 9), (12, 18), (7,), (1,)])
def test_count_is_the_largest_count_dividing_every_batch_within_the_cores(batches):
    for cpus in range(1, 18):
        expected = max(n for n in range(1, cpus + 1) if all(b % n == 0 for b in batches))
        assert cpu_device_count(batch_sizes=batches, cpus=cpus) == expected, (batches, cpus)


_CONFIGURE = """
    import json, logging, os, sys
    import jax
    from kmri_jax.train import runtime
    case = sys.argv[1]
    if case == "one_core":
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])
    if case == "after_start":
        jax.devices()
    notes = []
    handler = logging.Handler()
    handler.emit = lambda record: notes.append(record.getMessage())
    logging.getLogger("kmri_jax.train.runtime").addHandler(handler)
    logging.getLogger("kmri_jax.train.runtime").setLevel(logging.INFO)
    requested = {"explicit": 3, "flags": 3, "after_start": 3}.get(case, 0)
    batch_sizes = (7, 14) if case == "odd_batch" else (6, 12)
    got = runtime.configure_cpu_devices(requested, batch_sizes=batch_sizes,
                                         multi_process=case == "multi_process")
    devices = None if case == "gpu" else jax.device_count()  # No GPU here to start.
    out = {"returned": got, "devices": devices}
    if case == "odd_batch":
        out["notes"] = notes
    print(json.dumps(out))
"""


def test_explicit_count_splits_the_cpu():
    assert _python(_CONFIGURE, "explicit") == {"returned": 3, "devices": 3}


def test_user_flags_and_a_running_backend_are_left_alone():
    flags = "--xla_force_host_platform_device_count=2"
    assert _python(_CONFIGURE, "flags", xla_flags=flags) == {"returned": None, "devices": 2}
    assert _python(_CONFIGURE, "after_start") == {"returned": None, "devices": 1}


def test_automatic_count_follows_the_cores_and_skips_multi_process():
    assert _python(_CONFIGURE, "one_core") == {"returned": None, "devices": 1}
    assert _python(_CONFIGURE, "multi_process") == {"returned": None, "devices": 1}
    # A GPU run (JAX_PLATFORMS names an accelerator first): JAX's defaults are kept.
    assert _python(_CONFIGURE, "gpu", JAX_PLATFORMS="cuda,cpu") == {"returned": None,
                                                                     "devices": None}
    cores = len(os.sched_getaffinity(0))
    expected = cpu_device_count(batch_sizes=(6, 12), cpus=cores)
    out = _python(_CONFIGURE, "auto")
    assert out == {"returned": expected if expected > 1 else None, "devices": expected}


@pytest.mark.parametrize("batches", [(8,), (8, 32), (6, 9), (7,), (1,), (12, 18)])
def test_a_count_below_the_cores_is_noted_with_the_batch_sizes_that_avoid_it(batches):
    for cpus in range(1, 18):
        count = cpu_device_count(batch_sizes=batches, cpus=cpus)
        note = fewer_devices_than_cores(count, cpus=cpus, batch_sizes=batches)
        assert (note is None) == (count == cpus), (batches, cpus, note)
        if note:
            assert note.startswith(f"{count} XLA CPU device") and f"for {cpus} cores" in note
            assert f"({', '.join(map(str, batches))})" in note and f"multiples of {cpus}" in note
            # The batch sizes it proposes give one device per core.
            assert cpu_device_count(batch_sizes=[b * cpus for b in batches], cpus=cpus) == cpus


def test_automatic_count_logs_the_note_when_cores_share_a_device():
    cores = len(os.sched_getaffinity(0))
    out = _python(_CONFIGURE, "odd_batch")  # batch sizes 7 and 14: one device
    assert out["devices"] == 1 and out["returned"] is None
    expected = fewer_devices_than_cores(1, cpus=cores, batch_sizes=(7, 14))
    assert out["notes"] == ([expected] if expected else [])


def test_negative_count_is_a_clear_error():
    with pytest.raises(ConfigValueError, match="config.runtime.cpu_devices"):
        configure_cpu_devices(-1, batch_sizes=(8,))


def test_training_loop_on_two_cpu_devices_equals_one(loop_runs):
    one, two = loop_runs["one"], loop_runs["two"]
    assert (one["devices"], two["devices"]) == (1, 2)
    assert len(two["losses"]) == len(one["losses"]) == 12
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-4)
    np.testing.assert_allclose([two["ssim"], two["loss"]], [one["ssim"], one["loss"]], rtol=1e-4)


def test_second_run_loads_every_program_from_the_compilation_cache(loop_runs):
    cache = Path(loop_runs["cache"])
    assert len(loop_runs["entries_after_one"]) >= 2  # At least the train and eval steps.
    before = sorted(p.name for p in cache.iterdir())
    again = run_loop(loop_runs["tmp"] / "again", cpu_devices=1, max_steps=12, cache=str(cache),
                     JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    assert sorted(p.name for p in cache.iterdir()) == before  # Nothing compiled anew.
    np.testing.assert_allclose(again["losses"], loop_runs["one"]["losses"], rtol=1e-6)


_CACHE = """
    import json, os, sys
    import jax
    from kmri_jax.config import ConfigValueError
    from kmri_jax.train import runtime
    try:
        got = runtime.enable_compilation_cache(sys.argv[1])
    except ConfigValueError as e:
        got = "error: " + str(e)
    print(json.dumps({"returned": None if got is None else str(got),
                      "dir": jax.config.jax_compilation_cache_dir}))
"""


def test_compilation_cache_off_user_choice_kept_and_bad_folder(tmp_path):
    assert _python(_CACHE, "") == {"returned": None, "dir": None}
    mine = str(tmp_path / "mine")
    kept = _python(_CACHE, str(tmp_path / "ours"), JAX_COMPILATION_CACHE_DIR=mine)
    assert kept == {"returned": None, "dir": mine}
    (tmp_path / "file").write_text("")
    bad = _python(_CACHE, str(tmp_path / "file" / "cache"))
    assert bad["returned"].startswith("error: config.runtime.compilation_cache")
    assert "--config.runtime.compilation_cache=''" in bad["returned"] and bad["dir"] is None


_ALLOCATOR = """
    import ctypes, json, os, re, sys, tempfile
    import numpy as np
    import jax
    from kmri_jax.train import runtime

    class MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2 (malloc.h, glibc >= 2.33)
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    libc.fopen.restype = ctypes.c_void_p

    def arenas():  # glibc's own report: one <heap nr=...> element per arena
        handle, path = tempfile.mkstemp()
        os.close(handle)
        stream = ctypes.c_void_p(libc.fopen(path.encode(), b"w"))
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        with open(path) as f:
            count = len(re.findall("<heap nr=", f.read()))
        os.unlink(path)
        return count

    mode, case = sys.argv[1], sys.argv[2]
    if case == "after_start":
        jax.devices()
    out = {"returned": runtime.configure_cpu_allocator(mode)}
    if case != "gpu":  # No GPU here to start; JAX runs on the allocator as set up.
        x = jax.numpy.arange(2 ** 20, dtype=jax.numpy.float32)
        y = jax.jit(lambda x: x * 2.0 + 1.0)(x)
        out["right"] = bool((y == x * 2 + 1).all())
        before = libc.mallinfo2().hblks
        big = np.ones(2 ** 24, np.float32)  # 64 MB: above glibc's largest mmap threshold
        out["new_mappings"] = libc.mallinfo2().hblks - before
        out["arenas"] = arenas()  # after XLA's worker threads have allocated
    print(json.dumps(out))
"""

glibc_reports = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or tuple(map(int, platform.libc_ver()[1].split("."))) < (2, 33),
    reason="the allocator's state is read with glibc's mallinfo2 (glibc >= 2.33)")
# Set up: the 64 MB block comes from the heap, not a mapping of its own, and every thread
# shares the main arena. glibc's defaults: a mapping, and an arena per allocating thread.
KEPT = {"returned": True, "right": True, "new_mappings": 0, "arenas": 1}


@glibc_reports
def test_automatic_allocator_is_set_up_on_the_cpu_and_system_leaves_it():
    # Whether it saves page faults depends on the load (docs/profile.md): measured by
    # tools/benchmark.py, not asserted here.
    assert _python(_ALLOCATOR, "auto", "cpu") == KEPT
    system = _python(_ALLOCATOR, "system", "cpu")
    assert system["returned"] is False and system["right"] is True
    assert system["new_mappings"] == 1 and system["arenas"] > 1


@glibc_reports
def test_automatic_allocator_leaves_gpu_runs_user_settings_and_a_running_jax_alone():
    assert _python(_ALLOCATOR, "auto", "gpu", JAX_PLATFORMS="cuda,cpu") == {"returned": False}
    user = _python(_ALLOCATOR, "auto", "cpu", MALLOC_ARENA_MAX="4")
    assert user["returned"] is False and user["new_mappings"] == 1 and 1 < user["arenas"] <= 4
    late = _python(_ALLOCATOR, "auto", "after_start")
    assert late["returned"] is False and late["new_mappings"] == 1


@glibc_reports
def test_keep_overrides_the_users_settings():
    assert _python(_ALLOCATOR, "keep", "cpu", MALLOC_ARENA_MAX="4") == KEPT


def test_unknown_allocator_mode_is_a_clear_error():
    with pytest.raises(ConfigValueError, match="config.runtime.cpu_malloc"):
        configure_cpu_allocator("jemalloc")


def test_bfloat16_on_the_cpu_is_warned_about_while_xla_computes_its_convolutions_in_float32(caplog):
    # The warning's premise, read from XLA's own compiled program: a bfloat16 convolution
    # becomes a float32 one. If a jaxlib computes it in bfloat16, this fails: drop the warning.
    x = jax.numpy.ones((1, 8, 8, 4), jax.numpy.bfloat16)
    conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
    hlo = conv.lower(x, jax.numpy.ones((3, 3, 4, 4), jax.numpy.bfloat16)).compile().as_text()
    convolutions = [line for line in hlo.splitlines() if " convolution(" in line]
    assert convolutions and all("= f32[" in line for line in convolutions)
    with caplog.at_level("WARNING", logger="kmri_jax.train.runtime"):
        assert warn_cpu_bfloat16("float32") is False and not caplog.records
        assert warn_cpu_bfloat16("bfloat16") is True
    assert "--config.model.compute_dtype=float32" in caplog.records[0].getMessage()
