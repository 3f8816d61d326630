"""Decision round trip through the per-host agent, beside the floor, case by case.

Round trip = observation sent → action back in the flow process (applied),
timed in each flow process with CLOCK_MONOTONIC. Each flow is its own
process, as real endpoints are. In every case, in the same run:

* ``floor``: the simplest program (``bench/echo.py``): one plain Python epoll
  echo server, N client processes each sending a 60-byte request at R Hz
  (random phase) and blocking in ``recv`` for the reply;
* ``floor+forward`` (OpenNetLab model): the same echo server answering each
  request with a bare numpy forward pass of the model (``bench/echo.py
  --weights``): the simplest program that does the agent's whole job, so the
  floor for a target that a forward pass must fit in;
* ``agent``: ``python -m netlab.agent`` serving the model to N flow processes
  that decide through ``endpoints.agent_client.AgentClient.decide``, the call
  the lab's RTC receivers and TCP senders make each step (only the deadline is
  0.5 s here, so that a late reply is still timed; a miss is a round trip over
  1 ms). The agent keeps a ``--trace`` of its decisions, joined per decision
  with the flows' own times: sent → read by the agent (its wake-up),
  read → reply sent (decode, forward pass, encode), reply sent → applied in
  the flow (the flow's wake-up).

Both sides pace alike (sleep to the next step, first second not timed). The
agent's flows wait for each reply at the decision-wait rung where they may
(``labcore.priority.DecisionWait``, as in a lab); the floor's clients stay at
normal priority, the fastest here on an idle machine (raising each round trip
to that rung, ``bench/echo.py --client-fifo 30``, made the idle echo floor
slower: p50 76 against 20 µs). Printed
per case: agent and floor p50/p99, their ratios, misses over 1 ms, the parts,
the servers' CPU (% of one core) and the 1-minute load average (other work on
the machine moves every figure: take them on an idle machine), and the
issue's targets (#14) where the case has one. Models: ``opennetlab``
(models/opennetlab-pretrained.pth, 22 k parameters) or ``mvfst-sized`` (a
TorchScript model of mvfst-rl's shape: 221 inputs, two 1024-unit ReLU layers,
LSTMCell 1025→256, 5 actions and a baseline), with its decisions split hot and
cold (the agent made none in the 20 ms before).

    .venv/bin/python bench/agent.py [--cases 1x50,8x50,32x50,1x5,8x5] [--seconds 12]
        [--model opennetlab|mvfst-sized] [--device cpu|cuda] [--agent-args '...']
        [--client-spin 0.0004] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BENCH = Path(__file__).resolve().parent
ONL = REPO / "models" / "opennetlab-pretrained.pth"
ECHO = BENCH / "echo.py"
DEADLINE_US = 1000.0
COLD_GAP_NS = 20_000_000  # netlab.agent.schedule.LONG_IDLE_NS
DEFAULT_CASES = {"opennetlab": "1x50,8x50,32x50,1x5,8x5", "mvfst-sized": "1x10,8x10,32x10"}
MODELS = {"opennetlab": (4, "rtc-onl4"), "mvfst-sized": (221, "mvfst-221")}
START_LEAD_S = 1.5  # flows connect, then all start at once


# ---- the agent's flows ----------------------------------------------------------------


def flow_worker(target: str, rate: float, seconds: float, start_ns: int, warm_s: float,
                obs_size: int, contract: str, seed: int, spin_s: float | None, out: str) -> None:
    """One flow: ``AgentClient.decide`` at ``rate`` Hz, paced as ``bench/echo.py``'s client."""
    import random

    from endpoints.agent_client import DEFAULT_SPIN_S, AgentClient

    rng = np.random.default_rng(seed)
    obs = rng.uniform(0, 1, obs_size).astype(np.float32)
    if obs_size == 4:
        obs = np.array([1.2e6, 25.0, 0.01, 1.0e6], dtype=np.float32)
    client = AgentClient(target, policy=contract, obs_size=obs_size, action_size=1,
                         deadline_s=0.5, spin_s=DEFAULT_SPIN_S if spin_s is None else spin_s)
    client.decide(obs, wait_s=30)  # connected and served once before the clock starts
    period_ns = int(1e9 / rate)
    due = start_ns + int(random.Random(seed).uniform(0, period_ns))
    end = start_ns + int(seconds * 1e9)
    timed_from = start_ns + int(warm_s * 1e9)
    latencies: list[float] = []
    rows: list[tuple[int, int]] = []
    cpu_from: float | None = None
    spin_from = 0.0
    while due < end:
        now = time.monotonic_ns()
        if now < due:
            time.sleep((due - now) / 1e9)
        if cpu_from is None and due >= timed_from:
            cpu_from, spin_from = time.process_time(), client.stats.spin_s
        sent = time.monotonic_ns()
        decision = client.decide(obs)
        if sent >= timed_from and decision.latency_us is not None:
            latencies.append(decision.latency_us)
            rows.append((decision.seq, decision.applied_ns))
        due += period_ns
    cpu_s = time.process_time() - (cpu_from or time.process_time())
    Path(out).write_text(json.dumps({"latency_us": latencies, "rows": rows, "cpu_s": cpu_s,
                                     "spin_s": client.stats.spin_s - spin_from,
                                     "misses": client.stats.misses, "flow": client.flow}))
    client.close()


# ---- servers ----------------------------------------------------------------------------


def mvfst_sized_model(path: Path) -> None:
    import torch
    from torch import nn

    class MvfstSized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Sequential(nn.Linear(221, 1024), nn.ReLU(), nn.Linear(1024, 1024),
                                    nn.ReLU())
            self.core = nn.LSTMCell(1025, 256)
            self.policy = nn.Linear(256, 5)
            self.baseline = nn.Linear(256, 1)
            self.hidden_size = 256

        def forward(self, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
            x = torch.cat([self.fc(obs), obs[:, -1:]], dim=1)  # last input: the reward
            h, c = self.core(x, (h, c))
            return self.policy(h), self.baseline(h), h, c

    torch.manual_seed(0)
    meta = {"contract": "mvfst-221", "action": {"type": "discrete", "values": [0, 1, 2, 3, 4]},
            "metadata": {"shape": "mvfst-rl sized", "step_ms": 100}}
    torch.jit.save(torch.jit.script(MvfstSized()), str(path),
                   _extra_files={"netlab.json": json.dumps(meta)})


def wait_socket(path: str, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            probe.connect(path)
            return
        except OSError:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"server exited: {err[-800:]}") from None
            time.sleep(0.05)
        finally:
            probe.close()
    raise RuntimeError("server did not come up")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc (clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pcts(values: list[float] | np.ndarray[Any, Any]) -> dict[str, float | None]:
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return {"p50": None, "p99": None, "p999": None}
    p50, p99, p999 = np.percentile(data, [50, 99, 99.9])
    return {"p50": round(float(p50), 1), "p99": round(float(p99), 1),
            "p999": round(float(p999), 1)}


# ---- one side of a case -----------------------------------------------------------------


def save_forward_layers(checkpoint: Path, out: Path) -> None:
    """The chain the agent runs for ``checkpoint`` (actor and critic fused, see
    ``netlab.agent.policies.numpy_mlp``), for ``bench/echo.py --weights``."""
    from netlab.agent.checkpoints import load_policy
    from netlab.agent.policies.spec import SpecPolicy

    policy = load_policy(checkpoint)
    assert isinstance(policy, SpecPolicy) and policy.numpy_forward is not None
    forward = policy.numpy_forward
    assert forward.fused is not None
    arrays: dict[str, Any] = {"n": np.array(len(forward.fused)),
                              "output": np.array(forward.output)}
    for i, (weight, bias, activation) in enumerate(forward.fused):
        arrays |= {f"w{i}": weight, f"b{i}": bias, f"f{i}": np.array(activation)}
    np.savez(out, **arrays)


def run_side(server_argv: list[str], target: str, client_argv: list[list[str]],
             seconds: float, warm_s: float) -> tuple[list[dict[str, Any]], float, float]:
    """Start the server, the clients (each told the common start), wait; the clients'
    results, the server's CPU share over the timed stretch and the load average."""
    server = subprocess.Popen(server_argv, cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        wait_socket(target, server)
        start_ns = time.monotonic_ns() + int((START_LEAD_S + 0.05 * len(client_argv)) * 1e9)
        outs = [argv[-1] for argv in client_argv]
        procs = [subprocess.Popen([*argv[:-1], str(start_ns), argv[-1]], cwd=REPO)
                 for argv in client_argv]
        time.sleep(max(0.0, (start_ns - time.monotonic_ns()) / 1e9 + warm_s))
        cpu_from, t_from = cpu_seconds(server.pid), time.monotonic()
        time.sleep(max(0.1, seconds - warm_s - 0.2))
        server_cpu = (cpu_seconds(server.pid) - cpu_from) / (time.monotonic() - t_from)
        load = os.getloadavg()[0]
        for proc in procs:
            if proc.wait(timeout=seconds + 180) != 0:
                raise RuntimeError(f"a client failed: {proc.args!r}")
    finally:
        stop_server(server)
    return [json.loads(Path(out).read_text()) for out in outs], server_cpu, load


def parts(flows: list[dict[str, Any]], stats: Path) -> dict[str, Any]:
    """Join each flow's (seq, applied) with the agent's (sent, read, replied)."""
    if not stats.exists():
        return {}
    snap = json.loads(stats.read_text())
    trace = snap.get("trace", {}).get("rows", [])
    replies = sorted(row[4] for row in trace)
    agent = {(row[0], row[1]): row[2:] for row in trace}
    legs: dict[str, list[float]] = {"sent_to_read": [], "read_to_reply": [],
                                    "reply_to_applied": [], "hot_read_to_reply": [],
                                    "cold_read_to_reply": []}
    for flow in flows:
        for seq, applied in flow["rows"]:
            row = agent.get((flow["flow"], seq))
            if row is None:
                continue
            sent, read, replied = row
            legs["sent_to_read"].append((read - sent) / 1e3)
            legs["read_to_reply"].append((replied - read) / 1e3)
            legs["reply_to_applied"].append((applied - replied) / 1e3)
            before = int(np.searchsorted(replies, read)) - 1  # the agent's previous reply
            cold = before < 0 or read - replies[before] >= COLD_GAP_NS
            legs["cold_read_to_reply" if cold else "hot_read_to_reply"].append(
                (replied - read) / 1e3)
    out: dict[str, Any] = {k: pcts(v) for k, v in legs.items()}
    out["cold_share"] = round(len(legs["cold_read_to_reply"]) /
                              max(1, len(legs["read_to_reply"])), 3)
    out["agent"] = {k: snap.get(k) for k in ("decisions", "batches", "max_batch", "warmups",
                                             "spins", "spin_hits", "timed_wakes", "device")}
    out["agent"]["polling"] = snap.get("polling")
    return out


def summary(flows: list[dict[str, Any]], server_cpu: float, load: float,
            seconds: float) -> dict[str, Any]:
    samples = np.array([x for f in flows for x in f["latency_us"]])
    return {"decisions": int(samples.size), **pcts(samples),
            "misses_over_1ms": int((samples > DEADLINE_US).sum()),
            "server_cpu_pct": round(100 * server_cpu, 1),
            "client_cpu_pct_per_flow": round(100 * float(np.mean([f["cpu_s"] for f in flows]))
                                             / seconds, 2),
            "loadavg_1min": round(load, 2)}


def targets(model: str, flows: int, rate: float, agent: dict[str, Any],
            floor: dict[str, Any], device: str) -> list[tuple[str, bool]]:
    """Issue #14's targets for this case, if it has any: (what, met)."""
    p50, p99, misses = agent["p50"], agent["p99"], agent["misses_over_1ms"]
    if p50 is None or p99 is None:
        return []
    if model == "mvfst-sized":
        return [("p99 ≤ 1 ms on a GPU", p99 <= 1000)] if device == "cuda" else []
    if rate == 50 and flows == 8:
        return [("p99 ≤ 250 µs", p99 <= 250), ("no miss", misses == 0),
                ("p50 ≤ 3× floor", floor["p50"] is not None and p50 <= 3 * floor["p50"]),
                ("≥ 8000 decisions", agent["decisions"] >= 8000)]
    if rate == 50 and flows == 32:
        return [("p99 ≤ 500 µs", p99 <= 500)]
    if rate == 5:
        return [("no miss", misses == 0),
                ("p99 ≤ 2× floor", floor["p99"] is not None and p99 <= 2 * floor["p99"])]
    return []


def run_case(model: str, checkpoint: Path, flows: int, rate: float, args: argparse.Namespace,
             workdir: Path) -> dict[str, Any]:
    name = f"{flows}x{rate:g}"
    obs_size, contract = MODELS[model]
    seconds, warm_s = args.seconds, args.warm
    echo_sock = str(workdir / f"echo-{name}.sock")
    # run_side puts the common start time before each client's last argument
    floor_clients = [[sys.executable, str(ECHO), "--client", echo_sock, str(rate),
                      str(seconds), str(warm_s), str(i), str(workdir / f"floor-{name}-{i}.json")]
                     for i in range(flows)]
    floor_flows, floor_cpu, floor_load = run_side(
        [sys.executable, str(ECHO), "--server", echo_sock], echo_sock, floor_clients, seconds,
        warm_s)
    floor = summary(floor_flows, floor_cpu, floor_load, seconds - warm_s)
    forward_floor = None
    if model == "opennetlab":
        weights = workdir / "onl-layers.npz"
        if not weights.exists():
            save_forward_layers(checkpoint, weights)
        forward_sock = str(workdir / f"forward-{name}.sock")
        forward_clients = [[forward_sock if arg == echo_sock else arg for arg in argv[:-1]]
                           + [str(workdir / f"forward-{name}-{i}.json")]
                           for i, argv in enumerate(floor_clients)]
        forward_flows, forward_cpu, forward_load = run_side(
            [sys.executable, str(ECHO), "--server", forward_sock, "--weights", str(weights)],
            forward_sock, forward_clients, seconds, warm_s)
        forward_floor = summary(forward_flows, forward_cpu, forward_load, seconds - warm_s)

    agent_sock = str(workdir / f"agent-{name}.sock")
    stats = workdir / f"stats-{name}.json"
    server = [sys.executable, "-m", "netlab.agent", "--socket", agent_sock, "--checkpoint",
              str(checkpoint), "--device", args.device, "--stats-out", str(stats),
              "--trace", "1000000", *shlex.split(args.agent_args)]
    spin = "default" if args.client_spin is None else str(args.client_spin)
    agent_clients = [[sys.executable, __file__, "--flow", agent_sock, str(rate), str(seconds),
                      str(warm_s), str(obs_size), contract, str(i), spin,
                      str(workdir / f"agent-{name}-{i}.json")] for i in range(flows)]
    agent_flows, agent_cpu, agent_load = run_side(server, agent_sock, agent_clients, seconds,
                                                  warm_s)
    agent = summary(agent_flows, agent_cpu, agent_load, seconds - warm_s)
    result: dict[str, Any] = {"model": model, "case": name, "flows": flows, "rate_hz": rate,
                              "floor": floor, "floor_forward": forward_floor, "agent": agent,
                              "parts": parts(agent_flows, stats)}
    for q in ("p50", "p99"):
        a, f = agent[q], floor[q]
        result[f"ratio_{q}"] = round(a / f, 2) if a is not None and f else None
        ff = forward_floor[q] if forward_floor else None
        result[f"ratio_forward_{q}"] = round(a / ff, 2) if a is not None and ff else None
    device = (result["parts"].get("agent") or {}).get("device") or {}
    result["device"] = device
    result["targets"] = [{"what": w, "met": ok} for w, ok in
                         targets(model, flows, rate, agent, floor, device.get("used", "cpu"))]
    if forward_floor is not None:
        # the same targets for the simplest program doing the job: one it misses too
        # is beyond this machine, not the agent (issue #14, "Honest limits")
        floor_targets = dict(targets(model, flows, rate, forward_floor, floor, "cpu"))
        for target in result["targets"]:
            target["floor_forward_met"] = floor_targets.get(target["what"])
    return result


def show(result: dict[str, Any]) -> None:
    f, a, p = result["floor"], result["agent"], result["parts"]
    print(f"case {result['model']} {result['case']} Hz: floor n={f['decisions']} "
          f"p50 {f['p50']} p99 {f['p99']} µs >1ms {f['misses_over_1ms']} | agent "
          f"n={a['decisions']} p50 {a['p50']} p99 {a['p99']} µs >1ms {a['misses_over_1ms']} | "
          f"agent/floor p50 {result['ratio_p50']}× p99 {result['ratio_p99']}×", flush=True)
    ff = result.get("floor_forward")
    if ff:
        print(f"    floor+forward n={ff['decisions']} p50 {ff['p50']} p99 {ff['p99']} µs >1ms "
              f"{ff['misses_over_1ms']} | agent/(floor+forward) p50 "
              f"{result['ratio_forward_p50']}× p99 {result['ratio_forward_p99']}×", flush=True)
    if p:
        legs = "  ".join(f"{k} {p[k]['p50']}/{p[k]['p99']}" for k in
                         ("sent_to_read", "read_to_reply", "reply_to_applied"))
        print(f"    parts p50/p99 µs: {legs}  (cold {p['cold_share']:.0%}: read_to_reply "
              f"hot {p['hot_read_to_reply']['p50']}/{p['hot_read_to_reply']['p99']} cold "
              f"{p['cold_read_to_reply']['p50']}/{p['cold_read_to_reply']['p99']})", flush=True)
    print(f"    cpu: floor server {f['server_cpu_pct']}%, agent {a['server_cpu_pct']}%, agent "
          f"flows {a['client_cpu_pct_per_flow']}%/flow; load {a['loadavg_1min']}; device "
          f"{result['device'].get('used')}" + (f" ({result['device']['note']})"
                                              if result["device"].get("note") else ""),
          flush=True)
    if result["targets"]:
        print("    targets: " + "; ".join(
            f"{t['what']} {'met' if t['met'] else 'NOT met'}" + (
                "" if t.get("floor_forward_met") is None else
                f" (floor+forward: {'met' if t['floor_forward_met'] else 'NOT met'})")
            for t in result["targets"]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="opennetlab")
    parser.add_argument("--cases", default=None,
                        help="FLOWSxHZ,... (default: opennetlab "
                             f"{DEFAULT_CASES['opennetlab']}; mvfst-sized "
                             f"{DEFAULT_CASES['mvfst-sized']})")
    parser.add_argument("--seconds", type=float, default=12.0, help="per side of a case")
    parser.add_argument("--warm", type=float, default=1.0, help="untimed start of each side")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--agent-args", default="",
                        help="extra arguments for python -m netlab.agent, e.g. "
                             "'--warm off' or '--poll-budget 0.2'")
    parser.add_argument("--client-spin", type=float, default=None,
                        help="AgentClient spin_s in seconds (default: the client's default)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--flow", nargs=10, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flow:
        target, rate, seconds, warm_s, obs_size, contract, seed, spin, start, out = args.flow
        flow_worker(target, float(rate), float(seconds), int(start), float(warm_s),
                    int(obs_size), contract, int(seed), None if spin == "default" else
                    float(spin), out)
        return
    cases = [(int(n), float(r)) for n, r in
             (c.split("x") for c in (args.cases or DEFAULT_CASES[args.model]).split(","))]
    results = []
    with tempfile.TemporaryDirectory(prefix="nltA-bench-agent-") as tmp:
        workdir = Path(tmp)
        checkpoint = ONL
        if args.model == "mvfst-sized":
            checkpoint = workdir / "mvfst_sized.pt"
            mvfst_sized_model(checkpoint)
        for flows, rate in cases:
            result = run_case(args.model, checkpoint, flows, rate, args, workdir)
            results.append(result)
            show(result)
    if args.json:
        args.json.write_text(json.dumps({"cpus": os.cpu_count(), "args": vars(args),
                                         "results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
