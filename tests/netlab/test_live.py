"""The live view: tailing live.jsonl files as endpoints append them, and what it draws.

The files are written by a thread during each test in the endpoints' own
formats (:mod:`endpoints.rtc.live`: sender and receiver in one O_APPEND
file; :mod:`endpoints.tcp.logs`: one file per process), with CLOCK_MONOTONIC
stamps as the real apps write them.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from netlab.run.live import (
    SPARK_LEVELS,
    JsonlTail,
    LiveFlow,
    LiveView,
    bucket_means,
    format_bps,
    sparkline,
)

RTC_RECV_BPS = 2_000_000
RTC_TARGET_BPS = 2_400_000
TCP_RECV_BPS = 9_550_000


def _append(path: Path, entry: dict[str, object]) -> None:
    """One write on an O_APPEND descriptor, as endpoints.rtc.live.LiveWriter does."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode())
    finally:
        os.close(fd)


def _rtc_lines(now: float, t_s: float, recv_bps: float) -> list[dict[str, object]]:
    stamp = int(now * 1e9)
    return [
        {"role": "sender", "time_ns": stamp, "t_s": t_s, "rate_bps": recv_bps * 1.02,
         "loss": 0.0125, "owd_ms": None, "estimate_bps": RTC_TARGET_BPS,
         "target_bps": RTC_TARGET_BPS, "pacer_queue_bytes": 0, "rtt_ms": 48.2,
         "usage": "normal", "packets_sent": 100},
        {"role": "receiver", "time_ns": stamp, "t_s": t_s, "rate_bps": recv_bps,
         "loss": 0.0125, "owd_ms": 23.4, "owd_max_ms": 31.0, "estimate_bps": None,
         "packets_received": 99, "packets_lost": 1},
    ]


def _tcp_lines(now: float, t_s: float, recv_bps: float,
               retrans: int) -> tuple[dict[str, object], dict[str, object]]:
    receiver = {"time": now, "t_s": t_s, "role": "receiver", "rate_bps": recv_bps,
                "srtt_ms": None, "cwnd": None, "retrans": None}
    sender = {"time": now, "t_s": t_s, "role": "sender", "rate_bps": recv_bps,
              "srtt_ms": 42.5, "cwnd": 87, "retrans": retrans}
    return receiver, sender


def _sawtooth_bps(t_s: float) -> float:
    """The RTC receive rate: a 0.5 s sawtooth from 1/4 to all of RTC_RECV_BPS,
    so any window of a second or more holds several sparkline levels."""
    return RTC_RECV_BPS * (0.25 + 0.75 * ((t_s / 0.5) % 1.0))


class Writers:
    """Appends live lines for one RTC and one TCP flow every ``interval_s``."""

    def __init__(self, base: Path, interval_s: float = 0.02) -> None:
        self.rtc = base / "rtc-1" / "live.jsonl"
        self.tcp_recv = base / "tcp-1" / "receiver" / "live.jsonl"
        self.tcp_send = base / "tcp-1" / "sender" / "live.jsonl"
        for path in (self.rtc, self.tcp_recv, self.tcp_send):
            path.parent.mkdir(parents=True)
        self.interval_s = interval_s
        self.lines = 0
        self.last_rtc: list[dict[str, object]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            self.write_step(now, now - start)

    def write_step(self, now: float, t_s: float) -> None:
        """One line per role and flow, stamped ``now``."""
        self.last_rtc = _rtc_lines(now, t_s, _sawtooth_bps(t_s))
        for entry in self.last_rtc:
            _append(self.rtc, entry)
        receiver, sender = _tcp_lines(now, t_s, TCP_RECV_BPS, self.lines // 4 + 1)
        _append(self.tcp_recv, receiver)
        _append(self.tcp_send, sender)
        self.lines += 4

    def backfill(self, steps: int, end: float) -> None:
        """``steps`` steps stamped ``interval_s`` apart up to ``end``, written
        at once: the history a view reads is then exact, whatever the load."""
        for index in range(steps):
            stamp = end - (steps - 1 - index) * self.interval_s
            self.write_step(stamp, stamp - (end - steps * self.interval_s))

    def __enter__(self) -> Writers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def wait_lines(self, count: int, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.lines < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.lines >= count, f"writer thread wrote only {self.lines} lines"


def _flows(writers: Writers, base: Path) -> list[LiveFlow]:
    return [
        LiveFlow("rtc-1", "rtc", "alice", "bob", "gcc", writers.rtc),
        LiveFlow("tcp-1", "tcp", "bob", "alice", "bbr", writers.tcp_recv,
                 extra_paths=(writers.tcp_send,)),
        LiveFlow("tcp-late", "tcp", "alice", "bob", "cubic", base / "late" / "live.jsonl",
                 start_s=100.0),
        LiveFlow("rtc-idle", "rtc", "bob", "alice", "policy", base / "idle" / "live.jsonl"),
    ]


def _recording_console() -> Console:
    return Console(record=True, width=120, file=io.StringIO())


@pytest.fixture
def writers(tmp_path: Path) -> Iterator[Writers]:
    with Writers(tmp_path) as running:
        yield running


# ---- the tail ---------------------------------------------------------------------------


def test_tail_keeps_a_partial_last_line_until_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    whole = b'{"role":"receiver","rate_bps":1}\n{"role":"receiver","rate_bps":2}\n'
    half = b'{"role":"receiver","ra'
    path.write_bytes(whole + half)
    tail = JsonlTail(path)
    assert [e["rate_bps"] for e in tail.read_new()] == [1, 2]
    assert tail.offset == len(whole + half)  # the half line is held, not re-read
    assert tail.read_new() == []
    with open(path, "ab") as file:
        file.write(b'te_bps":3}\nnot json\n[1]\n')
    assert [e["rate_bps"] for e in tail.read_new()] == [3]
    assert tail.bad_lines == 2


def test_tail_reads_each_byte_once(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    tail = JsonlTail(path)
    assert tail.read_new() == []  # not created yet: fine
    for index in range(50):
        _append(path, {"role": "receiver", "rate_bps": index})
    assert len(tail.read_new()) == 50
    first_offset = tail.offset
    assert first_offset == path.stat().st_size
    # Scribble over what was already read: a tail that re-read it would choke or repeat.
    with open(path, "r+b") as file:
        file.write(b"X" * first_offset)
    for index in range(50, 60):
        _append(path, {"role": "receiver", "rate_bps": index})
    assert [e["rate_bps"] for e in tail.read_new()] == list(range(50, 60))
    assert tail.bad_lines == 0
    assert tail.bytes_read == tail.offset == path.stat().st_size


def test_tail_starts_over_when_the_file_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text('{"rate_bps":1}\n{"rate_bps":2}\n')
    tail = JsonlTail(path)
    assert len(tail.read_new()) == 2
    path.write_text('{"rate_bps":7}\n')  # the TCP apps open with "w": a restart truncates
    assert [e["rate_bps"] for e in tail.read_new()] == [7]


def test_view_polls_only_new_bytes_while_flows_write(tmp_path: Path, writers: Writers) -> None:
    view = LiveView(_flows(writers, tmp_path), 10.0, console=_recording_console(),
                    quiet=True, title="offsets")
    with view:
        total = 0
        for _ in range(5):
            writers.wait_lines(writers.lines + 8)
            total += view.poll()
        tails = {tail.path: tail for state in view.states for tail in state.tails}
        for path in (writers.rtc, writers.tcp_recv, writers.tcp_send):
            tail = tails[path]
            assert tail.bytes_read == tail.offset  # never rewound, never re-read
            assert tail.offset <= path.stat().st_size
        # Every line counted once: what the files hold up to the offsets.
        held = sum(path.read_bytes()[:tails[path].offset].count(b"\n")
                   for path in (writers.rtc, writers.tcp_recv, writers.tcp_send))
        assert total == held


# ---- sparklines ---------------------------------------------------------------------------


def test_sparkline_scales_from_zero_and_marks_gaps() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == SPARK_LEVELS
    assert sparkline([None, 0.0, 10.0, None]) == " ▁█ "
    assert sparkline([5.0, 5.0], top=10.0) == "▅▅"  # 5/10 of 7 steps rounds to level 4
    assert sparkline([3.0, 3.0]) == "██"
    assert sparkline([]) == ""


def test_bucket_means_average_per_time_bucket() -> None:
    points = [(0.1, 1.0), (0.2, 3.0), (1.5, 8.0), (3.9, 4.0), (9.0, 100.0)]
    assert bucket_means(points, 0.0, 4.0, 4) == [2.0, 8.0, None, 4.0]


def test_format_bps() -> None:
    assert format_bps(2_410_000) == "2.41 Mbit/s"
    assert format_bps(95_500_000) == "95.5 Mbit/s"
    assert format_bps(640_000) == "640 kbit/s"
    assert format_bps(None) == "–"


# ---- rendering ----------------------------------------------------------------------------


def test_layout_shows_flows_values_and_sparkline(tmp_path: Path) -> None:
    # The history is written with exact stamps rather than by a thread, so a
    # loaded machine cannot leave holes in the window this test measures.
    writers = Writers(tmp_path)
    console = _recording_console()
    end = time.monotonic()
    view = LiveView(_flows(writers, tmp_path), 60.0, console=console, quiet=True,
                    title="lte-rtc", backend="kernel", summary=False, status_every_s=600,
                    window_s=1.0, start_monotonic=end - 2.0)  # quiet: no polling thread
    with view:
        writers.backfill(60, end)  # over a second: two sawtooth periods in the window
        view.poll(end)
        console.print(view.render(end))
    text = console.export_text()
    last_recv = writers.last_rtc[1]["rate_bps"]
    assert isinstance(last_recv, float)
    for expected in ("lte-rtc", "kernel shaping", "/ 60 s",
                     "rtc-1 alice → bob", "rtc · gcc", "tcp-1 bob → alice", "tcp · bbr",
                     format_bps(last_recv), "23.4 ms", "1.2 %", format_bps(RTC_TARGET_BPS),
                     "48.2 ms", format_bps(TCP_RECV_BPS), "42.5 ms", "87",
                     f"retrans {writers.lines // 4}", "starts at 100s", "waiting"):
        assert expected in text, f"{expected!r} not in:\n{text}"
    spark_line = next(line for line in text.splitlines() if "peak" in line)
    rtc_cell, tcp_cell = spark_line.split("│")[1], spark_line.split("│")[3]
    rtc_spark = [ch for ch in rtc_cell if ch in SPARK_LEVELS]
    tcp_spark = [ch for ch in tcp_cell if ch in SPARK_LEVELS]
    assert len(rtc_spark) >= 30 and len(tcp_spark) >= 30  # the window is full
    assert len(set(rtc_spark)) >= 3 and "█" in rtc_spark  # the sawtooth's shape
    assert set(tcp_spark) == {"█"}  # a constant rate is a flat line
    assert f"peak {format_bps(TCP_RECV_BPS)}" in tcp_cell


def test_compact_table_when_panels_do_not_fit(tmp_path: Path, writers: Writers) -> None:
    console = Console(record=True, width=120, height=12, force_terminal=True,
                      file=io.StringIO())
    view = LiveView(_flows(writers, tmp_path), 60.0, console=console, quiet=True,
                    title="many")
    with view:
        writers.wait_lines(4 * 5)
        view.poll()
        console.print(view.render())
    text = console.export_text()
    assert "last 30 s" in text
    rows = [line for line in text.splitlines() if line.lstrip().startswith(("rtc-", "tcp-"))]
    assert len(rows) == 4
    assert any(ch in text for ch in SPARK_LEVELS)


def test_quiet_renders_nothing(tmp_path: Path, writers: Writers) -> None:
    cases = [(_recording_console(), True), (Console(record=True, width=120, quiet=True), False)]
    for console, quiet in cases:
        with LiveView(_flows(writers, tmp_path), 1.0, console=console, quiet=quiet,
                      title="quiet", status_every_s=0.1) as view:
            writers.wait_lines(40)
            time.sleep(0.3)
            assert view._thread is None
        assert console.export_text() == ""


def test_live_layout_refreshes_at_least_twice_a_second(tmp_path: Path,
                                                       writers: Writers) -> None:
    console = Console(record=True, width=120, height=40, force_terminal=True,
                      file=io.StringIO())
    view = LiveView(_flows(writers, tmp_path), 60.0, console=console, quiet=False,
                    title="refresh-probe", summary=False)
    assert view.interactive
    with view:
        time.sleep(2.0)
    frames = console.export_text().count("netlab refresh-probe")
    # 4 Hz is asked (8 frames); 2 Hz is the floor; 1 Hz would give 2.
    assert frames >= 4, f"{frames} frames in 2 s"


def test_non_terminal_prints_status_lines_and_a_summary(tmp_path: Path,
                                                        writers: Writers) -> None:
    console = _recording_console()
    assert not console.is_terminal
    flows = _flows(writers, tmp_path)
    with LiveView(flows, 1.0, console=console, quiet=False, title="ci-log",
                  status_every_s=0.4):
        time.sleep(1.3)
    text = console.export_text()
    status = [line for line in text.splitlines() if line.startswith("ci-log ")]
    assert 2 <= len(status) <= 4, text  # every 0.4 s over 1.3 s
    assert len(status[-1]) > 120  # one line, not wrapped at the console's width
    assert re.search(r"rtc-1 recv [\d.]+ [kM]bit/s delay 23.4 ms loss 1.2 % "
                     r"target 2.40 Mbit/s rtt 48.2 ms", status[-1]), status[-1]
    assert "tcp-1 recv 9.55 Mbit/s srtt 42.5 ms cwnd 87 retrans" in status[-1]
    assert "tcp-late starts at 100s" in status[-1]
    assert "rtc-idle waiting" in status[-1]
    assert "╭" not in text  # no live layout off a terminal
    # The summary: a row per flow with the whole run's sparkline.
    summary = text[text.index("ci-log: "):]
    assert "mean recv" in summary
    row = next(line for line in summary.splitlines() if line.lstrip().startswith("rtc-1"))
    assert re.search(r"alice → bob +[\d.]+ [kM]bit/s +23.4 ms +1.2 % +2.40 Mbit/s", row), row
    assert sum(ch in SPARK_LEVELS for ch in row) >= 10
    assert "not started (starts at 100s)" in summary
    assert "no data" in summary


def test_stale_and_ended_flows_say_so(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    start = time.monotonic()
    flow = LiveFlow("rtc-1", "rtc", "a", "b", "gcc", path, stop_s=8.0)
    console = _recording_console()
    view = LiveView([flow], 10.0, console=console, quiet=True, title="t",
                    start_monotonic=start)
    with view:
        for entry in _rtc_lines(start + 0.25, 0.25, 1e6):
            _append(path, entry)
        view.poll(now=start + 0.5)
        assert "no data for" not in view.status_line(now=start + 1.0)
        assert "no data for 4 s" in view.status_line(now=start + 4.5)
        assert "(ended)" in view.status_line(now=start + 9.0)


def test_ctrl_c_still_prints_the_summary_and_propagates(tmp_path: Path,
                                                         writers: Writers) -> None:
    console = _recording_console()
    with pytest.raises(KeyboardInterrupt), LiveView(
            _flows(writers, tmp_path), 60.0, console=console, quiet=False, title="lte",
            status_every_s=600):
        writers.wait_lines(4 * 10)
        raise KeyboardInterrupt
    text = console.export_text()
    assert re.search(r"lte: interrupted after \d+\.\d s of 60 s", text), text
    assert "rtc-1" in text and "tcp-1" in text


def test_a_backlog_keeps_its_times_and_an_outage_shows(tmp_path: Path) -> None:
    """A view opened late reads 40 s of lines at once: they land where they
    were written, and a 3 s outage in the window is a run of the lowest block."""
    path = tmp_path / "live.jsonl"
    now = time.monotonic()
    start = now - 40.0
    for step in range(160):
        at = start + step * 0.25
        receiver, sender = _tcp_lines(at, step * 0.25, 0.0 if 100 <= step < 112 else 4e6, step)
        _append(path, receiver)
        _append(path, sender)
    console = _recording_console()
    view = LiveView([LiveFlow("tcp-1", "tcp", "a", "b", "cubic", path)], 60.0,
                    console=console, quiet=True, title="late", start_monotonic=start)
    with view:
        assert view.poll(now=now) == 320
        console.print(view.render(now=now))
    spark_line = next(line for line in console.export_text().splitlines() if "peak" in line)
    spark = "".join(ch for ch in spark_line if ch in SPARK_LEVELS)
    assert len(spark) >= 90  # the whole 30 s window, not a squashed last instant
    assert "▁▁▁▁▁▁▁▁" in spark and spark.count("█") > 60
