"""Suite-wide settings.

- One CPU device for the whole test process, set before JAX starts: otherwise the first test
  that runs the training loop would split the CPU into one device per core
  (``config.runtime.cpu_devices`` = 0) for every test after it. Multi-device behaviour is
  tested in subprocesses.
- ``tools/`` on the import path: the independent PyTorch reference of the seed's U-Net is
  ``tools/torch_reference.py``, shared by the tests and the benchmarks.
- A persistent XLA compilation cache for this test session, so the same small programs
  compiled by several tests (the loop runs several times) compile once.
- Less LLVM optimisation of the compiled programs (``XLA_FLAGS``:
  :data:`TEST_XLA_FLAGS`, also passed to the subprocesses by ``tiny_run.clean_env``): the
  suite's programs are tiny and compiling is most of its time. Level 1 is the same HLO and gave
  the same losses to the last digit in the loop tests, 36% faster; level 0 is not used (a
  tiny training run diverged with it). Users and the benchmarks run XLA's default. Set the
  level yourself in ``XLA_FLAGS`` to test with another.
"""

from __future__ import annotations

import os
import sys

import jax
import pytest

# tools/: the PyTorch reference of the seed's network (tools/torch_reference.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))

TEST_XLA_FLAGS = "--xla_backend_optimization_level=1"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    jax.config.update("jax_num_cpu_devices", 1)


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(tmp_path_factory):
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla-cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    yield
