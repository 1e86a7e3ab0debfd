"""Expensive fixtures computed once per test run, whatever the number of pytest-xdist workers.

A session or module fixture runs once per *worker*: under ``pytest -n 2`` (tools/test.sh)
two workers that both need it would both compute it. :func:`once_per_run` makes the first
worker compute it into a folder shared by the run while holding a file lock; the others wait
for the lock and read the result back. (pytest-xdist's ``--dist loadgroup`` would keep such
tests on one worker, but with pytest 9.2 it groups nothing.)
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_folder(tmp_path_factory) -> Path:
    """This run's temporary folder, the same for every xdist worker (each worker's base
    folder is ``<run>/popen-gwN``)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def once_per_run(tmp_path_factory, name: str, compute: Callable[[Path], dict[str, Any]]
                 ) -> dict[str, Any]:
    """``compute(folder)`` run once per test run; its JSON-able result, for every worker.

    ``folder`` (``<run>/<name>``) is empty when ``compute`` starts and stays for the run. If
    ``compute`` fails, nothing is recorded and the next caller computes again, in an emptied
    folder (and fails alike).
    """
    shared = run_folder(tmp_path_factory)
    folder, result = shared / name, shared / f"{name}.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed computation left
            folder.mkdir()
            value = compute(folder)
            result.write_text(json.dumps(value))
        return json.loads(result.read_text())
