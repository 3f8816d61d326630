"""The replayer process: namespace, priority, shaper, loop (``python -m shaping.replay``)."""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import time
from types import FrameType

from labcore import netns
from labcore.priority import SHAPING, raise_priority
from labcore.startgate import read_start
from shaping.replay.log import ReplayLogWriter
from shaping.replay.process import DEFAULT_LEAD_NS, ReplayerSpec
from shaping.replay.replayer import run_replay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shaping.replay")
    parser.add_argument("--spec", required=True, help="ReplayerSpec JSON file")
    args = parser.parse_args(argv)
    with open(args.spec, encoding="utf-8") as f:
        spec = ReplayerSpec.from_json(f.read())

    stopping = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    # Enter the namespace first: sockets are bound to the namespace they were
    # opened in (docs/design.md: open devices after setns()).
    if spec.namespace:
        netns.enter(spec.namespace)
    from labcore.netlink import IPRoute
    from shaping.tc import make_shaper

    priority = raise_priority(spec.priority, SHAPING, lock_memory=spec.lock_memory)
    with IPRoute() as ipr:
        shaper = make_shaper(spec.strategy, ipr, spec.ifname, netem=spec.netem)  # type: ignore[arg-type]
        shaper.apply(spec.schedule.first_shape)
        shaper.stats()  # warm pyroute2's parser before the clock starts
        gc.collect()
        gc.freeze()  # setup objects leave the collector's view: shorter pauses in the loop
        if spec.gated:  # the run's one time zero comes on stdin once every part is ready
            print(f"ready gated {priority.describe()}", flush=True)
            given = read_start(sys.stdin.fileno(), lambda: stopping)
            if given is None:
                print("done stopped applied=0 skipped=0 samples=0", flush=True)
                return 0
            start_ns = given
        else:
            start_ns = spec.start_ns if spec.start_ns is not None else (
                time.monotonic_ns() + DEFAULT_LEAD_NS)
            print(f"ready {start_ns} {priority.describe()}", flush=True)
        until_ns = None if spec.duration_s is None else start_ns + round(spec.duration_s * 1e9)
        period_ns = round(spec.schedule.period_s * 1e9)
        log = ReplayLogWriter(spec.log_path, start_ns, period_ns, spec.schedule.loop)
        try:

            outcome = run_replay(
                spec.schedule,
                shaper.change,
                log,
                start_ns=start_ns,
                sample=shaper.stats,
                sample_interval_ns=spec.sample_interval_ns,
                until_ns=until_ns,
                should_stop=lambda: stopping,
            )
        finally:
            log.close()
    print(
        f"done {outcome.reason} applied={outcome.applied} skipped={outcome.skipped} "
        f"samples={outcome.samples}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
