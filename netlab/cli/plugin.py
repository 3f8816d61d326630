"""``netlab plugin check BandwidthEstimator.py``: will this estimator run in netlab
as it runs in AlphaRTC?

It loads the plugin as a receiver does (its folder as the working directory
and first on ``sys.path``; the load timed), replays a recorded call through
it as AlphaRTC drives it (:mod:`endpoints.rtc.plugin_replay`; by default the
bundled 2 Mbit/s, 20 ms netlab call, or ``--packets`` from
``receiver_app --record``), prints its estimates over time and the latency
of its calls, and flags answers that are not ints in bps. Exit 0 when it ran
(flags are warnings), 1 when it failed to load, raised or answered with
something that is not a bitrate (its own traceback is printed).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from netlab.errors import NetlabError

NAME = "plugin"
HELP = "Check an OpenNetLab/AlphaRTC estimator plugin against a recorded call."

#: How netlab's RTC call differs from AlphaRTC's, as far as a plugin can tell.
DIFFERENCES = (
    "media is netlab's synthetic encoder (frame sizes follow the target), not a real "
    "VP8/Opus encoder: the same estimate gives a similar, not identical, rate",
    "video payload type 96, audio 111 (what browsers negotiate for VP8/Opus); OpenNetLab's "
    "gym uses 126 and 103 (webrtc's test call), so a plugin that counts only "
    "payload_type 126 sees no video here",
    "the estimate goes back in REMB, not AlphaRTC's RTCP APP 'rate' packet; the sender "
    "uses it the same way (target = estimate, pacing 2.5x, no padding)",
)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="replay a recorded call through a plugin",
                           description="Replay a recorded call through a plugin.")
    check.add_argument("plugin", type=Path, metavar="PLUGIN",
                       help="the plugin's BandwidthEstimator.py")
    check.add_argument("--packets", type=Path, default=None, metavar="FILE",
                       help="a recording from receiver_app --record (default: a bundled "
                            "2 Mbit/s, 20 ms netlab call)")
    check.add_argument("--poll-interval", type=float, default=0.2, metavar="S",
                       help="seconds between polls, AlphaRTC's bwe_feedback_duration (0.2)")
    check.add_argument("--budget", type=float, default=None, metavar="S",
                       help="seconds a call may take before it is counted as over budget "
                            "(default: the receiver's)")
    check.add_argument("--every", type=float, default=1.0, metavar="S",
                       help="print one estimate per this many seconds of the call (1)")


def _fail(exc: Exception) -> NetlabError:
    from endpoints.rtc.errors import PluginError
    from endpoints.rtc.estimators import plugin_traceback

    if isinstance(exc, PluginError):
        detail = plugin_traceback(exc)
        if detail:
            print(detail, file=sys.stderr, end="")
    what = getattr(exc, "what", str(exc))
    return NetlabError(what, where=getattr(exc, "where", None), fix=getattr(exc, "fix", None))


def _mbit(value: object) -> str:
    from endpoints.rtc.plugin_replay import as_number

    number = as_number(value)
    return "not a number" if number is None else f"{number / 1e6:8.3f} Mbit/s"


def run(args: argparse.Namespace) -> int:
    from endpoints.rtc.errors import RtcError
    from endpoints.rtc.estimators import DEFAULT_CALL_BUDGET_S, check_estimate, load_plugin
    from endpoints.rtc.plugin_replay import bundled_recording, replay
    from endpoints.rtc.recording import read_recording

    packets = (args.packets or bundled_recording()).resolve()
    plugin_path = args.plugin.expanduser().resolve()
    budget = args.budget if args.budget is not None else DEFAULT_CALL_BUDGET_S
    cwd = os.getcwd()
    try:
        estimator = load_plugin(plugin_path, budget_s=budget, stay_in_folder=True)
        print(f"loaded {plugin_path} in {estimator.load_s:.3f} s")
        print(f"replaying {packets.name} (poll every {args.poll_interval:g} s)")
        result = replay(estimator, read_recording(packets), poll_interval_s=args.poll_interval)
        for answer in result.answers:
            check_estimate(answer.value, plugin_path)  # not a bitrate: fails here
    except RtcError as exc:
        raise _fail(exc) from None
    finally:
        os.chdir(cwd)
    print(f"{'t (s)':>7}  {'estimate':>15}  {'packets':>8}")
    next_t = 0.0
    for answer in result.answers:
        if answer.t_s >= next_t:
            print(f"{answer.t_s:7.2f}  {_mbit(answer.value):>15}  {answer.packets:8d}")
            next_t = answer.t_s + args.every
    summary = estimator.summary()
    print(f"{result.packets} packets over {result.duration_s:.1f} s, {len(result.answers)} "
          "estimates")
    for method in ("report_states", "get_estimated_bandwidth"):
        times = summary[method]
        print(f"{method:>24}: p50 {times['p50_us']:.0f} µs, p99 {times['p99_us']:.0f} µs, "
              f"max {times['max_us']:.0f} µs; {times['over_budget']} of {times['calls']} "
              f"over {times['budget_ms']:g} ms")
    flags = result.flags()
    for flag in flags:
        print(f"flag: {flag}")
    if not flags:
        print("ok: every answer an int in bps")
    print("netlab differs from AlphaRTC here:")
    for line in DIFFERENCES:
        print(f"  - {line}")
    return 0
