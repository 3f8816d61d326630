"""Receiver-side bandwidth estimators with AlphaRTC's plugin interface.

OpenNetLab/AlphaRTC runs a user's ``BandwidthEstimator.py`` through
``modules/third_party/cmdinfer/cmdinfer.py``: ``import BandwidthEstimator``
from its working directory, ``Estimator()`` with no arguments,
``report_states(stats)`` for every received RTP packet (the dict of
:mod:`endpoints.rtc.stats`) and, from ``RemoteEstimatorProxy::IncomingPacket``
(``modules/remote_bitrate_estimator/remote_estimator_proxy.cc``), right after
the report of the first packet that arrives more than ``bwe_feedback_duration``
(200 ms in its corpus configs) after the previous poll,
``get_estimated_bandwidth()``, whose answer cmdinfer sends as
``int(bandwidth)``. AlphaRTC carries it to the sender in an RTCP APP packet
(``SendbackBweEstimation``) where it becomes the target rate, the pacing
rate (× 2.5) and a padding rate of 0 (``alpha_cc_network_control.cc``
``OnReceiveBwe``); netlab carries it in REMB and its sender, in ``remb``
mode, does the same with it.

:func:`load_plugin` runs such a file unchanged: its folder goes first on
``sys.path`` (sibling imports like ``from utils.packet_info import
PacketInfo`` work), it is importable as ``BandwidthEstimator`` as under
cmdinfer, and it is imported and constructed with that folder as the working
directory (its examples load ``./model/...`` there).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import sys
import time
import traceback
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from endpoints.rtc.errors import PluginError
from endpoints.rtc.gcc import SendSideBwe
from endpoints.rtc.stats import ALPHARTC_STATS_KEYS
from endpoints.rtc.twcc import PacketResult
from labcore import units

DEFAULT_POLL_INTERVAL_S = 0.2
#: A plugin call longer than this is counted: at 2.5 Mbit/s a 1200-byte packet
#: arrives every ~4 ms, and a longer call delays the packets queued behind it.
DEFAULT_CALL_BUDGET_S = 0.005
MAX_LATENCY_SAMPLES = 200_000
_plugin_counter = itertools.count()

__all__ = [
    "ALPHARTC_STATS_KEYS",
    "DEFAULT_CALL_BUDGET_S",
    "DEFAULT_POLL_INTERVAL_S",
    "CallTimes",
    "FixedEstimator",
    "GccEstimator",
    "PluginEstimator",
    "ReceiverEstimator",
    "check_estimate",
    "estimator_from_spec",
    "load_plugin",
    "plugin_traceback",
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
        size = int(stats["payload_size"]) + int(stats["header_length"])  # padding included
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


@dataclass
class CallTimes:
    """How long one plugin method took per call, and how often it overran its budget."""

    budget_s: float
    calls: int = 0
    over_budget: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    samples_us: array[float] = field(default_factory=lambda: array("f"))

    def add(self, seconds: float) -> None:
        self.calls += 1
        self.total_s += seconds
        self.max_s = max(self.max_s, seconds)
        if seconds > self.budget_s:
            self.over_budget += 1
        if len(self.samples_us) < MAX_LATENCY_SAMPLES:
            self.samples_us.append(seconds * 1e6)

    def summary(self) -> dict[str, float | int]:
        ordered = sorted(self.samples_us)

        def pct(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

        return {"calls": self.calls, "over_budget": self.over_budget,
                "budget_ms": round(self.budget_s * 1e3, 3),
                "p50_us": pct(0.5) if ordered else 0.0, "p99_us": pct(0.99) if ordered else 0.0,
                "max_us": round(self.max_s * 1e6, 1), "total_s": round(self.total_s, 6)}


def _plugin_error(what: str, path: Path, exc: BaseException, fix: str) -> PluginError:
    """A PluginError whose cause keeps the plugin's own traceback (see plugin_traceback)."""
    error = PluginError(f"{what} raised {type(exc).__name__}: {exc}", where=str(path), fix=fix)
    error.__cause__ = exc
    return error


def plugin_traceback(error: BaseException) -> str:
    """The plugin's own traceback behind a PluginError: netlab's and importlib's
    frames dropped, so the user sees their file and line first ('' if none)."""
    cause = error.__cause__
    if cause is None or cause.__traceback__ is None:
        return ""
    here = {__file__, importlib.util.__file__}
    frames = [f for f in traceback.extract_tb(cause.__traceback__)
              if f.filename not in here and not f.filename.startswith("<frozen")]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames),
             *traceback.format_exception_only(type(cause), cause)]
    return "".join(lines)


class PluginEstimator:
    """A loaded plugin: its answers checked and made ``int``, every call timed.

    AlphaRTC calls both methods on the thread that receives packets
    (OpenNetLab/Challenge-Example README, notes 3-5), so does netlab: a call
    longer than ``budget_s`` delays the packets behind it and is counted in
    ``times`` (like an agent's late decision).
    """

    def __init__(self, estimator: Any, path: Path, *, load_s: float = 0.0,
                 budget_s: float = DEFAULT_CALL_BUDGET_S) -> None:
        self.estimator = estimator
        self.path = path
        self.directory = path.parent
        self.load_s = load_s
        self.report_times = CallTimes(budget_s)
        self.estimate_times = CallTimes(budget_s)

    def report_states(self, stats: Mapping[str, Any]) -> None:
        started = time.perf_counter()
        try:
            self.estimator.report_states(dict(stats))
        except Exception as exc:
            raise _plugin_error("Estimator.report_states", self.path, exc,
                                "fix the plugin; it receives AlphaRTC's per-packet stats dict "
                                "(its traceback is in the receiver's log)") from exc
        finally:
            self.report_times.add(time.perf_counter() - started)

    def raw_estimate(self) -> Any:
        """The plugin's answer as it returned it (timed, exceptions wrapped)."""
        started = time.perf_counter()
        try:
            return self.estimator.get_estimated_bandwidth()
        except Exception as exc:
            raise _plugin_error("Estimator.get_estimated_bandwidth", self.path, exc,
                                "fix the plugin; it must return a bitrate in bps "
                                "(its traceback is in the receiver's log)") from exc
        finally:
            self.estimate_times.add(time.perf_counter() - started)

    def get_estimated_bandwidth(self) -> int:
        return check_estimate(self.raw_estimate(), self.path)

    def summary(self) -> dict[str, Any]:
        """What the receiver's meta file and results report about the plugin."""
        return {"path": str(self.path), "load_s": round(self.load_s, 4),
                "report_states": self.report_times.summary(),
                "get_estimated_bandwidth": self.estimate_times.summary()}


def check_estimate(value: Any, path: Path) -> int:
    """AlphaRTC's ``int(bandwidth)`` (cmdinfer.py), refusing what is not a finite bitrate."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PluginError(f"Estimator.get_estimated_bandwidth returned {value!r}, "
                          "not a number", where=str(path),
                          fix="return the estimate in bps, e.g. int(1e6) for 1 Mbit/s"
                          ) from None
    if not math.isfinite(number) or number < 0:
        raise PluginError(f"Estimator.get_estimated_bandwidth returned {number}",
                          where=str(path), fix="return a finite, non-negative bitrate in bps")
    return int(number)


def _put_first_on_path(directory: str) -> None:
    """The plugin's folder first on sys.path, as cmdinfer.py's ``import
    BandwidthEstimator`` from its working directory finds it."""
    while directory in sys.path:
        sys.path.remove(directory)
    sys.path.insert(0, directory)


def load_plugin(path: str | os.PathLike[str], *, budget_s: float = DEFAULT_CALL_BUDGET_S,
                stay_in_folder: bool = False) -> PluginEstimator:
    """Import a user's BandwidthEstimator.py and construct its ``Estimator()``.

    Its folder is the working directory while it is imported and constructed
    (and afterwards with ``stay_in_folder``, as a receiver process does: files
    it opens later are relative to it too). It is importable as
    ``BandwidthEstimator`` (its stem), the name cmdinfer imports it by, unless
    that name is taken.
    """
    plugin = Path(path).expanduser().resolve()
    fix_file = "give the path of an AlphaRTC-style BandwidthEstimator.py (estimator: plugin:PATH)"
    if not plugin.is_file():
        raise PluginError("estimator plugin file does not exist", where=str(plugin), fix=fix_file)
    if plugin.suffix != ".py":
        raise PluginError("estimator plugin is not a .py file", where=str(plugin), fix=fix_file)
    directory = str(plugin.parent)
    _put_first_on_path(directory)
    module_name = f"_netlab_plugin_{next(_plugin_counter)}_{plugin.stem}"
    spec = importlib.util.spec_from_file_location(module_name, plugin)
    if spec is None or spec.loader is None:
        raise PluginError("cannot import the estimator plugin", where=str(plugin), fix=fix_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    alias = plugin.stem if plugin.stem.isidentifier() and plugin.stem not in sys.modules else None
    if alias:
        sys.modules[alias] = module
    previous_cwd = os.getcwd()
    os.chdir(directory)
    started = time.perf_counter()
    try:
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            if alias:
                del sys.modules[alias]
            raise _plugin_error("importing the plugin", plugin, exc,
                                "run `python BandwidthEstimator.py` in its folder to see "
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
            raise _plugin_error("Estimator()", plugin, exc,
                                "Estimator must be constructible without arguments; files "
                                "it opens are relative to the plugin's folder") from exc
    finally:
        if not stay_in_folder:
            os.chdir(previous_cwd)
    return PluginEstimator(instance, plugin, load_s=time.perf_counter() - started,
                           budget_s=budget_s)


def estimator_from_spec(spec: str) -> ReceiverEstimator:
    """``gcc``, ``fixed:BPS`` or ``plugin:PATH`` (the scenario's ``estimator:`` forms)."""
    kind, _, argument = spec.partition(":")
    if kind == "gcc" and not argument:
        return GccEstimator()
    if kind == "fixed":
        try:  # the one unit grammar (labcore.units); a bare number is bit/s
            bitrate = units.parse_rate(argument, bare="bit")
        except units.UnitError as exc:
            raise PluginError(f"bad fixed estimate {argument!r}: {exc.what}",
                              where=f"estimator: {spec}",
                              fix="write fixed:BPS with a positive number, e.g. fixed:1000000 "
                                  "(or a rate with its unit, e.g. fixed:1Mbit)") from None
        return FixedEstimator(bitrate)
    if kind == "plugin" and argument:
        return load_plugin(argument)
    raise PluginError(f"unknown receiver estimator {spec!r}", where=f"estimator: {spec}",
                      fix="use gcc, fixed:BPS or plugin:PATH/TO/BandwidthEstimator.py")
