"""Time to bring labs up and down: netlab (pyroute2, in-process namespaces)
side by side with a shell script making the same objects with `ip`/`tc`.

Run as root:  .venv/bin/python bench/lifecycle.py [--repeat 3]
Prints, per lab size, the median up and down times and netlab/script ratios.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netlab.lab import lifecycle
from netlab.lab.plan import LabPlan, plan_lab
from netlab.lab.shaping import describe_shaping
from netlab.preflight import KernelCapabilities, probe_kernel
from netlab.scenario.model import Direction, Host, Link, Scenario
from shaping.spec import LinkShape

SUBNET = ipaddress.IPv4Network("10.213.0.0/16")
BOTTLENECK = LinkShape(rate_bps=20_000_000)


def dumbbell(name: str, hosts: int) -> Scenario:
    """``hosts`` in all: two routers and (hosts-2)/2 senders and receivers;
    2 hosts is a plain pair joined by the shaped link."""
    shaped = Direction(BOTTLENECK)
    plain = Direction(LinkShape())
    if hosts == 2:
        return Scenario(name, 1.0, 1, (Host("alice"), Host("bob")),
                        (Link("alice-bob", "alice", "bob", shaped, shaped),))
    pairs = (hosts - 2) // 2
    senders = [f"s{i}" for i in range(pairs)]
    receivers = [f"r{i}" for i in range(pairs)]
    links = [Link(f"{s}-left", s, "left", plain, plain) for s in senders]
    links.append(Link("left-right", "left", "right", shaped, shaped))
    links += [Link(f"right-{r}", "right", r, plain, plain) for r in receivers]
    names = [*senders, "left", "right", *receivers]
    return Scenario(name, 1.0, 1, tuple(Host(h) for h in names), tuple(links))


def shell_script(plan: LabPlan, caps: KernelCapabilities) -> tuple[str, str]:
    """The same objects as netlab's plan, one `ip`/`tc` command each: exactly
    what `netlab up --dry-run` prints (less the deletes of absent qdiscs)."""
    commands = plan.describe() + describe_shaping(plan, "kernel", caps)
    up = ["set -e", *(c for c in commands if " qdisc delete " not in c)]
    down = [f"ip netns del {h.namespace}" for h in plan.hosts.values()]
    return "\n".join(up) + "\n", "\n".join(down) + "\n"


def time_script(text: str) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as handle:
        handle.write(text)
    try:
        start = time.perf_counter()
        subprocess.run(["bash", handle.name], check=True)
        return time.perf_counter() - start
    finally:
        os.unlink(handle.name)


def wait_namespaces_gone(plan: LabPlan) -> None:
    while any(Path("/run/netns", h.namespace).exists() for h in plan.hosts.values()):
        time.sleep(0.001)


def measure(hosts: int, repeat: int) -> dict[str, float]:
    ours_up: list[float] = []
    ours_down: list[float] = []
    ip_up: list[float] = []
    ip_down: list[float] = []
    for round_ in range(repeat):
        scenario = dumbbell(f"bl{hosts}n{round_}", hosts)
        start = time.perf_counter()
        lab = lifecycle.up(scenario, subnet=SUBNET)
        ours_up.append(time.perf_counter() - start)
        start = time.perf_counter()
        lab.down()
        ours_down.append(time.perf_counter() - start)

        plan = plan_lab(dumbbell(f"bs{hosts}n{round_}", hosts), SUBNET)
        script_up, script_down = shell_script(plan, probe_kernel())
        ip_up.append(time_script(script_up))
        ip_down.append(time_script(script_down))
        wait_namespaces_gone(plan)
    return {
        "netlab_up": statistics.median(ours_up), "netlab_down": statistics.median(ours_down),
        "ip_up": statistics.median(ip_up), "ip_down": statistics.median(ip_down),
    }


def cli_up_time(repeat: int) -> float:
    """Wall time of `netlab up -d` for a 2-host scenario file, Python start included."""
    times = []
    netlab = Path(sys.executable).with_name("netlab")
    for round_ in range(repeat):
        name = f"blcli{round_}"
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
            handle.write(f"name: {name}\nduration: 1s\nhosts: [alice, bob]\n"
                         "links:\n  - endpoints: [alice, bob]\n    rate: 20Mbit\n")
        try:
            start = time.perf_counter()
            subprocess.run([str(netlab), "up", "-d", "-q", "--subnet", str(SUBNET),
                            handle.name], check=True)
            times.append(time.perf_counter() - start)
            subprocess.run([str(netlab), "down", name], check=True, capture_output=True)
        finally:
            os.unlink(handle.name)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="2,10,50")
    args = parser.parse_args()
    os.environ.setdefault("NETLAB_RUN_ROOT", tempfile.mkdtemp(prefix="netlab-bench-"))
    probe_kernel()  # cached for the process, as in any later `up`
    print(f"{'hosts':>5} {'netlab up':>10} {'ip up':>9} {'ratio':>6} "
          f"{'netlab down':>12} {'ip down':>9} {'ratio':>6}")
    for hosts in (int(s) for s in args.sizes.split(",")):
        r = measure(hosts, args.repeat)
        print(f"{hosts:>5} {r['netlab_up']:>9.3f}s {r['ip_up']:>8.3f}s "
              f"{r['netlab_up'] / r['ip_up']:>6.2f} {r['netlab_down']:>11.3f}s "
              f"{r['ip_down']:>8.3f}s {r['netlab_down'] / r['ip_down']:>6.2f}")
    print(f"netlab up -d (CLI, 2 hosts, Python start-up included): {cli_up_time(args.repeat):.3f}s")


if __name__ == "__main__":
    main()
