"""Receiver-side bandwidth estimators with AlphaRTC's plugin interface.

OpenNetLab/AlphaRTC runs a user's ``BandwidthEstimator.py``: it constructs
``Estimator()`` with no arguments, calls ``report_states(stats)`` for every
received RTP packet (stats keys in :data:`ALPHARTC_STATS_KEYS`) and asks
``get_estimated_bandwidth()`` for a bitrate in bps (every 200 ms by
default; AlphaRTC's cmdinfer casts the answer with ``int()``). The estimate
goes back to the sender in REMB.

:func:`load_plugin` runs such a file unchanged: its directory goes on
``sys.path`` (AlphaRTC imports it as a top-level module, so sibling imports
like ``from utils.packet_info import PacketInfo`` work) and it is imported and
constructed with that directory as the working directory (its examples load
``./model/...`` relative paths there).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from endpoints.rtc.errors import PluginError
from endpoints.rtc.gcc import SendSideBwe
from endpoints.rtc.stats import ALPHARTC_STATS_KEYS
from endpoints.rtc.twcc import PacketResult

DEFAULT_POLL_INTERVAL_S = 0.2
_plugin_counter = itertools.count()

__all__ = [
    "ALPHARTC_STATS_KEYS",
    "DEFAULT_POLL_INTERVAL_S",
    "FixedEstimator",
    "GccEstimator",
    "PluginEstimator",
    "ReceiverEstimator",
    "estimator_from_spec",
    "load_plugin",
]


@runtime_checkable
class ReceiverEstimator(Protocol):
    def report_states(self, stats: dict[str, Any]) -> None: ...

    def get_estimated_bandwidth(self) -> int: ...


class FixedEstimator:
    """Always the same estimate: for tests and fixed-rate baselines."""

    def __init__(self, bitrate_bps: int) -> None:
        if bitrate_bps <= 0:
            raise ValueError("a fixed estimate must be a positive bitrate")
        self.bitrate_bps = int(bitrate_bps)
        self.packets = 0

    def report_states(self, stats: dict[str, Any]) -> None:
        self.packets += 1

    def get_estimated_bandwidth(self) -> int:
        return self.bitrate_bps


class GccEstimator:
    """GCC at the receiver, through the plugin interface (abs-send-time as send time).

    Loss comes from RTP sequence gaps per SSRC; the same delay and loss
    controllers as the sender-side GCC run over each poll's packets.
    """

    def __init__(self, start_bitrate_bps: int = 300_000) -> None:
        self.bwe = SendSideBwe(start_bitrate_bps)
        self._pending: list[PacketResult] = []
        self._highest_seq: dict[int, int] = {}
        self._counter = 0
        self._last_arrival_ms = 0.0

    def report_states(self, stats: dict[str, Any]) -> None:
        ssrc = int(stats["ssrc"])
        seq = int(stats["sequence_number"])
        arrival_ms = float(stats["arrival_time_ms"])
        send_ms = float(stats["send_time_ms"])
        size = int(stats["payload_size"]) + int(stats["header_length"]) + int(
            stats["padding_length"])
        previous = self._highest_seq.get(ssrc)
        if previous is not None:
            gap = (seq - previous) & 0xFFFF
            if gap >= 0x8000:
                return  # reordered or duplicate: already counted as lost, ignore
            for _ in range(gap - 1):
                self._pending.append(PacketResult(self._counter, int(send_ms * 1000), size, None))
                self._counter += 1
        self._highest_seq[ssrc] = seq
        self._pending.append(PacketResult(self._counter, int(send_ms * 1000), size,
                                          int(arrival_ms * 1000)))
        self._counter += 1
        self._last_arrival_ms = max(self._last_arrival_ms, arrival_ms)

    def get_estimated_bandwidth(self) -> int:
        if self._pending:
            self.bwe.on_feedback(self._pending, int(self._last_arrival_ms * 1000))
            self._pending = []
        return int(self.bwe.target_bps)


class PluginEstimator:
    """A loaded plugin, with its answers checked and made ``int``."""

    def __init__(self, estimator: Any, path: Path) -> None:
        self.estimator = estimator
        self.path = path

    def report_states(self, stats: Mapping[str, Any]) -> None:
        try:
            self.estimator.report_states(dict(stats))
        except Exception as exc:
            raise PluginError(f"Estimator.report_states raised {type(exc).__name__}: {exc}",
                              where=str(self.path),
                              fix="fix the plugin; it receives AlphaRTC's per-packet stats dict"
                              ) from exc

    def get_estimated_bandwidth(self) -> int:
        try:
            value = self.estimator.get_estimated_bandwidth()
        except Exception as exc:
            raise PluginError(f"Estimator.get_estimated_bandwidth raised "
                              f"{type(exc).__name__}: {exc}", where=str(self.path),
                              fix="fix the plugin; it must return a bitrate in bps") from exc
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise PluginError(f"Estimator.get_estimated_bandwidth returned {value!r}, "
                              "not a number", where=str(self.path),
                              fix="return the estimate in bps, e.g. int(1e6) for 1 Mbit/s"
                              ) from None
        if not math.isfinite(number) or number < 0:
            raise PluginError(f"Estimator.get_estimated_bandwidth returned {number}",
                              where=str(self.path),
                              fix="return a finite, non-negative bitrate in bps")
        return int(number)


def load_plugin(path: str | os.PathLike[str]) -> PluginEstimator:
    """Import a user's BandwidthEstimator.py and construct its ``Estimator()``."""
    plugin = Path(path).expanduser().resolve()
    fix_file = "give the path of an AlphaRTC-style BandwidthEstimator.py (estimator: plugin:PATH)"
    if not plugin.is_file():
        raise PluginError("estimator plugin file does not exist", where=str(plugin), fix=fix_file)
    if plugin.suffix != ".py":
        raise PluginError("estimator plugin is not a .py file", where=str(plugin), fix=fix_file)
    directory = str(plugin.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module_name = f"_netlab_plugin_{next(_plugin_counter)}_{plugin.stem}"
    spec = importlib.util.spec_from_file_location(module_name, plugin)
    if spec is None or spec.loader is None:
        raise PluginError("cannot import the estimator plugin", where=str(plugin), fix=fix_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    previous_cwd = os.getcwd()
    os.chdir(directory)
    try:
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise PluginError(f"importing the plugin raised {type(exc).__name__}: {exc}",
                              where=str(plugin),
                              fix="run `python BandwidthEstimator.py` in its folder to see "
                                  "the error; install what it imports") from exc
        estimator_class = getattr(module, "Estimator", None)
        if not isinstance(estimator_class, type):
            raise PluginError("the plugin defines no class Estimator", where=str(plugin),
                              fix="define class Estimator with report_states(self, stats) and "
                                  "get_estimated_bandwidth(self) -> int, as AlphaRTC expects")
        missing = [name for name in ("report_states", "get_estimated_bandwidth")
                   if not callable(getattr(estimator_class, name, None))]
        if missing:
            raise PluginError(f"class Estimator lacks {', '.join(missing)}", where=str(plugin),
                              fix="add report_states(self, stats: dict) and "
                                  "get_estimated_bandwidth(self) -> int")
        try:
            instance = estimator_class()
        except Exception as exc:
            raise PluginError(f"Estimator() raised {type(exc).__name__}: {exc}",
                              where=str(plugin),
                              fix="Estimator must be constructible without arguments; files "
                                  "it opens are relative to the plugin's folder") from exc
    finally:
        os.chdir(previous_cwd)
    return PluginEstimator(instance, plugin)


def estimator_from_spec(spec: str) -> ReceiverEstimator:
    """``gcc``, ``fixed:BPS`` or ``plugin:PATH`` (the scenario's ``estimator:`` forms)."""
    kind, _, argument = spec.partition(":")
    if kind == "gcc" and not argument:
        return GccEstimator()
    if kind == "fixed":
        try:
            bitrate = int(float(argument))
        except ValueError:
            bitrate = 0
        if bitrate <= 0:
            raise PluginError(f"bad fixed estimate {argument!r}", where=f"estimator: {spec}",
                              fix="write fixed:BPS with a positive number, e.g. fixed:1000000")
        return FixedEstimator(bitrate)
    if kind == "plugin" and argument:
        return load_plugin(argument)
    raise PluginError(f"unknown receiver estimator {spec!r}", where=f"estimator: {spec}",
                      fix="use gcc, fixed:BPS or plugin:PATH/TO/BandwidthEstimator.py")
