"""Starting, changing and stopping a link process from the lab's side."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from shaping.spec import LinkShape

from .config import DIRECTIONS, DirectionName, UserLinkSpec, spec_to_json
from .control import ControlClient, control_path
from .errors import UserLinkError
from .process import ERROR_PREFIX, change_log_path, clock_path, packet_log_path

#: The packages' root, first on the child's PYTHONPATH: it starts with ``-P`` (no cwd
#: on sys.path), so an uninstalled checkout must be named.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]

READY_TIMEOUT_S = 15.0


class UserLinkHandle:
    """A running link process: live changes, log locations, stop."""

    def __init__(
        self, spec: UserLinkSpec, proc: subprocess.Popen[bytes], start_ns: int, priority: str
    ) -> None:
        self.spec = spec
        self.pid = proc.pid
        self.start_ns = start_ns  # CLOCK_MONOTONIC time the link's traces count from

        self.priority = priority  # scheduling the process obtained: fifo | nice | none
        self._proc = proc
        self.control_path = control_path(spec.run_dir, spec.link_id)
        self._control = ControlClient(self.control_path)
        self._stopped = False

    def change(
        self, direction: DirectionName, shape: LinkShape, *, scheduled_ns: int | None = None
    ) -> None:
        """Apply ``shape`` to one direction now (queue kept); logged with ``scheduled_ns``."""
        if direction not in DIRECTIONS:
            raise UserLinkError(
                f"unknown direction {direction!r}", where="UserLinkHandle.change",
                fix="use 'a_to_b' or 'b_to_a'",
            )
        if self._stopped:
            raise UserLinkError(
                "the link was stopped", where=f"link {self.spec.link_id!r}",
                fix="start a new link with start_link()",
            )
        self._control.change(direction, shape, scheduled_ns)

    def restart_trace(self, restart_ns: int) -> None:
        """Both directions count their traces from ``restart_ns`` (CLOCK_MONOTONIC): the
        run's time zero, given to every link of a lab at once."""
        if self._stopped:
            raise UserLinkError(
                "the link was stopped", where=f"link {self.spec.link_id!r}",
                fix="start a new link with start_link()",
            )
        self._control.restart(restart_ns)
        self.start_ns = restart_ns

    def clock_record(self) -> dict[str, int] | None:
        """What the link wrote when it got the run's zero (``trace_zero_ns``,
        ``received_ns``); None before that, or when its logs are gone."""
        try:
            data = json.loads(clock_path(self.spec.run_dir, self.spec.link_id).read_text())
        except (OSError, ValueError):
            return None
        return {key: int(data[key]) for key in ("trace_zero_ns", "received_ns") if key in data}

    def running(self) -> bool:
        return self._proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; safe to call twice."""
        self._stopped = True
        proc = self._proc
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            except ProcessLookupError:
                pass
        if proc.stdout is not None:
            proc.stdout.close()
        self._control.close()
        with contextlib.suppress(FileNotFoundError):  # a SIGKILLed process leaves it
            self.control_path.unlink()

    def log_paths(self) -> dict[str, Path]:
        """``a_to_b``/``b_to_a``: packet logs; ``*_changes``: change logs; ``stderr``."""
        spec = self.spec
        paths: dict[str, Path] = {}
        for direction in DIRECTIONS:
            paths[direction] = packet_log_path(spec.run_dir, spec.link_id, direction)
            paths[f"{direction}_changes"] = change_log_path(spec.run_dir, spec.link_id, direction)
        paths["stderr"] = stderr_path(spec)
        return paths


def stderr_path(spec: UserLinkSpec) -> Path:
    return spec.run_dir / f"{spec.link_id}.userlink.stderr"


def start_link(spec: UserLinkSpec, *, priority: str = "fifo") -> UserLinkHandle:
    """Spawn the link process and return once it is forwarding packets.

    The process runs in its own session (a Ctrl-C meant for the lab does not
    cut links mid-teardown) and exits on SIGTERM or when its interfaces are
    deleted; the lab should record ``handle.pid`` to stop it after a crash.
    """
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    control_path(spec.run_dir, spec.link_id)  # fail early on an over-long path
    spec_file = spec.run_dir / f"{spec.link_id}.userlink.json"
    spec_file.write_text(spec_to_json(spec))
    err_path = stderr_path(spec)
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "shaping.userlink", "--spec", str(spec_file),
             "--priority", priority],
            cwd=spec.run_dir,  # -P and a fixed cwd: the caller's cwd never shadows shaping
            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                filter(None, (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH"))))},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    line = b""
    fd = proc.stdout.fileno()
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            _abort(proc)
            raise _start_error(spec, err_path, "did not report ready in time")
        chunk = os.read(fd, 256)
        if not chunk:
            proc.wait()
            raise _start_error(spec, err_path, f"exited with status {proc.returncode}")
        line += chunk
    words = line.decode().split()
    if len(words) < 4 or words[0] != "ready":
        _abort(proc)
        raise _start_error(spec, err_path, f"said {line!r} instead of ready")
    return UserLinkHandle(spec, proc, int(words[1]), words[3])


def _abort(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()


def _start_error(spec: UserLinkSpec, err_path: Path, what: str) -> UserLinkError:
    try:
        lines = err_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    for line in lines:
        if line.startswith(ERROR_PREFIX):  # the process's own what/where/fix
            fields = json.loads(line[len(ERROR_PREFIX) :])
            return UserLinkError(fields["what"], where=fields["where"], fix=fields["fix"])
    tail = lines[-5:]
    detail = (": " + " | ".join(tail)) if tail else ""
    return UserLinkError(
        f"user-space link process for {spec.link_id!r} {what}{detail}",
        where=str(err_path),
        fix="check that create_link_interfaces() ran for this link and that you run as root",
    )
