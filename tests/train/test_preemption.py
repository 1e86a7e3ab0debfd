"""PreemptionGuard: a real SIGTERM sets the flag; the previous handlers come back on exit."""

from __future__ import annotations

import os
import signal
from types import FrameType

import pytest

from kmri_jax.train.preemption import PreemptionGuard


def test_sigterm_sets_flag_and_handlers_are_restored() -> None:
    calls: list[int] = []

    def previous(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)

    old_term = signal.signal(signal.SIGTERM, previous)
    old_int = signal.getsignal(signal.SIGINT)
    try:
        with PreemptionGuard() as guard:
            assert not guard.should_stop() and not guard.should_stop_synced(0)
            os.kill(os.getpid(), signal.SIGTERM)  # delivered before kill() returns
            assert guard.should_stop()
            assert guard.should_stop_synced(3)
            assert guard.received_signal == signal.SIGTERM
            assert calls == []  # our handler replaced the previous one
        assert signal.getsignal(signal.SIGTERM) is previous
        assert signal.getsignal(signal.SIGINT) is old_int
        os.kill(os.getpid(), signal.SIGTERM)
        assert calls == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, old_term)


def test_second_sigint_interrupts() -> None:
    with PreemptionGuard(signals=(signal.SIGINT,)) as guard:
        os.kill(os.getpid(), signal.SIGINT)
        assert guard.should_stop()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_request_stop() -> None:
    with PreemptionGuard() as guard:
        guard.request_stop()
        assert guard.should_stop() and guard.received_signal is None
