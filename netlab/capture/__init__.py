"""Capture of link traffic, with one-way delay exact per packet.

A link with capture on is recorded at both ends of each captured direction
into pcapng files (Wireshark and tshark open them) under ``RUN_DIR/capture/``:
the *entry*, where packets enter the shaped link, and the *exit*, where they
leave it, on one machine's clock (kernel timestamps).  Headers only by
default (``snaplen`` 128 B) in a ring of files per capture point.  The
analysis matches every packet at entry and exit, so delay and loss are
measured, not estimated.

API (what the run pipeline calls)::

    handle = start_capture(plan, backend, [CaptureRequest("alice-bob", ("up",))],
                           run_dir, journal, CaptureOptions(snaplen=128))
    ...                         # flows run
    handle.stop()               # ends the captures, writes capture/capture.json
    rows = analyse(run_dir)     # list[TrafficRow]; row.to_json() -> traffic[] entry
    metrics = flow_metrics(rows, "10.0.0.1")   # a command flow's contract metrics
    columns = flow_columns(sender_rows(rows, "10.0.0.1"), start_ns, end_ns)
                                # its recv_rate_bps/delay_ms/loss per 100 ms bin

    stop_recorded(run_dir)      # the same stop from another process (down of a
                                # detached lab), by the manifest's pids

Files: one dumpcap per capture point, ``capture/LINK.NAMESPACE.IFACE_NNNNN_
DATE.pcapng`` (a ring of ``CaptureOptions.files`` files of ``file_size_kb``),
its stderr beside it, and ``capture.json`` (points, what each serves, the
addresses each direction carries packets to, stop time, CPU used, drops).
Capture processes are journaled by pid, so ``netlab down`` ends them after
a crash; ``analyse`` works on the files alone, after the lab is gone.
Where each point sits per shaping backend: ``points.py``; how packets are
matched: ``match.py``; what each row means: ``TrafficRow`` in ``traffic.py``
(``packets``/``bytes`` delivered, ``recv_rate_bps`` in transport payload
like netlab's own flows and iperf3, ``loss`` over the packets that entered
and were not still in flight when the capture stopped).
"""

from netlab.capture.points import CapturePoint, LinkDirection, capture_points
from netlab.capture.recorder import (
    CaptureHandle,
    CaptureOptions,
    CaptureRequest,
    start_capture,
    stop_recorded,
)
from netlab.capture.series import flow_columns
from netlab.capture.traffic import TrafficRow, analyse, flow_metrics, sender_rows

__all__ = [
    "CaptureHandle",
    "CaptureOptions",
    "CapturePoint",
    "CaptureRequest",
    "LinkDirection",
    "TrafficRow",
    "analyse",
    "capture_points",
    "flow_columns",
    "flow_metrics",
    "sender_rows",
    "start_capture",
    "stop_recorded",
]
