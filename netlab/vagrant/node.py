"""The VM side of a VM run: configure the data NICs, then run one job.

Started over SSH by the driver (``sudo /opt/netlab/venv/bin/python -m
netlab.vagrant.node setup|run JOB.json``); standard library plus ``shaping``
only, so a VM needs netlab installed ``--no-deps`` with numpy and pyroute2.

``run`` speaks a line protocol on stdin/stdout:

* node -> driver ``clock <port>``: every endpoint process has been started
  and has done its imports (:mod:`netlab.vagrant.launch`), and a UDP clock
  server is listening (see :mod:`netlab.vagrant.clock`); it answers until the
  node exits.
* driver -> node ``start <t0_ns>``: the shared start on *this VM's*
  CLOCK_MONOTONIC (the driver translated its own start with the measured
  offset).  Replayers start at t0 (same as ``start_kernel_replays``),
  receivers at t0, senders at t0 + head start + the flow's start, every
  process stops at its flow's stop or the run's end.
* node -> driver ``started``, then ``done <t_end_ns>`` when every process has ended.
* driver -> node ``exit`` (or EOF): the node stops answering the clock and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcore.jsonfile import write_text_atomic
from netlab.vagrant import clock
from shaping.fidelity import machine

STOP_GRACE_S = 3.0
PREPARE_TIMEOUT_S = 120.0


def _ip(namespace: str | None, *args: str) -> None:
    netns = ["-n", namespace] if namespace else []
    subprocess.run(["ip", *netns, *args], check=True, stdout=subprocess.DEVNULL)


def _in(namespace: str | None, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", namespace, *argv] if namespace else argv


def interface_by_mac(mac: str) -> str:
    for entry in Path("/sys/class/net").iterdir():
        try:
            if (entry / "address").read_text().strip().lower() == mac.lower():
                return entry.name
        except OSError:
            continue
    raise SystemExit(f"node: no interface has MAC {mac} (is the VM's NIC for this link attached?)")


def _single_frames(namespace: str | None, ifname: str) -> None:
    """virtio's and veth's GRO/GSO/TSO would hand the shaper 64 kB super-packets
    that a byte-limited leaf drops whole (docs/design.md, the BBR stall)."""
    subprocess.run(_in(namespace, ["ethtool", "-K", ifname, "gro", "off", "gso", "off", "tso",
                                   "off"]),
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _fresh_namespace(name: str) -> None:
    """A folded host's namespace, emptied first if an earlier setup left one (its
    NICs return to the VM's own namespace; the veths go with it)."""
    if Path(f"/run/netns/{name}").exists():
        subprocess.run(["ip", "netns", "del", name], check=True)
        time.sleep(0.2)  # the NICs come home asynchronously
    subprocess.run(["ip", "netns", "add", name], check=True)
    _ip(name, "link", "set", "lo", "up")


def _interface(entry: dict[str, Any]) -> tuple[str | None, str]:
    """(namespace, name) of one data interface as the job refers to it."""
    if entry.get("namespace") is None and entry.get("mac"):
        return None, interface_by_mac(entry["mac"])
    return entry.get("namespace"), entry["ifname"]


def setup(job: dict[str, Any]) -> dict[str, Any]:
    """Folded hosts' namespaces, NICs, veths, addresses, routes, sysctls and first
    shapes (idempotent: run again, it rebuilds the same)."""
    for name in job.get("namespaces", []):
        _fresh_namespace(name)
    names: dict[str, str] = {}
    for entry in job["interfaces"]:
        namespace = entry.get("namespace")
        if entry.get("mac"):  # a tunnel NIC: found by MAC where the VM booted it
            ifname = interface_by_mac(entry["mac"])
            _single_frames(None, ifname)
            if namespace:
                _ip(None, "link", "set", "dev", ifname, "down")
                _ip(None, "link", "set", "dev", ifname, "netns", namespace)
                _ip(namespace, "link", "set", "dev", ifname, "name", entry["ifname"])
                ifname = entry["ifname"]
            names[entry["mac"]] = ifname
    for veth in job.get("veths", []):
        a, b = veth["ends"]
        for end in (a, b):  # a stale end left in the VM's own namespace goes first
            if end["namespace"] is None and Path(f"/sys/class/net/{end['ifname']}").exists():
                _ip(None, "link", "del", end["ifname"])
        _ip(None, "link", "add", a["ifname"], "type", "veth", "peer", "name", b["ifname"])
        for end in (a, b):
            if end["namespace"]:
                _ip(None, "link", "set", "dev", end["ifname"], "netns", end["namespace"])
            _single_frames(end["namespace"], end["ifname"])
    for entry in job["interfaces"]:
        namespace, ifname = _interface(entry)
        subprocess.run(_in(namespace, ["ip", "addr", "flush", "dev", ifname]), check=True)
        _ip(namespace, "addr", "add", entry["address"], "dev", ifname)
        _ip(namespace, "link", "set", ifname, "up")
    for entry in job.get("sysctls", []):
        subprocess.run(_in(entry["namespace"], ["sysctl", "-q", "-w",
                                                f"{entry['key']}={entry['value']}"]), check=True)
    for route in job.get("routes", []):
        _ip(route["namespace"], "route", "replace", route["destination"], "via", route["via"])
    subprocess.run(["modprobe", "sch_netem"], check=False)
    netem = Path("/sys/module/sch_netem").exists()
    if job.get("shapes"):
        from labcore import netns as labcore_netns
        from labcore.netlink import IPRoute
        from shaping.replay.process import _shape_from_json
        from shaping.tc import make_shaper

        for entry in job["shapes"]:
            namespace, ifname = _interface(entry)
            # as the namespace lab's build: the first shape at once; a traced
            # direction's replayer changes it in place during a run
            with (labcore_netns.inside(namespace) if namespace else contextlib.nullcontext()
                  ), IPRoute() as ipr:
                shaper = make_shaper("htb", ipr, ifname, netem=netem)
                shaper.apply(_shape_from_json(entry["shape"]))
    return {"interfaces": names, "kernel": os.uname().release, "netem": netem,
            "namespaces": job.get("namespaces", [])}


@dataclass
class Managed:
    name: str
    argv: list[str]
    start_s: float
    stop_s: float
    #: a sender that reads its start instant from stdin (``--wait-start``)
    gate: bool = False
    proc: subprocess.Popen[bytes] | None = None


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def split_module_argv(argv: list[str]) -> tuple[str, str, list[str]]:
    """``python [-P] -m MODULE ARGS`` → (python, MODULE, ARGS)."""
    python, *rest = argv
    if rest[:1] == ["-P"]:
        rest = rest[1:]
    if len(rest) < 2 or rest[0] != "-m":
        raise ValueError(f"not a `python -m MODULE` command: {argv}")
    return python, rest[1], rest[2:]


def _launch(managed: Managed, go: Path, run_dir: Path, cwd: str
            ) -> tuple[subprocess.Popen[bytes], Path]:
    """``python -m MODULE ARGS`` through :mod:`netlab.vagrant.launch`: imported
    now, running from the shared start (written to ``go`` later) plus its offset.
    ``-P``: the cwd never shadows netlab's packages."""
    python, module, args = split_module_argv(managed.argv)
    out_path = run_dir / f"{managed.name}.out"
    ready = out_path.with_suffix(".ready")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "ab") as out:
        gate = ["--gate"] if managed.gate else []
        return subprocess.Popen(
            [python, "-P", "-m", "netlab.vagrant.launch", *gate, "--ready", str(ready),
             "--go", str(go), "--offset-s", repr(managed.start_s), module, *args],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=cwd, close_fds=True), ready


def _wait_line(clock_sock: socket.socket, timeout_s: float | None = None) -> str:
    """Read one stdin line while answering clock requests."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    buffer = b""
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([sys.stdin.buffer, clock_sock], [], [], left)
        if not ready:
            return ""
        if clock_sock in ready:
            clock.answer(clock_sock)
        if sys.stdin.buffer in ready:
            chunk = os.read(sys.stdin.fileno(), 1)
            if not chunk:
                return "exit"
            buffer += chunk
            if chunk == b"\n":
                return buffer.decode().strip()


def run(job: dict[str, Any]) -> int:
    from shaping.replay import start_replayer
    from shaping.replay.process import schedule_from_json

    run_dir = Path(job["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    for directory in job.get("dirs", []):
        Path(directory).mkdir(parents=True, exist_ok=True)
    clock_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    clock_sock.bind(("0.0.0.0", 0))
    duration_s = float(job["duration_s"])
    handles = []
    processes = [Managed(p["name"], p["argv"], float(p["start_s"]), float(p["stop_s"]),
                         bool(p.get("gate", False))) for p in job["processes"]]
    # the run's time zero, after the receivers' head start: traces start there, as
    # flows do (in namespaces both start at the run's zero)
    zero_s = float(job.get("zero_s", 0.0))
    go = run_dir / "start_ns"
    try:
        # every endpoint imports now, while no start is set: the VMs' CPUs are
        # busy with it, and the start is only chosen once every node is calm
        readies = []
        for managed in processes:
            managed.proc, marker = _launch(managed, go, run_dir, job.get("cwd", str(run_dir)))
            readies.append(marker)
        deadline = time.monotonic() + PREPARE_TIMEOUT_S
        while not all(r.exists() for r in readies) and time.monotonic() < deadline:
            if any(m.proc is not None and m.proc.poll() is not None for m in processes):
                _say("failed: an endpoint exited while importing (see its .out)")
                return 1
            time.sleep(0.05)
        _say(f"clock {clock_sock.getsockname()[1]}")
        line = _wait_line(clock_sock)
        if not line.startswith("start "):
            return 1
        t0_ns = int(line.split()[1])
        write_text_atomic(go, str(t0_ns))  # a launcher never reads half a number
        for replay in job["replays"]:
            log_path = run_dir / "replay" / f"{replay['link']}.{replay['direction']}.log"
            namespace, ifname = _interface(replay)
            # SCHED_FIFO on the ladder's shaping rung, memory locked: inside a one-vCPU
            # guest the endpoints must never delay a trace change
            handles.append(start_replayer(
                namespace, ifname, "htb", schedule_from_json(replay["schedule"]),
                replay["loop"], log_path, netem=bool(job.get("netem", True)),
                start_ns=t0_ns + round(zero_s * 1e9), duration_s=duration_s - zero_s,
                priority="fifo", lock_memory=True,
                sample_interval_ns=int(job.get("sample_interval_ns", 10_000_000))))
        watched = {h.pid: f"replayer {h.spec.ifname} (VM {job.get('vm', '?')})"
                   for h in handles}
        watched.update({m.proc.pid: f"{m.name.split('/')[-1]} {m.name.split('/')[1]}"
                        for m in processes if m.proc is not None})
        before = machine.snapshot(watched)
        ended: dict[int, machine.ProcessCounters] = {}  # each endpoint's counters at its stop
        _say("started")
        while (elapsed := (time.monotonic_ns() - t0_ns) / 1e9) < duration_s:
            for managed in processes:
                if elapsed >= managed.stop_s:
                    if managed.proc is not None and managed.proc.poll() is None:
                        at_stop = machine.snapshot({managed.proc.pid: watched[managed.proc.pid]})
                        ended.update({p.pid: p for p in at_stop.processes})
                    _stop(managed.proc)
            ready, _, _ = select.select([clock_sock], [], [], min(0.05, duration_s - elapsed))
            if ready:
                clock.answer(clock_sock)
        after = machine.snapshot(watched)
        alive = {p.pid for p in after.processes}
        after = dataclasses.replace(after, processes=after.processes + tuple(
            p for pid, p in ended.items() if pid not in alive))
        load = machine.machine_load(before, after)
        (run_dir / "node").mkdir(exist_ok=True)
        write_text_atomic(run_dir / "node" / f"{job.get('vm', 'vm')}.json", json.dumps({
            "vm": job.get("vm"), "machine": load.to_dict(),
            "replayers": {f"{h.spec.ifname}": h.priority for h in handles}}, indent=1))
    finally:
        for managed in processes:
            _stop(managed.proc)
        for handle in handles:
            handle.stop()
    _say(f"done {time.monotonic_ns()}")
    while _wait_line(clock_sock, timeout_s=120.0) not in ("exit", ""):
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netlab.vagrant.node")
    parser.add_argument("command", choices=("setup", "run"))
    parser.add_argument("job", type=Path)
    args = parser.parse_args(argv)
    job = json.loads(args.job.read_text())
    if args.command == "setup":
        print(json.dumps(setup(job)))
        return 0
    return run(job)


if __name__ == "__main__":
    sys.exit(main())
