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

Rates: 50 decisions/s per flow (random phase) and flat out; 1, 8 and 32 flows.
A miss is a round trip over the 1 ms deadline.

    .venv/bin/python bench/agent.py [--seconds 8] [--flat-seconds 3] [--json out.json]
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
                contract: str, out: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    obs = rng.uniform(0, 1, obs_size).astype(np.float32)
    if obs_size == 4:
        obs = np.array([1.2e6, 25.0, 0.01, 1.0e6], dtype=np.float32)
    latencies: list[float] = []
    period = 1.0 / rate if rate > 0 else 0.0
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
        from endpoints.agent_client import AgentClient

        client = AgentClient(target, policy=contract, obs_size=obs_size,
                             action_size=1, deadline_s=0.5)
        client.decide(obs, wait_s=5)

        def once() -> float | None:
            decision = client.decide(obs)
            return decision.latency_us
    start = time.monotonic() + (rng.uniform(0, period) if period else 0.0)
    end = start + seconds
    next_t = start
    warm_until = start + min(1.0, seconds / 4)  # first second: connection and caches settle
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if period and now < next_t:
            time.sleep(next_t - now)
        latency = once()
        if latency is not None and time.monotonic() > warm_until:
            latencies.append(latency)
        next_t += period
    Path(out).write_text(json.dumps(latencies))


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


def start_server(kind: str, workdir: Path, checkpoint: str | None) -> tuple[
        subprocess.Popen[bytes], str]:
    if kind == "agent":
        target = str(workdir / "agent.sock")
        argv = [sys.executable, "-m", "netlab.agent", "--socket", target, "--checkpoint",
                str(checkpoint)]
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


def run_case(kind: str, target: str, flows: int, rate: float, seconds: float, obs_size: int,
             contract: str, workdir: Path) -> dict[str, Any]:
    procs, outs = [], []
    for i in range(flows):
        out = workdir / f"lat-{kind}-{flows}-{rate}-{i}.json"
        outs.append(out)
        procs.append(subprocess.Popen(
            [sys.executable, __file__, "--flow", kind, target, str(rate), str(seconds),
             str(obs_size), contract, str(out), str(i)], cwd=REPO))
    for proc in procs:
        proc.wait(timeout=seconds + 120)
    samples = np.array([x for out in outs for x in json.loads(out.read_text())])
    p50, p99, p999 = (np.percentile(samples, [50, 99, 99.9]) if samples.size
                      else (np.nan,) * 3)
    return {"server": kind, "flows": flows, "rate_hz": rate or "flat out",
            "decisions": int(samples.size),
            "decisions_per_s": round(samples.size / max(1e-9, seconds * 0.75), 1),
            "p50_us": round(float(p50), 1), "p99_us": round(float(p99), 1),
            "p999_us": round(float(p999), 1),
            "misses_over_1ms": int((samples > DEADLINE_US).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per paced case")
    parser.add_argument("--flat-seconds", type=float, default=3.0, help="per flat-out case")
    parser.add_argument("--flows", default="1,8,32")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--echo-server")
    parser.add_argument("--naive-server", nargs=2)
    parser.add_argument("--flow", nargs=8)
    args = parser.parse_args()
    if args.echo_server:
        echo_server(args.echo_server)
        return
    if args.naive_server:
        naive_server(int(args.naive_server[0]), args.naive_server[1])
        return
    if args.flow:
        kind, target, rate, seconds, obs_size, contract, out, seed = args.flow
        flow_worker(kind, target, float(rate), float(seconds), int(obs_size), contract, out,
                    int(seed))
        return
    flow_counts = [int(x) for x in args.flows.split(",")]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nltm-bench-agent-") as tmp:
        workdir = Path(tmp)
        mvfst = workdir / "mvfst_sized.pt"
        mvfst_sized_model(mvfst)
        plan: list[tuple[str, str, str | None, int, str, list[tuple[int, float]]]] = []
        paced = [(n, 50.0) for n in flow_counts] + [(n, 0.0) for n in flow_counts]
        plan.append(("floor", "-", None, 4, "rtc-onl4", paced))
        plan.append(("agent", "opennetlab", str(ONL), 4, "rtc-onl4", paced))
        plan.append(("agent", "mvfst-sized", str(mvfst), 221, "mvfst-221",
                     [(1, 10.0), *paced]))
        plan.append(("naive", "opennetlab", str(ONL), 4, "rtc-onl4",
                     [(n, r) for n, r in paced if n <= 8]))
        for kind, model, checkpoint, obs_size, contract, cases in plan:
            proc, target = start_server(kind, workdir, checkpoint)
            try:
                for flows, rate in cases:
                    seconds = args.seconds if rate else args.flat_seconds
                    result = run_case(kind, target, flows, rate, seconds, obs_size, contract,
                                      workdir)
                    result["model"] = model
                    results.append(result)
                    print(f"{kind:6} {model:12} flows={flows:<3} rate={result['rate_hz']!s:9} "
                          f"n={result['decisions']:<6} p50={result['p50_us']:8.1f} "
                          f"p99={result['p99_us']:8.1f} p99.9={result['p999_us']:8.1f} µs "
                          f"misses>1ms={result['misses_over_1ms']}", flush=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    if args.json:
        args.json.write_text(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
