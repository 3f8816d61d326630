"""Plugin estimators through netlab beside GCC: utilisation on steady links.

One two-host lab per (link rate, estimator), made and run with ``netlab run``:
a steady 1, 2 or 4 Mbit/s link, 20 ms one way each way, 100-packet drop-tail
queue, one RTC call of ``--duration`` seconds. Estimators:

* ``gcc``: netlab's sender-side GCC (``endpoints.rtc.gcc``: transport-wide
  feedback, initial and periodic probes, congestion window);
* ``gcc-heuristic``: a published-style receiver-side GCC heuristic run as an
  AlphaRTC plugin (``tests/data/plugins/hrcc_like/BandwidthEstimator_gcc.py``,
  restating HRCC's ``BandwidthEstimator_gcc.py``; no probing, 8 %/s
  multiplicative increase from 300 kbit/s, as AlphaRTC would run it);
* ``torch-hybrid``: the same heuristic scaled by a PPO actor loaded with torch
  from the plugin's folder (``.../hrcc_like/BandwidthEstimator.py``);
* ``onl-ppo``: OpenNetLab's pretrained PPO checkpoint in a plugin shaped like
  their Challenge-Example (``tests/data/plugins/onl_ppo/``).

Per run: utilisation = receive rate / capacity over the whole call (from its
sender's real start) and over its second half; p95 one-way delay; loss; the
receiver's ready time and the plugin's load time.

Run as root:  .venv/bin/python bench/plugins.py [--duration 40] [--json out.json]

Measured (2 vCPU, shared; 40-s calls), utilisation whole / second half:
1 Mbit/s gcc 0.80/0.82, heuristic 0.69/0.82, torch hybrid 0.65/0.83,
OpenNetLab PPO 0.21/0.22; 2 Mbit/s 0.80/0.82, 0.56/0.80, 0.53/0.79,
0.11/0.11; 4 Mbit/s 0.79/0.81, 0.39/0.62, 0.37/0.60, 0.05/0.05. p95 delay
gcc 99-122 ms, plugins 53-108 ms, OpenNetLab PPO 21-25 ms; torch load
1.6-8.7 s, senders started 0.01 s after ready.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "tests" / "data" / "plugins" / "hrcc_like"
ESTIMATORS = {
    "gcc": "gcc",
    "gcc-heuristic": f"plugin:{PLUGINS / 'BandwidthEstimator_gcc.py'}",
    "torch-hybrid": f"plugin:{PLUGINS / 'BandwidthEstimator.py'}",
    "onl-ppo": f"plugin:{PLUGINS.parent / 'onl_ppo' / 'BandwidthEstimator.py'}",
}
RATES_MBIT = (1, 2, 4)


def scenario(name: str, rate_mbit: int, estimator: str, duration_s: float) -> str:
    return f"""
name: {name}
duration: {duration_s:g}s
seed: 1
hosts: [alice, bob]
links:
  - endpoints: [alice, bob]
    rate: {rate_mbit}Mbit
    delay: 20ms
    queue: 100pkt
flows:
  - {{kind: rtc, from: alice, to: bob, estimator: "{estimator}"}}
"""


def second_half_utilisation(run_dir: Path, flow: dict[str, Any], capacity_bps: float,
                            duration_s: float) -> float | None:
    started = float(flow.get("started_s") or 0.0)
    begin = started + duration_s / 2
    rows = list(csv.DictReader((run_dir / "timeseries" / f"{flow['id']}.csv").open()))
    rates = [float(r["recv_rate_bps"] or 0) for r in rows
             if begin <= float(r["t_s"]) < started + duration_s]
    return sum(rates) / len(rates) / capacity_bps if rates else None


def run_one(work: Path, rate_mbit: int, label: str, duration_s: float) -> dict[str, Any]:
    name = f"bp{rate_mbit}{list(ESTIMATORS).index(label)}"
    path = work / f"{name}.yaml"
    path.write_text(scenario(name, rate_mbit, ESTIMATORS[label], duration_s))
    out = work / name
    done = subprocess.run([sys.executable, "-m", "netlab.cli.main", "run", "-q", "--out",
                           str(out), str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=duration_s + 180)
    if done.returncode != 0:
        return {"rate_mbit": rate_mbit, "estimator": label, "error": done.stderr.strip()}
    (run_dir,) = out.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    (flow,) = results["flows"]
    capacity = rate_mbit * 1e6
    metrics = flow["metrics"]
    meta = json.loads((run_dir / "flows" / flow["id"] / "receiver" /
                       "receiver_meta.json").read_text())
    plugin = meta["counters"].get("plugin") or {}
    return {"rate_mbit": rate_mbit, "estimator": label,
            "utilisation": round(metrics["recv_rate_bps"] / capacity, 3),
            "utilisation_second_half": round(
                second_half_utilisation(run_dir, flow, capacity, duration_s) or 0, 3),
            "delay_p95_ms": metrics.get("delay_p95_ms"), "loss": metrics.get("loss"),
            "ready_s": flow.get("ready_s"), "started_s": flow.get("started_s"),
            "plugin_load_s": plugin.get("load_s"),
            "poll_p99_us": (plugin.get("get_estimated_bandwidth") or {}).get("p99_us"),
            "faithful": results["fidelity"]["faithful"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--estimators", default=",".join(ESTIMATORS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="netlab-bench-plugins-") as tmp:
        for rate in RATES_MBIT:
            for label in args.estimators.split(","):
                row = run_one(Path(tmp), rate, label, args.duration)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| link | estimator | utilisation | 2nd half | p95 delay | loss | ready | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['rate_mbit']} Mbit/s | {r['estimator']} | error: {r['error'][:60]} |")
            continue
        load = f"{r['plugin_load_s']:.2f} s" if r["plugin_load_s"] is not None else "–"
        print(f"| {r['rate_mbit']} Mbit/s | {r['estimator']} | {r['utilisation']:.2f} | "
              f"{r['utilisation_second_half']:.2f} | {r['delay_p95_ms']:.0f} ms | "
              f"{r['loss']:.3f} | {r['ready_s']:.2f} s | {load} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
