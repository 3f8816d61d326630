"""How ``netlab down`` ends a lab whose foreground ``up``/``run`` still runs.

``down`` sends ``DOWN_SIGNAL`` to the lab's owner (matched by pid and start
time) and waits: the owner stops its flows, writes the results it has,
removes its own instance and exits 0.  The request only interrupts the run
phase; one that arrives while the lab is built or results are written is
acted on when that step ends.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netlab.lab.lifecycle import Lab

DOWN_SIGNAL = signal.SIGUSR1


class LabTakenDown(BaseException):
    """Raised in the owner's run phase when ``netlab down`` asked it to end
    (a BaseException, like KeyboardInterrupt, so no ``except Exception`` eats it)."""


_owner_pid = 0
_requested = False
_in_run_phase = False


def _on_down(signum: int, frame: FrameType | None) -> None:
    global _requested
    if os.getpid() != _owner_pid:
        return  # a forked helper child: the request is for its parent
    if _requested:
        return
    _requested = True
    if _in_run_phase:
        raise LabTakenDown


def install() -> None:
    """Make this process a lab owner that ends cleanly on ``netlab down``."""
    global _owner_pid, _requested
    _owner_pid, _requested = os.getpid(), False
    signal.signal(DOWN_SIGNAL, _on_down)


def down_requested() -> bool:
    return _requested


@contextmanager
def run_phase() -> Iterator[None]:
    """The part of a run that a ``down`` request interrupts at once (one that
    came earlier is seen by the body through ``down_requested``)."""
    global _in_run_phase
    _in_run_phase = True
    try:
        yield
    finally:
        _in_run_phase = False


@contextmanager
def until_taken_down(*, then: Callable[[], object]) -> Iterator[None]:
    """A run phase that a ``down`` request ends early without an error;
    ``then`` (stopping the flows) runs however it ends.  The body starts with
    ``if down_requested(): pass`` for a request that came before it."""
    try:
        with run_phase():
            yield
    except LabTakenDown:
        pass
    finally:
        then()


def end_taken_down(lab: Lab) -> None:
    """After ``netlab down`` asked: remove this instance (if still ours) and
    say so, also under ``--quiet`` (the run ended early)."""
    from rich.console import Console

    report = lab.down()
    Console(stderr=True, soft_wrap=True).print(
        f"[yellow]down[/yellow] {lab.name}: taken down by 'netlab down' from another process; "
        f"results so far are written, removed {len(report.removed)} objects"
        + (f" ({report.gone})" if report.gone else ""))
