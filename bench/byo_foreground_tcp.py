"""iperf3 TCP (cubic, bbr) through a flowless lab under foreground ``netlab up``
and ``netlab up -d``: the share of a 10 Mbit/s link it gets.

    sudo python bench/byo_foreground_tcp.py

Before the lifecycle change a foreground ``up`` ran the built-in TCP link
probe beside the user's traffic and iperf3 got 0.45-0.48 of the link; now
nothing else sends, so each should get ≥ 0.95 (TCP's payload share of a
full frame is 1448/1514 = 0.956). Prints JSON: received bits/s over the
rate per congestion control and mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATE_BPS = 10_000_000
SECONDS = 10


def netlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netlab.cli.main", *args],
                          capture_output=True, text=True, check=False)


def _state(name: str) -> dict[str, object] | None:
    path = Path(os.environ.get("NETLAB_RUN_ROOT", "/run/netlab")) / name / "state.json"
    try:
        data: dict[str, object] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def _iperf(name: str, cc: str) -> float:
    state = _state(name)
    assert state is not None
    plan = state["plan"]
    assert isinstance(plan, dict)
    bob = plan["hosts"]["bob"]["interfaces"][0]["address"].split("/")[0]
    netlab("exec", name, "bob", "--", "iperf3", "-s", "-1", "-D", "-p", "5398")
    time.sleep(0.5)
    out = netlab("exec", name, "alice", "--", "iperf3", "-c", bob, "-p", "5398", "-C", cc,
                 "-t", str(SECONDS), "-O", "2", "-J")
    report = json.loads(out.stdout)
    bps: float = report["end"]["sum_received"]["bits_per_second"]
    return bps / RATE_BPS


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="byo-fg-"))
    out: dict[str, dict[str, float]] = {}
    for mode in ("foreground", "detached"):
        name = f"byofg{mode[0]}"
        scenario = work / f"{name}.yaml"
        scenario.write_text(f"name: {name}\nduration: 60s\nhosts: [alice, bob]\nlinks:\n"
                            f"  - endpoints: [alice, bob]\n    rate: {RATE_BPS // 1_000_000}Mbit\n")
        args = ["up", "-q", "--out", str(work / "runs"), str(scenario)]
        proc = None
        if mode == "foreground":
            proc = subprocess.Popen([sys.executable, "-m", "netlab.cli.main", *args],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while (_state(name) or {}).get("status") != "up" and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2.0)  # past the replayers' shared start
        else:
            netlab("up", "-d", *args[1:])
        try:
            out[mode] = {cc: round(_iperf(name, cc), 4) for cc in ("cubic", "bbr")}
        finally:
            if proc is not None:
                proc.send_signal(2)  # Ctrl-C: results, and the lab stays up
                proc.wait(timeout=60)
            netlab("down", name)
    print(json.dumps({"rate_bps": RATE_BPS, "seconds": SECONDS, "share_of_rate": out},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
