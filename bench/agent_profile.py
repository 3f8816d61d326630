"""Where the agent's round trip goes, piece by piece (issue #14: measure, don't assume).

Sections (``--only``, comma-separated; all by default):

* ``forward``: one decision's compute in this process, hot (back to back) and
  cold (after ``--gap-ms`` asleep, as at a flow's rate), at batch 1/8/32.
  OpenNetLab (22 k parameters): torch eager, a frozen TorchScript module,
  numpy with actor and critic as two chains, numpy as one chain (the agent's
  batches), the whole ``policy.act`` (normalise, forward, actions), and
  ``serve`` (decode + act + encode, the agent's general per-request work without
  the socket); at batch 1 also the row chain (one row in preallocated buffers)
  and the fast lane's whole compute (unpack, ``Policy.single``, pack).
  mvfst-sized (``--model mvfst-sized``): ``act`` on the CPU, and with
  ``--device cuda`` eager CUDA and the captured graphs (``netlab.agent.device``).
* ``batching``: 8 requests in one forward pass against 8 passes, hot and cold.
* ``record``: what the agent records per decision after replying: latency
  stats with and without ``--trace``, the transition ring at batch 1 and 8.
* ``wake``: the floor's echo server sleeping in ``epoll_wait`` (the floor), in
  ``select`` on the epoll fd (the agent's timed sleep), each also at
  SCHED_FIFO 40 (the agent's rung), or polling (holding a CPU: at normal
  priority only); blocking clients.
* ``client``: the floor's server; clients blocking in ``recv`` (the floor),
  ``select`` then ``recv`` (the lab's client), or polling 400 µs first.
* ``agent``: the agent itself under variants: as the lab starts it; without
  ``--trace``; ``--warm off`` / ``periodic``; ``--priority none``;
  ``--poll-budget 0.2``; its clients polling 400 µs (``spin_s``).

``wake``, ``client`` and ``agent`` run the cases ``--cases`` (default 8x50 and
1x5) for ``--seconds`` each. Figures move with everything else on the machine:
take them idle.

    .venv/bin/python bench/agent_profile.py [--only forward,batching,...]
        [--model opennetlab|mvfst-sized] [--device cpu|cuda] [--gap-ms 20]
        [--cases 8x50,1x5] [--seconds 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import agent as agent_bench  # noqa: E402  (bench/agent.py)

SECTIONS = ("forward", "batching", "record", "wake", "client", "agent")


def timed(call: Callable[[], object], n: int, gap_s: float) -> dict[str, float | None]:
    """p50/p99 µs of ``call``: back to back (gap 0, after a warm-up) or each after
    sleeping ``gap_s``."""
    samples = []
    for _ in range(20 if gap_s == 0 else 2):
        call()
    for _ in range(n):
        if gap_s:
            time.sleep(gap_s)
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1e3)
    return agent_bench.pcts(samples)


def _row(name: str, batch: int, hot: dict[str, Any], cold: dict[str, Any]) -> dict[str, Any]:
    print(f"  {name:24} B{batch:<3} hot p50/p99 {hot['p50']}/{hot['p99']} µs   cold "
          f"p50/p99 {cold['p50']}/{cold['p99']} µs", flush=True)
    return {"variant": name, "batch": batch, "hot": hot, "cold": cold}


def onl_variants(batch: int) -> dict[str, Callable[[], object]]:
    import torch

    from endpoints import agent_protocol as proto
    from netlab.agent.checkpoints import load_policy
    from netlab.agent.lane import FastLane
    from netlab.agent.policies.numpy_mlp import layers_of, run
    from netlab.agent.policies.spec import MlpActorCritic, SpecPolicy
    from netlab.agent.stats import ServingStats
    from netlab.agent.transitions import TransitionBuffer
    from netlab.agent.transport import Transport

    policy = load_policy(agent_bench.ONL)
    assert isinstance(policy, SpecPolicy) and isinstance(policy.model, MlpActorCritic)
    model = policy.model
    raw = np.tile(np.array([[1.2e6, 25.0, 0.01, 1.0e6]], dtype=np.float32), (batch, 1))
    obs = policy.observe.numpy(raw)
    obs_t = torch.from_numpy(obs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        frozen = torch.jit.freeze(torch.jit.script(model.eval()))
    actor, critic = layers_of(model.actor), layers_of(model.critic)  # type: ignore[arg-type]
    assert policy.numpy_forward is not None
    fused = policy.numpy_forward
    frames = [proto.observe(1, k + 1, time.monotonic_ns(), raw[0]) for k in range(batch)]
    states = [None] * batch

    def eager() -> object:
        with torch.inference_mode():
            return model(obs_t)

    def jit() -> object:
        with torch.inference_mode():
            return frozen(obs_t)

    def serve() -> object:
        decoded = [proto.decode(f) for f in frames]
        out = policy.act(np.stack([d.vector for d in decoded]), list(states), False,
                         np.array([d.value for d in decoded], dtype=np.float32))
        return [proto.encode(proto.Kind.ACTION, d.flow, d.seq, d.t_ns, out.actions[i],
                             value=float(out.value[i])) for i, d in enumerate(decoded)]

    variants: dict[str, Callable[[], object]] = {
        "torch eager": eager, "torch.jit frozen": jit,
        "numpy, two chains": lambda: (run(actor, obs), run(critic, obs)),
        "numpy, one chain": lambda: fused(obs),
        "policy.act": lambda: policy.act(raw, list(states), False),
        "serve (decode+act+encode)": serve}
    if batch == 1:  # the fast lane's own path (netlab.agent.lane): one request only
        lane = FastLane(Transport(Path(tempfile.gettempdir()) / "unused.sock", {}, {}),
                        ServingStats(0.001), TransitionBuffer(4, 1, 16))
        assert lane.serve(policy)
        row = obs[0].tolist()
        variants["numpy, row chain"] = lambda: fused.one(row)
        variants["lane (unpack+single+pack)"] = lambda: lane.compute(None, frames[0])
    return variants


def mvfst_variants(batch: int, device: str, workdir: Path) -> dict[str, Callable[[], object]]:
    import torch

    from netlab.agent.device import BucketedForward, DevicePolicy, cuda_unavailable
    from netlab.agent.policies.torchscript import TorchScriptPolicy

    path = workdir / "mvfst_sized.pt"
    if not path.exists():
        agent_bench.mvfst_sized_model(path)
    obs = np.random.default_rng(0).uniform(0, 1, (batch, 221)).astype(np.float32)
    rewards = np.zeros(batch, dtype=np.float32)
    cpu = TorchScriptPolicy(path)
    variants: dict[str, Callable[[], object]] = {
        "act on cpu": lambda: cpu.act(obs, [None] * batch, False, rewards)}
    if device == "cuda":
        reason = cuda_unavailable()
        if reason is not None:
            print(f"  (no cuda: {reason})", flush=True)
            return variants
        eager_policy = TorchScriptPolicy(path)
        eager_policy.module.to("cuda")
        eager = BucketedForward(eager_policy, torch.device("cuda"), capture=False)
        norm = eager_policy.observe.numpy(obs)
        graph = DevicePolicy(TorchScriptPolicy(path), torch.device("cuda"))
        variants["eager cuda"] = lambda: eager.run(norm, rewards, [None] * batch)
        variants["cuda graph"] = lambda: graph.act(obs, [None] * batch, False, rewards)
    return variants


def section_forward(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    print(f"forward ({args.model}, gap {args.gap_ms} ms for cold):", flush=True)
    rows = []
    for batch in (1, 8, 32):
        variants = (onl_variants(batch) if args.model == "opennetlab"
                    else mvfst_variants(batch, args.device, workdir))
        for name, call in variants.items():
            hot = timed(call, args.hot_calls, 0.0)
            cold = timed(call, args.cold_calls, args.gap_ms / 1e3)
            rows.append(_row(name, batch, hot, cold))
    return rows


def section_batching(args: argparse.Namespace) -> list[dict[str, Any]]:
    from netlab.agent.checkpoints import load_policy

    print("batching (OpenNetLab, 8 requests):", flush=True)
    policy = load_policy(agent_bench.ONL)
    one = np.array([[1.2e6, 25.0, 0.01, 1.0e6]], dtype=np.float32)
    eight = np.tile(one, (8, 1))
    rows = []
    for name, call in (("one pass of 8", lambda: policy.act(eight, [None] * 8, False)),
                       ("8 passes of 1", lambda: [policy.act(one, [None], False)
                                                  for _ in range(8)])):
        rows.append(_row(name, 8, timed(call, args.hot_calls, 0.0),
                         timed(call, args.cold_calls, args.gap_ms / 1e3)))
    return rows


def section_record(args: argparse.Namespace) -> list[dict[str, Any]]:
    from netlab.agent.stats import ServingStats
    from netlab.agent.transitions import TransitionBuffer

    print("record (per decision, after the replies):", flush=True)
    plain, traced = ServingStats(0.001), ServingStats(0.001, trace=1_000_000)
    ring = TransitionBuffer(4, 1)
    t = time.monotonic_ns()
    obs1, obs8 = np.zeros((1, 4), np.float32), np.zeros((8, 4), np.float32)
    act1, act8 = np.zeros((1, 1), np.float32), np.zeros((8, 1), np.float32)
    z1, z8 = np.zeros(1, np.float32), np.zeros(8, np.float32)
    calls: dict[str, Callable[[], object]] = {
        "stats": lambda: plain.decision(1, 1, t, t + 50_000, t + 90_000),
        "stats + trace": lambda: traced.decision(1, 1, t, t + 50_000, t + 90_000),
        "transitions B1": lambda: ring.append_batch([1], [1], [t], t, z1, [False], z1, z1,
                                                    obs1, act1),
        "transitions B8": lambda: ring.append_batch(list(range(8)), [1] * 8, [t] * 8, t, z8,
                                                    [False] * 8, z8, z8, obs8, act8)}
    return [_row(name, 1, timed(call, args.hot_calls, 0.0),
                 timed(call, args.cold_calls, args.gap_ms / 1e3)) for name, call in calls.items()]


def _cases(args: argparse.Namespace) -> list[tuple[int, float]]:
    return [(int(n), float(r)) for n, r in (c.split("x") for c in args.cases.split(","))]


def _side(label: str, server: list[str], target: str, clients: list[list[str]],
          args: argparse.Namespace) -> dict[str, Any]:
    flows, cpu, load = agent_bench.run_side(server, target, clients, args.seconds, args.warm)
    result = agent_bench.summary(flows, cpu, load, args.seconds - args.warm)
    print(f"  {label:34} p50 {result['p50']} p99 {result['p99']} µs >1ms "
          f"{result['misses_over_1ms']} (n={result['decisions']}) server cpu "
          f"{result['server_cpu_pct']}% client cpu {result['client_cpu_pct_per_flow']}%/flow "
          f"load {result['loadavg_1min']}", flush=True)
    return {"variant": label, **result}


def _echo(args: argparse.Namespace, workdir: Path, name: str, flows: int, rate: float,
          server_wait: str, fifo: int, client_wait: str) -> dict[str, Any]:
    sock = str(workdir / f"{name}.sock")
    server = [sys.executable, str(agent_bench.ECHO), "--server", sock, "--wait", server_wait,
              "--fifo", str(fifo)]
    clients = [[sys.executable, str(agent_bench.ECHO), "--wait", client_wait, "--client", sock,
                str(rate), str(args.seconds), str(args.warm), str(i),
                str(workdir / f"{name}-{i}.json")] for i in range(flows)]
    label = f"{flows}x{rate:g} server {server_wait}{' fifo' if fifo else ''}, " \
            f"client {client_wait}"
    return _side(label, server, sock, clients, args)


def section_wake(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    print("wake-up path (echo server variants, blocking clients):", flush=True)
    fifo = 40 if os.geteuid() == 0 else 0
    # polling is not run at SCHED_FIFO: a real-time task spinning for a whole case
    # holds its CPU from everything else (the agent's own poller has a budget)
    return [_echo(args, workdir, f"wake-{n}-{r:g}-{wait}-{prio}", n, r, wait, prio, "recv")
            for n, r in _cases(args) for wait in ("epoll", "select", "spin")
            for prio in sorted({0, fifo if wait != "spin" else 0})]


def section_client(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    print("client wait (the floor's server):", flush=True)
    return [_echo(args, workdir, f"client-{n}-{r:g}-{wait}", n, r, "epoll", 0, wait)
            for n, r in _cases(args) for wait in ("recv", "select", "spin")]


def section_agent(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    print("agent variants (OpenNetLab):", flush=True)
    variants: list[tuple[str, list[str], str]] = [
        ("as the lab starts it", [], "0"), ("with --trace", ["--trace", "1000000"], "0"),
        ("--warm off", ["--warm", "off"], "0"), ("--warm periodic", ["--warm", "periodic"], "0"),
        ("--priority none", ["--priority", "none"], "0"),
        ("--poll-budget 0.2", ["--poll-budget", "0.2"], "0"),
        ("clients poll 400 µs", [], "0.0004")]
    rows = []
    for flows, rate in _cases(args):
        for k, (label, extra, spin) in enumerate(variants):
            sock = str(workdir / f"agent-{flows}-{rate:g}-{k}.sock")
            server = [sys.executable, "-m", "netlab.agent", "--socket", sock, "--checkpoint",
                      str(agent_bench.ONL), *extra]
            clients = [[sys.executable, str(BENCH / "agent.py"), "--flow", sock, str(rate),
                        str(args.seconds), str(args.warm), "4", "rtc-onl4", str(i), spin,
                        str(workdir / f"agent-{flows}-{rate:g}-{k}-{i}.json")]
                       for i in range(flows)]
            rows.append(_side(f"{flows}x{rate:g} {label}", server, sock, clients, args))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--model", choices=("opennetlab", "mvfst-sized"), default="opennetlab")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--gap-ms", type=float, default=20.0,
                        help="sleep before each cold call (20: 50 Hz; 100: 10 Hz)")
    parser.add_argument("--hot-calls", type=int, default=2000)
    parser.add_argument("--cold-calls", type=int, default=200)
    parser.add_argument("--cases", default="8x50,1x5")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warm", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    chosen = [s for s in args.only.split(",") if s]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    import torch
    torch.set_num_threads(1)  # as the agent (--threads 1)
    out: dict[str, Any] = {"cpus": os.cpu_count(), "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="nltA-bench-profile-") as tmp:
        workdir = Path(tmp)
        for section in chosen:
            if section == "forward":
                out[section] = section_forward(args, workdir)
            elif section == "batching":
                out[section] = section_batching(args)
            elif section == "record":
                out[section] = section_record(args)
            elif section == "wake":
                out[section] = section_wake(args, workdir)
            elif section == "client":
                out[section] = section_client(args, workdir)
            else:
                out[section] = section_agent(args, workdir)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
