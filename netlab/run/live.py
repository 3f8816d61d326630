"""The live terminal view of a run: what each flow is doing, as it happens.

Every flow's endpoint processes append one JSON line per role every 250 ms
to a ``live.jsonl`` (formats: :mod:`endpoints.rtc.live` for RTC, where
sender and receiver share one ``O_APPEND`` file; :mod:`endpoints.tcp.logs`
for TCP, one file per process). This module tails those files
incrementally (it remembers each file's offset and never reads a byte
twice, so a long run costs the flows nothing), keeps what the view needs,
and draws it:

* on a terminal, a :class:`rich.live.Live` layout refreshed 4 times a
  second: a header (scenario, backend, elapsed/duration bar) and one panel
  per flow (receive rate, one-way delay, loss, target/estimate for RTC or
  srtt/cwnd/retransmits for TCP, and a sparkline of the receive rate over
  the last 30 s);
* elsewhere (a pipe, a CI log), one compact status line every 5 s;
* with ``quiet``, nothing.

When the view closes it prints a short summary of what it saw (the
authoritative numbers are the results' own, computed from the full logs).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.measure import Measurement
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from netlab.run.fmt import format_bps, ms, number
from netlab.run.kinds import kind_of

__all__ = ["JsonlTail", "LiveFlow", "LiveView", "bucket_means", "format_bps", "sparkline"]

SPARK_LEVELS = "▁▂▃▄▅▆▇█"
WINDOW_S = 30.0
REFRESH_HZ = 4.0  # the endpoints write every 250 ms: faster would redraw the same numbers
MIN_REFRESH_S = 0.5  # the floor: at least twice a second
DRAW_BUDGET = 20.0  # wait at least this many times what a frame took to draw
STATUS_EVERY_S = 5.0
STALE_S = 2.0  # no new line for this long while a flow should run: say so
CLOCK_SLACK_S = 60.0  # a line stamped this far outside the run is not on our clock
PROFILE_BINS = 240  # whole-run receive-rate profile kept for the summary's sparkline
MAX_READ_BYTES = 4 << 20  # per file per poll: a backlog is drained over a few polls
PANEL_LINES = 6  # height of one flow panel (borders included)


# ---- reading ---------------------------------------------------------------------------


class JsonlTail:
    """Incremental reader of a JSON-lines file another process appends to.

    Only bytes past :attr:`offset` are read on each :meth:`read_new`; an
    unterminated last line is kept in memory until its newline arrives (a
    writer may be caught mid-``write``). Lines that are not JSON objects are
    counted in :attr:`bad_lines` and skipped, never fatal: the view must not
    take a run down. A file that shrinks (rewritten from the start) is read
    again from byte 0.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0  # bytes consumed so far (partial line included)
        self.bytes_read = 0  # total bytes ever read: equals offset unless the file restarted
        self.bad_lines = 0
        self._partial = b""

    def read_new(self) -> list[dict[str, Any]]:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        try:
            size = os.fstat(fd).st_size
            if size < self.offset:
                self.offset, self._partial = 0, b""
            want = min(size - self.offset, MAX_READ_BYTES)
            data = os.pread(fd, want, self.offset) if want > 0 else b""
        finally:
            os.close(fd)
        self.offset += len(data)
        self.bytes_read += len(data)
        if not data:
            return []
        *complete, self._partial = (self._partial + data).split(b"\n")
        entries: list[dict[str, Any]] = []
        for raw in complete:
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except ValueError:  # JSONDecodeError and undecodable bytes alike
                self.bad_lines += 1
                continue
            if isinstance(entry, dict):
                entries.append(entry)
            else:
                self.bad_lines += 1
        return entries


# ---- what the view keeps per flow ------------------------------------------------------


@dataclass(frozen=True)
class LiveFlow:
    """One flow as the view shows it.

    ``live_path`` is the ``live.jsonl`` the flow's processes append to;
    ``extra_paths`` holds more when sender and receiver write separate files
    (the TCP apps do). ``start_s``/``stop_s`` are relative to the run's start.
    """

    id: str
    kind: str  # a name in netlab.run.kinds.KINDS
    src: str
    dst: str
    label: str  # e.g. "gcc", "bbr"
    live_path: Path
    start_s: float = 0.0
    stop_s: float | None = None
    extra_paths: tuple[Path, ...] = ()

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(dict.fromkeys((self.live_path, *self.extra_paths)))


def _line_time(entry: dict[str, Any], read_at: float, run_start: float) -> float:
    """When a line was written, on our monotonic clock.

    RTC lines carry ``time_ns``, TCP lines ``time`` (seconds), both
    CLOCK_MONOTONIC like :func:`time.monotonic`. A line without either, or
    stamped outside the run (another machine's clock), is placed at the
    moment we read it. Old lines are fine: a backlog keeps its real times.
    """
    stamp = number(entry.get("time_ns"))
    seconds = stamp / 1e9 if stamp is not None else number(entry.get("time"))
    if seconds is None or not run_start - CLOCK_SLACK_S <= seconds <= read_at + CLOCK_SLACK_S:
        return read_at
    return seconds


@dataclass
class FlowState:
    """The newest line of each role, a recent receive-rate history and
    whole-run aggregates for the summary."""

    flow: LiveFlow
    run_start: float
    duration_s: float
    window_s: float = WINDOW_S
    tails: list[JsonlTail] = field(default_factory=list)
    sender: dict[str, Any] = field(default_factory=dict)
    receiver: dict[str, Any] = field(default_factory=dict)
    recent: deque[tuple[float, float]] = field(default_factory=deque)  # (time, recv bps)
    last_line_at: float | None = None  # our clock, when the newest line was read
    recv_sum_bps: float = 0.0
    recv_samples: int = 0
    delays_ms: list[float] = field(default_factory=list)  # owd (rtc) or srtt (tcp)
    target_sum_bps: float = 0.0
    target_samples: int = 0
    profile_sum: list[float] = field(default_factory=lambda: [0.0] * PROFILE_BINS)
    profile_count: list[int] = field(default_factory=lambda: [0] * PROFILE_BINS)

    def __post_init__(self) -> None:
        if not self.tails:
            self.tails = [JsonlTail(path) for path in self.flow.paths]

    def poll(self, now: float) -> int:
        """Read whatever the flow's files gained; the number of new lines."""
        count = 0
        for tail in self.tails:
            for entry in tail.read_new():
                self._take(entry, now)
                count += 1
        if count:
            self.last_line_at = now
        horizon = now - self.window_s
        while self.recent and self.recent[0][0] < horizon:
            self.recent.popleft()
        return count

    def _take(self, entry: dict[str, Any], read_at: float) -> None:
        role = entry.get("role", "receiver")
        if role == "sender":
            self.sender = entry
            target = number(entry.get("target_bps", entry.get("estimate_bps")))
            if target is not None:
                self.target_sum_bps += target
                self.target_samples += 1
            srtt = number(entry.get("srtt_ms"))
            if srtt is not None:
                self.delays_ms.append(srtt)
            return
        if role != "receiver":
            return
        self.receiver = entry
        owd = number(entry.get("owd_ms"))
        if owd is not None:
            self.delays_ms.append(owd)
        rate = number(entry.get("rate_bps"))
        if rate is None:
            return
        at = _line_time(entry, read_at, self.run_start)
        self.recent.append((at, rate))
        self.recv_sum_bps += rate
        self.recv_samples += 1
        span = max(self.duration_s, 1e-9)
        index = min(PROFILE_BINS - 1, max(0, int((at - self.run_start) / span * PROFILE_BINS)))
        self.profile_sum[index] += rate
        self.profile_count[index] += 1

    @property
    def has_data(self) -> bool:
        return bool(self.sender or self.receiver)

    def profile(self) -> list[tuple[float, float]]:
        """The whole run's receive rate as (time, mean bps) per profile bin with data."""
        step = self.duration_s / PROFILE_BINS
        return [(self.run_start + (i + 0.5) * step, total / count)
                for i, (total, count) in enumerate(zip(self.profile_sum, self.profile_count,
                                                       strict=True)) if count]


# ---- sparklines ------------------------------------------------------------------------


def bucket_means(points: Iterable[tuple[float, float]], start: float, end: float,
                 width: int) -> list[float | None]:
    """Mean of the values falling in each of ``width`` equal time buckets of
    [start, end); None where a bucket got nothing."""
    sums = [0.0] * width
    counts = [0] * width
    span = end - start
    if width <= 0 or span <= 0:
        return [None] * max(0, width)
    for at, value in points:
        if at < start or at > end:
            continue
        index = min(width - 1, int((at - start) / span * width))
        sums[index] += value
        counts[index] += 1
    return [s / c if c else None for s, c in zip(sums, counts, strict=True)]


def sparkline(values: Sequence[float | None], top: float | None = None) -> str:
    """One block character per value, scaled from 0 to ``top`` (default: the
    largest value). Zero is the lowest block, so an outage still shows; a
    missing value is a space, so "no data" never looks like "no traffic"."""
    present = [v for v in values if v is not None]
    scale = top if top is not None else max(present, default=0.0)
    out = []
    for value in values:
        if value is None:
            out.append(" ")
        elif scale <= 0:
            out.append(SPARK_LEVELS[0])
        else:
            level = round(max(0.0, min(value, scale)) / scale * (len(SPARK_LEVELS) - 1))
            out.append(SPARK_LEVELS[level])
    return "".join(out)


def _hold_gaps(values: list[float | None]) -> list[float | None]:
    """Carry a value across buckets narrower than the sampling interval, so a
    wide sparkline is not striped with spaces; leading gaps stay empty."""
    out: list[float | None] = []
    last: float | None = None
    run = 0
    for value in values:
        if value is None and last is not None and run < 2:
            out.append(last)
            run += 1
        else:
            out.append(value)
            if value is not None:
                last, run = value, 0
    return out


class Sparkline:
    """A sparkline as wide as the space rich gives it (a renderable)."""

    def __init__(self, points: Sequence[tuple[float, float]], start: float, end: float,
                 style: str = "cyan", max_width: int | None = None) -> None:
        self.points = points
        self.start = start
        self.end = end
        self.style = style
        self.max_width = max_width

    def text(self, width: int) -> str:
        if self.max_width is not None:
            width = min(width, self.max_width)
        return sparkline(_hold_gaps(bucket_means(self.points, self.start, self.end, width)))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(self.text(max(1, options.max_width)), style=self.style, no_wrap=True)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(8, min(options.max_width, self.max_width or options.max_width))


# ---- formatting ------------------------------------------------------------------------


def _flow_fields(state: FlowState) -> list[tuple[str, str]]:
    """The (name, value) pairs a flow's panel and status line show (its kind's)."""
    return kind_of(state.flow.kind).live_fields(state.receiver, state.sender)


# ---- the view --------------------------------------------------------------------------


class LiveView:
    """The live view of a run, as a context manager around the run's wait.

    ``start_monotonic`` is the run's shared start on :func:`time.monotonic`
    (flows' ``start_s`` count from it); by default, the moment the view opens.
    """

    def __init__(self, flows: list[LiveFlow], duration_s: float, *, console: Console,
                 quiet: bool, title: str, backend: str | None = None,
                 start_monotonic: float | None = None, refresh_hz: float = REFRESH_HZ,
                 status_every_s: float = STATUS_EVERY_S, window_s: float = WINDOW_S,
                 summary: bool = True) -> None:
        self.flows = list(flows)
        self.duration_s = duration_s
        self.console = console
        self.quiet = quiet or console.quiet
        self.title = title
        self.backend = backend
        self.start_monotonic = start_monotonic
        self.refresh_s = min(1.0 / refresh_hz, MIN_REFRESH_S)
        self.status_every_s = status_every_s
        self.window_s = window_s
        self.show_summary = summary
        self.states: list[FlowState] = []
        self._live: Live | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._closed_at: float | None = None

    # -- lifecycle -------------------------------------------------------------------

    @property
    def interactive(self) -> bool:
        return self.console.is_terminal and not self.console.is_dumb_terminal

    def __enter__(self) -> LiveView:
        if self.start_monotonic is None:
            self.start_monotonic = time.monotonic()
        self.states = [FlowState(flow, self.start_monotonic, self.duration_s, self.window_s)
                       for flow in self.flows]
        if self.quiet:
            return self
        if self.interactive:
            self._live = Live(self.render(), console=self.console, auto_refresh=False,
                              transient=True)
            self._live.start()
        self._thread = threading.Thread(target=self._loop, name="netlab-live", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._closed_at = time.monotonic()
        if self.quiet:
            return
        self.poll()
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self.show_summary:
            interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
            self.console.print(self.summary(interrupted=interrupted))

    def _loop(self) -> None:
        next_status = (self.start_monotonic or time.monotonic()) + self.status_every_s
        # Off a terminal nobody sees the frames: read once a second, print every 5 s.
        period = self.refresh_s if self._live is not None else min(1.0, self.status_every_s)
        while not self._stop.wait(period):
            try:
                self.poll()
                if self._live is not None:
                    began = time.perf_counter()
                    self._live.update(self.render(), refresh=True)
                    # Share the CPU with the flows: drawing takes at most ~5 % of a
                    # core, slowing towards (never below) the 2 Hz floor.
                    cost = time.perf_counter() - began
                    frame_s = min(MIN_REFRESH_S, max(self.refresh_s, cost * DRAW_BUDGET))
                    period = max(0.0, frame_s - cost)
                elif time.monotonic() >= next_status:
                    next_status += self.status_every_s
                    self.console.print(self.status_line(), markup=False, highlight=False,
                                       soft_wrap=True)
            except Exception as error:  # the view must never stop a run
                self.console.print(f"live view stopped: {error!r}", markup=False)
                return

    def poll(self, now: float | None = None) -> int:
        """Read what every flow's files gained since the last poll."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return sum(state.poll(now) for state in self.states)

    # -- time ------------------------------------------------------------------------

    def elapsed(self, now: float | None = None) -> float:
        if self.start_monotonic is None:
            return 0.0
        now = (self._closed_at or time.monotonic()) if now is None else now
        return max(0.0, now - self.start_monotonic)

    def _flow_status(self, state: FlowState, now: float) -> str | None:
        """Why a flow shows no numbers (or stale ones); None when it is live."""
        elapsed = self.elapsed(now)
        if not state.has_data:
            if elapsed < state.flow.start_s:
                return f"starts at {state.flow.start_s:g}s"
            return "waiting"
        stop = state.flow.stop_s if state.flow.stop_s is not None else self.duration_s
        if elapsed >= stop:
            return "ended"
        if state.last_line_at is not None and now - state.last_line_at > STALE_S:
            return f"no data for {now - state.last_line_at:.0f} s"
        return None

    # -- rendering -------------------------------------------------------------------

    def render(self, now: float | None = None) -> RenderableType:
        """The whole layout: header, then the flows as panels (or as a table
        when panels would not fit the terminal's height)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            header = self._header(now)
            if not self.states:
                return Group(header, Text("no flows in this scenario", style="dim"))
            columns = max(1, min(len(self.states), self.console.width // 56))
            rows = math.ceil(len(self.states) / columns)
            if 3 + rows * PANEL_LINES > self.console.height and self.console.is_terminal:
                return Group(header, self._table(now))
            grid = Table.grid(expand=True, padding=(0, 1))
            for _ in range(columns):
                grid.add_column(ratio=1)
            panels = [self._panel(state, now) for state in self.states]
            for row in range(rows):
                cells: list[RenderableType] = list(panels[row * columns:(row + 1) * columns])
                cells += [Text("")] * (columns - len(cells))
                grid.add_row(*cells)
            return Group(header, grid)

    def _header(self, now: float) -> RenderableType:
        elapsed = min(self.elapsed(now), self.duration_s)
        grid = Table.grid(expand=True, padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(ratio=1)
        grid.add_column(no_wrap=True, justify="right")
        name = Text.assemble(("netlab ", "dim"), (self.title, "bold"))
        if self.backend:
            name.append(f"  {self.backend} shaping", style="dim")
        grid.add_row(name, ProgressBar(total=max(self.duration_s, 1e-9), completed=elapsed),
                     Text(f"{elapsed:5.1f} / {self.duration_s:g} s"))
        return Panel(grid, box=box.ROUNDED, padding=(0, 1))

    def _panel(self, state: FlowState, now: float) -> Panel:
        flow = state.flow
        title = Text.assemble((flow.id, "bold"), f" {flow.src} → {flow.dst}")
        subtitle = Text(f"{flow.kind} · {flow.label}" if flow.label else flow.kind, style="dim")
        status = self._flow_status(state, now)
        body = Table.grid(expand=True, padding=(0, 1))
        for _ in range(2):
            body.add_column(style="dim", no_wrap=True)
            body.add_column(no_wrap=True, ratio=1)
        if state.has_data:
            pairs = _flow_fields(state)
            for row in range(0, 4, 2):  # two rows of two pairs: the panel keeps its height
                cells: list[RenderableType] = []
                for name, value in (pairs[row:row + 2] + [("", "")] * 2)[:2]:
                    cells += [Text(name), Text(value, style="bold" if name == "recv" else "")]
                body.add_row(*cells)
            extra = ", ".join(f"{name} {value}" for name, value in pairs[4:])
            spark_row = Table.grid(expand=True, padding=(0, 1))
            spark_row.add_column(ratio=1, no_wrap=True)
            spark_row.add_column(no_wrap=True, style="dim", justify="right")
            peak = max((rate for _, rate in state.recent), default=None)
            spark_row.add_row(Sparkline(list(state.recent), now - self.window_s, now),
                              f"peak {format_bps(peak)}")
            note = Text(no_wrap=True, overflow="ellipsis")  # kept when empty: a steady layout
            if status:
                note.append(status + "  ", style="yellow")
            note.append(extra, style="dim")
            content: RenderableType = Group(body, note, spark_row)
        else:
            content = Text(status or "waiting", style="dim italic", justify="center")
        border = "green" if state.has_data and status is None else "grey50"
        return Panel(content, title=title, title_align="left", subtitle=subtitle,
                     subtitle_align="right", border_style=border, height=PANEL_LINES)

    def _flow_table(self, title: str | None, headers: Sequence[str], spark_header: str,
                    expand: bool) -> Table:
        """A table with one row per flow; the path column only where it fits."""
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, expand=expand,
                      pad_edge=False)
        table.add_column("flow", no_wrap=True, overflow="ellipsis")
        if self._wide:
            table.add_column("path", no_wrap=True)
        for header in headers:
            table.add_column(header, justify="right", no_wrap=True)
        # Not no_wrap: rich narrows this column first, and a Sparkline fits any width.
        table.add_column(spark_header, ratio=1 if expand else None, min_width=8)
        return table

    @property
    def _wide(self) -> bool:
        return self.console.width >= 100

    def _add_flow_row(self, table: Table, flow: LiveFlow, cells: Sequence[str],
                      last: RenderableType) -> None:
        path = [f"{flow.src} → {flow.dst}"] if self._wide else []
        table.add_row(flow.id, *path, *cells, last)

    def _table(self, now: float) -> Table:
        """One row per flow: the compact form for many flows or a small terminal.
        TCP flows put srtt, retransmits and cwnd where RTC has delay, loss and target."""
        table = self._flow_table(None, ("recv", "delay", "loss", "target"),
                                 f"last {self.window_s:g} s", expand=True)
        for state in self.states:
            if not state.has_data:
                status = self._flow_status(state, now) or "waiting"
                self._add_flow_row(table, state.flow, ["–"] * 4,
                                   Text(status, style="dim", no_wrap=True, overflow="ellipsis"))
                continue
            cells = kind_of(state.flow.kind).live_cells(dict(_flow_fields(state)))
            self._add_flow_row(table, state.flow, cells,
                               Sparkline(list(state.recent), now - self.window_s, now))
        return table

    def status_line(self, now: float | None = None) -> str:
        """One line for logs: elapsed time and each flow's headline numbers."""
        now = time.monotonic() if now is None else now
        with self._lock:
            parts = [f"{self.title} {min(self.elapsed(now), self.duration_s):.0f}/"
                     f"{self.duration_s:g} s"]
            for state in self.states:
                status = self._flow_status(state, now)
                if not state.has_data:
                    parts.append(f"{state.flow.id} {status}")
                    continue
                values = " ".join(f"{name} {value}" for name, value in _flow_fields(state)
                                  if value != "–")
                parts.append(f"{state.flow.id} {values}" + (f" ({status})" if status else ""))
            return " | ".join(parts)

    def summary(self, *, interrupted: bool = False) -> RenderableType:
        """What the view saw over the whole run, one row per flow."""
        elapsed = self.elapsed()
        ran = f"{min(elapsed, self.duration_s):.1f} s of {self.duration_s:g} s"
        title = f"{self.title}: {'interrupted after ' if interrupted else ''}{ran}"
        table = self._flow_table(title, ("mean recv", "median delay", "loss", "mean target"),
                                 "recv over the run", expand=False)
        with self._lock:
            for state in self.states:
                if not state.has_data:
                    never = (f"not started (starts at {state.flow.start_s:g}s)"
                             if elapsed < state.flow.start_s else "no data")
                    self._add_flow_row(table, state.flow, ["–"] * 4, Text(
                        never, style="dim", no_wrap=True, overflow="ellipsis"))
                    continue
                mean = state.recv_sum_bps / state.recv_samples if state.recv_samples else None
                kind = kind_of(state.flow.kind)
                lost = kind.live_lost(state.receiver, state.sender)
                target = (state.target_sum_bps / state.target_samples
                          if state.target_samples and kind.shows_target else None)
                start = state.run_start
                self._add_flow_row(
                    table, state.flow,
                    [format_bps(mean), ms(_median(state.delays_ms)), lost, format_bps(target)],
                    Sparkline(state.profile(), start, start + self.duration_s, max_width=40))
        return table


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

