"""Graceful stop on SIGTERM / SIGINT (SLURM preemption, ``scancel``, Ctrl-C).

The handler only sets a flag; the train loop polls it between steps, saves a checkpoint and
returns, so a requeued job resumes from that checkpoint. A second Ctrl-C (SIGINT) while the
flag is already set raises ``KeyboardInterrupt`` as usual, for when the save itself hangs.

Single host::

    with PreemptionGuard() as guard:
        for step in ...:
            ...
            if guard.should_stop():
                save(); break

Several hosts must agree on the step at which they stop (they all take part in the save):
call :meth:`PreemptionGuard.should_stop_synced` with the same ``step`` on every process.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

import jax
import numpy as np

__all__ = ["PreemptionGuard"]

log = logging.getLogger(__name__)

_DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PreemptionGuard:
    """Context manager that turns stop signals into a flag; restores the old handlers on exit."""

    def __init__(
        self,
        *,
        signals: Sequence[signal.Signals] = _DEFAULT_SIGNALS,
        sync_every: int = 10,
    ) -> None:
        """
        Args:
          signals: the signals to catch (SIGTERM and SIGINT by default).
          sync_every: on several processes, :meth:`should_stop_synced` exchanges the flag every
            this many steps (an all-gather of one int); other steps return False.
        """
        if sync_every < 1:
            raise ValueError(f"sync_every must be >= 1, got {sync_every}")
        self._signals = tuple(signals)
        self._sync_every = sync_every
        self._previous: dict[signal.Signals, Any] = {}
        self._received: int | None = None
        self._event = threading.Event()

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> PreemptionGuard:
        if threading.current_thread() is not threading.main_thread():
            log.warning("not in the main thread: stop signals are not caught")
            return self
        for sig in self._signals:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self._event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self._received = signum
        self._event.set()
        log.warning(
            "received %s: will save a checkpoint and stop after the current step",
            signal.Signals(signum).name,
        )

    # -- queries ---------------------------------------------------------------------------

    @property
    def received_signal(self) -> int | None:
        """The number of the first signal caught (None when none, or after request_stop)."""
        return self._received

    def request_stop(self) -> None:
        """Sets the flag by hand (e.g. a time budget ran out)."""
        self._event.set()

    def should_stop(self) -> bool:
        """Whether this process was asked to stop. Local only: use the synced variant on
        several processes."""
        return self._event.is_set()

    def should_stop_synced(self, step: int) -> bool:
        """Whether any process was asked to stop; every process gets the same answer.

        With one process this is :meth:`should_stop`. With several, every process must call
        it with the same ``step`` sequence: on steps that are a multiple of ``sync_every`` the
        flags are all-gathered (a collective), on the others it returns False.
        """
        if jax.process_count() == 1:
            return self.should_stop()
        if step % self._sync_every != 0:
            return False
        from jax.experimental import multihost_utils  # Only needed on several hosts.

        flags = multihost_utils.process_allgather(np.int32(self.should_stop()))
        return bool(np.any(flags))
