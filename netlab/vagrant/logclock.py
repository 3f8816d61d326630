"""Puts a VM run's endpoint logs on one clock: the driver's CLOCK_MONOTONIC.

Each endpoint log holds times from the clock of the VM that wrote it, and a
receiver's packet log also holds the *sender's* send stamps.  Rewriting every
time field with its writer's :class:`~netlab.vagrant.clock.ClockModel`
leaves a run directory that the namespace tooling (``flow_results``,
``netlab report``) reads as if one machine had written it: one-way delay is
then arrival (receiver VM → driver) minus send (sender VM → driver), exact
up to the two models' uncertainty.  Replayer logs are left alone: their
fidelity is computed within the log, against its own start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from endpoints.rtc import logs as rtc_logs
from endpoints.tcp import logs as tcp_logs
from netlab.vagrant.clock import ClockModel

#: file -> time fields, each "src" (written or stamped by the sender's VM) or "dst".
RTC_FIELDS: dict[str, dict[str, str]] = {
    "sender_packets.bin": {"send_ns": "src"},
    "sender_frames.bin": {"capture_ns": "src"},
    "sender_rate.bin": {"time_ns": "src"},
    "receiver_packets.bin": {"arrival_ns": "dst", "send_ns": "src"},
    "receiver_estimates.bin": {"time_ns": "dst"},
}
TCP_FIELDS: dict[str, tuple[np.dtype[Any], dict[str, str]]] = {
    tcp_logs.TCP_INFO_FILE: (tcp_logs.TCP_INFO_DTYPE, {"t_ns": "src", "deadline_ns": "src"}),
    tcp_logs.PACING_FILE: (tcp_logs.PACING_DTYPE, {"t_recv_ns": "src", "t_applied_ns": "src"}),
    tcp_logs.RECV_BINS_FILE: (tcp_logs.RECV_BIN_DTYPE, {"bin_start_ns": "dst"}),
}


def _map(values: np.ndarray[Any, Any], model: ClockModel) -> np.ndarray[Any, Any]:
    """Driver-clock times of VM-clock ``values``; negative values (no stamp) stay."""
    stamped = values >= 0
    out = values.copy()
    k = model.drift_ppm * 1e-6
    mapped = (values[stamped].astype(np.float64) - model.before.offset_ns
              + k * model.before.at_ns) / (1 + k)
    out[stamped] = np.rint(mapped).astype(values.dtype)
    return out


def _rewrite(path: Path, header_bytes: int, dtype: np.dtype[Any], fields: dict[str, str],
             models: dict[str, ClockModel]) -> int:
    raw = path.read_bytes()
    header, body = raw[:header_bytes], raw[header_bytes:]
    whole = len(body) - len(body) % dtype.itemsize  # a killed writer's partial tail is dropped
    records = np.frombuffer(body[:whole], dtype=dtype).copy()
    for name, side in fields.items():
        records[name] = _map(records[name], models[side])
    path.write_bytes(header + records.tobytes())
    return int(records.size)


def to_driver_clock(flow_dir: Path, sender: ClockModel, receiver: ClockModel) -> int:
    """Rewrite one flow's logs (``sender/``, ``receiver/``) in place; returns records mapped."""
    models = {"src": sender, "dst": receiver}
    count = 0
    for role in ("sender", "receiver"):
        directory = flow_dir / role
        for name, fields in RTC_FIELDS.items():
            path = directory / name
            if path.exists():
                dtype = rtc_logs.dtype_of(rtc_logs.read_header(path)["fields"])
                count += _rewrite(path, rtc_logs.HEADER_SIZE, dtype, fields, models)
        for name, (dtype, fields) in TCP_FIELDS.items():
            path = directory / name
            if path.exists():
                count += _rewrite(path, 0, dtype, fields, models)
    return count
