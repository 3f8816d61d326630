"""Which signal ends a foreground session how: the handler's decisions, driven
directly (the lifecycle tests send real signals to a real ``netlab up``).

CPython runs pending handlers in signal-number order, so a SIGTERM and a
Ctrl-C that arrive together reach the handler Ctrl-C first. Under load CI saw
exactly that: the Ctrl-C (outside the flows) raised and began the teardown, the
SIGTERM then raised again inside it, and the lab was left behind.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from netlab.lab.teardown import TEARDOWN_SIGNALS
from netlab.run import session


@pytest.fixture
def handler() -> Iterator[None]:
    previous = {sig: signal.getsignal(sig) for sig in TEARDOWN_SIGNALS}
    session.install_sigterm_handler()
    yield
    for sig, old in previous.items():
        signal.signal(sig, old)


def test_ctrl_c_outside_the_flows_of_up_already_ends_the_lab(handler: None) -> None:
    with pytest.raises(KeyboardInterrupt):
        session._interrupt(signal.SIGINT, None)
    session._interrupt(signal.SIGTERM, None)  # the teardown has begun: not cut short


def test_ctrl_c_during_the_flows_of_up_keeps_the_lab_and_sigterm_still_ends_it(
        handler: None) -> None:
    with session._ctrl_c_keeps_lab(True), pytest.raises(KeyboardInterrupt) as caught:
        session._interrupt(signal.SIGINT, None)
    assert not isinstance(caught.value, session.Terminated)
    with pytest.raises(session.Terminated):
        session._interrupt(signal.SIGTERM, None)
    session._interrupt(signal.SIGINT, None)  # and nothing after that raises


def test_once_teardown_begins_no_signal_raises(handler: None) -> None:
    session._teardown_begins()
    for sig in TEARDOWN_SIGNALS:
        session._interrupt(sig, None)
