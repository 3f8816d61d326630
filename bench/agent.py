"""Decision round trip through the per-host agent, against the floor and a naive design.

Round trip = observation sent → action back in the flow process (applied),
timed in each flow process with CLOCK_MONOTONIC. Each flow is its own
process, as real endpoints are. Side by side, in one run:

* ``agent``: ``python -m netlab.agent`` (one thread, SEQPACKET, batching, warm-up)
  serving the OpenNetLab checkpoint (22 k parameters) and an mvfst-rl-sized
  recurrent TorchScript model: 221 inputs, two 1024-unit ReLU layers, an
  LSTMCell over 1025 inputs (1024 + reward, as in mvfst-rl's model) with a
  256-unit state kept per flow, 5 action logits and a baseline (2.6 M
  parameters);
* ``floor``: the same socket and loop shape answering with no model (decode,
  encode an ACTION, send);
* ``naive``: HTTP/JSON to an aiohttp server per decision (one keep-alive TCP
  connection per flow) running the same OpenNetLab policy.

Rates: 50 decisions/s per flow (random phase) and flat out; 1, 8 and 32 flows
(the mvfst-sized model also 1 flow at 10 Hz). A miss is a round trip over the
1 ms deadline.

The flow processes decide through ``endpoints.agent_client.AgentClient.decide``,
the same call ``endpoints.agent_rtc`` and ``endpoints.agent_tcp`` make each
step (only the deadline is 0.5 s here, so that a late reply is still timed); the
flow's own pacing (``time.sleep`` to the next step) is the bench's. Each agent
case runs a fresh agent with ``--trace``, and the round trip is split per
decision (CLOCK_MONOTONIC, joined on flow and sequence): sent → read by the
agent, read → reply sent, reply sent → applied in the flow. Also reported: the
server's CPU (``/proc``, % of one core), each flow's CPU and polling time, and
the 1-minute load average (other work on the machine moves these figures).

    .venv/bin/python bench/agent.py [--seconds 8] [--flat-seconds 3] [--json out.json]
        [--only opennetlab,mvfst-sized] [--flows 8] [--rates 50]
        [--agent-args '--poll-budget 0 --warm periodic'] [--client-spin 0]

The last two reproduce the design before polling (sleep in epoll, periodic
warm-up; the client sleeps in ``select`` at once).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import selectors
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
ONL = REPO.parent / "shared" / "external" / "opennetlab" / "pretrained_model.pth"
DEADLINE_US = 1000.0


# ---- servers ----------------------------------------------------------------------------


def echo_server(path: str) -> None:
    """The floor: same socket type, same one-thread epoll loop, no model."""
    from endpoints import agent_protocol as proto

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(128)
    listener.setblocking(False)
    selector = selectors.EpollSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        for key, _ in selector.select(0.2):
            if key.data is None:
                conn, _ = listener.accept()
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ, conn)
                continue
            conn = key.data
            while True:
                try:
                    data = conn.recv(proto.MAX_FRAME + 1)
                except BlockingIOError:
                    break
                if not data:
                    selector.unregister(conn)
                    conn.close()
                    break
                frame = proto.decode(data)
                if frame.kind is proto.Kind.HELLO:
                    conn.send(proto.encode(proto.Kind.HELLO_OK, frame.flow, 0, frame.t_ns,
                                           frame.vector))
                elif frame.kind is proto.Kind.OBSERVE:
                    conn.send(proto.encode(proto.Kind.ACTION, frame.flow, frame.seq,
                                           frame.t_ns, frame.vector[:1]))
    os.unlink(path)


def naive_server(port: int, checkpoint: str) -> None:
    """The naive design: one HTTP/JSON request per decision to an aiohttp server."""
    import torch
    from aiohttp import web

    from netlab.agent.checkpoints import load_policy

    torch.set_num_threads(1)
    policy = load_policy(checkpoint)

    async def decide(request: web.Request) -> web.Response:
        body = await request.json()
        obs = np.asarray(body["observation"], dtype=np.float32).reshape(1, -1)
        out = policy.act(obs, [None], explore=False)
        return web.json_response({"action": out.actions[0].tolist()})

    app = web.Application()
    app.router.add_post("/decide", decide)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# ---- flow workers -----------------------------------------------------------------------


def flow_worker(kind: str, target: str, rate: float, seconds: float, obs_size: int,
                contract: str, out: str, seed: int, spin_s: float) -> None:
    rng = np.random.default_rng(seed)
    obs = rng.uniform(0, 1, obs_size).astype(np.float32)
    if obs_size == 4:
        obs = np.array([1.2e6, 25.0, 0.01, 1.0e6], dtype=np.float32)
    latencies: list[float] = []
    rows: list[tuple[int, int]] = []  # (seq, applied_ns) of the timed decisions
    period = 1.0 / rate if rate > 0 else 0.0
    client = None
    if kind == "naive":
        conn = http.client.HTTPConnection("127.0.0.1", int(target), timeout=10)
        body = json.dumps({"observation": obs.tolist()})

        def once() -> float | None:
            t0 = time.monotonic_ns()
            conn.request("POST", "/decide", body=body,
                         headers={"Content-Type": "application/json"})
            json.loads(conn.getresponse().read())
            return (time.monotonic_ns() - t0) / 1e3
    else:
        # The endpoints' own client code path (endpoints.agent_rtc / agent_tcp call
        # AgentClient.decide once per step); only its deadline is longer here, so that
        # a late reply is still timed rather than dropped.
        from endpoints.agent_client import AgentClient

        client = AgentClient(target, policy=contract, obs_size=obs_size,
                             action_size=1, deadline_s=0.5, spin_s=spin_s)
        client.decide(obs, wait_s=5)

        def once() -> float | None:
            assert client is not None
            decision = client.decide(obs)
            if decision.latency_us is not None and time.monotonic() > warm_until:
                rows.append((decision.seq, decision.applied_ns))
            return decision.latency_us
    start = time.monotonic() + (rng.uniform(0, period) if period else 0.0)
    end = start + seconds
    next_t = start
    warm_until = start + min(1.0, seconds / 4)  # first second: connection and caches settle
    cpu_from: float | None = None
    spin_from = 0.0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if period and now < next_t:
            time.sleep(next_t - now)
        if cpu_from is None and time.monotonic() > warm_until:
            cpu_from = time.process_time()
            spin_from = client.stats.spin_s if client is not None else 0.0
        latency = once()
        if latency is not None and time.monotonic() > warm_until:
            latencies.append(latency)
        next_t += period
    cpu_s = time.process_time() - (cpu_from or 0.0)
    spin_s = (client.stats.spin_s - spin_from) if client is not None and cpu_from else 0.0
    Path(out).write_text(json.dumps({"latency_us": latencies, "rows": rows, "cpu_s": cpu_s,
                                     "spin_s": spin_s,
                                     "flow": client.flow if client is not None else 0}))


# ---- orchestration ----------------------------------------------------------------------


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
    meta = {"contract": "mvfst-221", "action": {"type": "discrete",
                                                "values": [0, 1, 2, 3, 4]},
            "metadata": {"shape": "mvfst-rl sized"}}
    torch.jit.save(torch.jit.script(MvfstSized()), str(path),
                   _extra_files={"netlab.json": json.dumps(meta)})


def wait_socket(path: str, kind: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        probe = socket.socket(socket.AF_UNIX if kind else socket.AF_INET, socket.SOCK_SEQPACKET
                              if kind else socket.SOCK_STREAM)
        try:
            probe.connect(path if kind else ("127.0.0.1", int(path)))
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("server exited") from None
            time.sleep(0.05)
        finally:
            probe.close()
    raise RuntimeError("server did not come up")


def start_server(kind: str, workdir: Path, checkpoint: str | None,
                 agent_args: list[str] | None = None, stats: Path | None = None,
                 ) -> tuple[subprocess.Popen[bytes], str]:
    if kind == "agent":
        target = str(workdir / "agent.sock")
        argv = [sys.executable, "-m", "netlab.agent", "--socket", target, "--checkpoint",
                str(checkpoint), *(agent_args or [])]
        if stats is not None:
            argv += ["--stats-out", str(stats), "--trace", "1000000"]
    elif kind == "floor":
        target = str(workdir / "echo.sock")
        argv = [sys.executable, __file__, "--echo-server", target]
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            target = str(s.getsockname()[1])
        argv = [sys.executable, __file__, "--naive-server", target, str(checkpoint)]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_socket(target, kind != "naive", proc)
    return proc, target


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc (clock ticks, 10 ms here)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pcts(values: list[float]) -> list[float]:
    if not values:
        return []
    return [round(float(x), 1) for x in np.percentile(values, [50, 99, 99.9])]


def breakdown(flows: list[dict[str, Any]], stats: Path) -> dict[str, list[float]]:
    """Join the client's (seq, applied) with the agent's (sent, read, replied) per
    decision: where the round trip went, p50/p99/p99.9 µs per leg."""
    if not stats.exists():
        return {}
    trace = json.loads(stats.read_text()).get("trace", {}).get("rows", [])
    agent = {(row[0], row[1]): row[2:] for row in trace}
    to_agent, in_agent, to_client = [], [], []
    for flow in flows:
        for seq, applied in flow["rows"]:
            row = agent.get((flow["flow"], seq))
            if row is None:
                continue
            sent, read, replied = row
            to_agent.append((read - sent) / 1e3)
            in_agent.append((replied - read) / 1e3)
            to_client.append((applied - replied) / 1e3)
    return {"sent_to_read_us": _pcts(to_agent), "read_to_reply_us": _pcts(in_agent),
            "reply_to_applied_us": _pcts(to_client)}


def run_case(kind: str, target: str, flows: int, rate: float, seconds: float, obs_size: int,
             contract: str, workdir: Path, server_pid: int, spin_s: float
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    procs, outs = [], []
    for i in range(flows):
        out = workdir / f"lat-{kind}-{flows}-{rate}-{i}.json"
        outs.append(out)
        procs.append(subprocess.Popen(
            [sys.executable, __file__, "--flow", kind, target, str(rate), str(seconds),
             str(obs_size), contract, str(out), str(i), str(spin_s)], cwd=REPO))
    # the measured stretch: after the flows' first second (connection, caches)
    time.sleep(min(1.0, seconds / 4) + 0.5)
    cpu_from, t_from = cpu_seconds(server_pid), time.monotonic()
    time.sleep(max(0.0, seconds - min(1.0, seconds / 4) - 0.7))
    server_cpu = (cpu_seconds(server_pid) - cpu_from) / (time.monotonic() - t_from)
    load = os.getloadavg()[0]
    for proc in procs:
        proc.wait(timeout=seconds + 120)
    per_flow = [json.loads(out.read_text()) for out in outs]
    samples = np.array([x for flow in per_flow for x in flow["latency_us"]])
    p50, p99, p999 = (np.percentile(samples, [50, 99, 99.9]) if samples.size
                      else (np.nan,) * 3)
    measured = seconds - min(1.0, seconds / 4)
    return {"server": kind, "flows": flows, "rate_hz": rate or "flat out",
            "decisions": int(samples.size),
            "decisions_per_s": round(samples.size / max(1e-9, measured), 1),
            "p50_us": round(float(p50), 1), "p99_us": round(float(p99), 1),
            "p999_us": round(float(p999), 1),
            "misses_over_1ms": int((samples > DEADLINE_US).sum()),
            "server_cpu_pct": round(100 * server_cpu, 1),
            "client_cpu_pct_per_flow": round(100 * float(np.mean(
                [f["cpu_s"] for f in per_flow])) / measured, 2),
            "client_spin_pct_per_flow": round(100 * float(np.mean(
                [f["spin_s"] for f in per_flow])) / measured, 2),
            "loadavg_1min": round(load, 2)}, per_flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per paced case")
    parser.add_argument("--flat-seconds", type=float, default=3.0, help="per flat-out case")
    parser.add_argument("--flows", default="1,8,32")
    parser.add_argument("--only", default="floor,opennetlab,mvfst-sized,naive",
                        help="which of floor, opennetlab, mvfst-sized, naive to run")
    parser.add_argument("--rates", default="50,0", help="per-flow Hz; 0 is flat out")
    parser.add_argument("--agent-args", default="",
                        help="extra arguments for python -m netlab.agent, e.g. "
                             "'--poll-budget 0 --warm periodic' (the design before polling)")
    parser.add_argument("--client-spin", type=float, default=None,
                        help="AgentClient spin_s in seconds (default: the client's default; "
                             "0: sleep in select at once)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--echo-server")
    parser.add_argument("--naive-server", nargs=2)
    parser.add_argument("--flow", nargs=9)
    args = parser.parse_args()
    if args.echo_server:
        echo_server(args.echo_server)
        return
    if args.naive_server:
        naive_server(int(args.naive_server[0]), args.naive_server[1])
        return
    if args.flow:
        kind, target, rate, seconds, obs_size, contract, out, seed, spin = args.flow
        flow_worker(kind, target, float(rate), float(seconds), int(obs_size), contract, out,
                    int(seed), float(spin))
        return
    from endpoints.agent_client import DEFAULT_SPIN_S

    spin_s = DEFAULT_SPIN_S if args.client_spin is None else args.client_spin
    flow_counts = [int(x) for x in args.flows.split(",")]
    rates = [float(x) for x in args.rates.split(",")]
    only = set(args.only.split(","))
    agent_args = args.agent_args.split()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nltA-bench-agent-") as tmp:
        workdir = Path(tmp)
        mvfst = workdir / "mvfst_sized.pt"
        mvfst_sized_model(mvfst)
        plan: list[tuple[str, str, str | None, int, str, list[tuple[int, float]]]] = []
        paced = [(n, r) for r in rates for n in flow_counts]
        plan.append(("floor", "-", None, 4, "rtc-onl4", paced))
        plan.append(("agent", "opennetlab", str(ONL), 4, "rtc-onl4", paced))
        plan.append(("agent", "mvfst-sized", str(mvfst), 221, "mvfst-221",
                     [(1, 10.0), *paced]))
        plan.append(("naive", "opennetlab", str(ONL), 4, "rtc-onl4",
                     [(n, r) for n, r in paced if n <= 8]))
        for kind, model, checkpoint, obs_size, contract, cases in plan:
            if (model if kind == "agent" else kind) not in only:
                continue
            for flows, rate in cases:
                # a fresh server per case: its stats (and trace) are this case's alone
                stats = workdir / f"stats-{kind}-{model}-{flows}-{rate}.json"
                proc, target = start_server(kind, workdir, checkpoint, agent_args, stats)
                try:
                    seconds = args.seconds if rate else args.flat_seconds
                    result, per_flow = run_case(kind, target, flows, rate, seconds, obs_size,
                                                contract, workdir, proc.pid, spin_s)
                finally:
                    stop_server(proc)
                result["model"] = model
                if kind == "agent":
                    result["breakdown"] = breakdown(per_flow, stats)
                    if stats.exists():
                        snap = json.loads(stats.read_text())
                        result["agent_polling"] = snap.get("polling")
                        result["agent_counters"] = {k: snap.get(k) for k in (
                            "decisions", "batches", "warmups", "spins", "spin_hits",
                            "spins_skipped", "timed_wakes")}
                results.append(result)
                print(f"{kind:6} {model:12} flows={flows:<3} rate={result['rate_hz']!s:9} "
                      f"n={result['decisions']:<6} p50={result['p50_us']:8.1f} "
                      f"p99={result['p99_us']:8.1f} p99.9={result['p999_us']:8.1f} µs "
                      f"misses>1ms={result['misses_over_1ms']:<5} "
                      f"cpu: server {result['server_cpu_pct']}% "
                      f"client {result['client_cpu_pct_per_flow']}%/flow "
                      f"(spin {result['client_spin_pct_per_flow']}%) "
                      f"load {result['loadavg_1min']}", flush=True)
                if result.get("breakdown"):
                    print("       " + "  ".join(f"{k} {v}" for k, v in
                                                result["breakdown"].items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"cpus": os.cpu_count(), "spin_s": spin_s,
                                         "agent_args": agent_args, "results": results},
                                        indent=1))


if __name__ == "__main__":
    main()
