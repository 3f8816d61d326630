"""A real LTE trace with an outage, a cubic flow, both backends: the run's own fidelity.

Issue #13's "done when" (a): a Mahimahi-format real LTE trace with an outage
of at least 0.5 s, a cubic TCP flow for 25 s through a 100-packet queue, run
with ``netlab run`` on the kernel backend (htb) and on the user-space link.
For each: the run's own fidelity report (capacity MAPE over backlogged
500 ms bins, the worst bin, the verdict) and what the lab chose and why
(``backend_choice``); then the two backends against each other over the run
(delivered bits in the bins both counted).  Targets: MAPE <= 3 %, no bin
failing, the backends within 3 %.

The default trace is a slice of the corpus's Verizon LTE downlink (Mahimahi
``Verizon-LTE-short.down``, recorded while driving) from 60 s on, which puts
its 1.45 s outage 4.4 s into the run; ``--trace FILE --from-s 0`` runs any
other (the T-Mobile uplink has a 0.72 s outage at 22.7 s as it is).  The ACK
direction is not shaped, so only the data direction is judged.  ``--backend
kernel`` is asked for explicitly: the lab would otherwise move a direction
htb cannot replay faithfully to the user-space link (and says why).

Run as root on an idle machine (about 1 min per backend):
    .venv/bin/python bench/real_trace_fidelity.py [--seconds 25] [--json out.json]
The same slice for the iperf3 flood of ``netlab up -d`` (issue #13 (b)):
    .venv/bin/python bench/real_trace_fidelity.py --write-trace /tmp/verizon-slice.mahimahi
    .venv/bin/python bench/byo_trace_flood.py /tmp/verizon-slice.mahimahi --backend kernel
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = REPO / "traces" / "cellular" / "verizon-lte-short.down"
TARGET_MAPE = 0.03
TARGET_AGREEMENT = 0.03


def slice_trace(source: Path, from_s: float, length_s: float, out: Path) -> Path:
    """Mahimahi lines in ``[from_s, from_s + length_s)``, shifted to start at 0."""
    start, end = round(from_s * 1000), round((from_s + length_s) * 1000)
    stamps = [int(line) for line in source.read_text().split() if line.strip()]
    kept = [t - start for t in stamps if start <= t < end]
    if not kept or kept[-1] <= 0:
        raise SystemExit(f"{source}: no delivery opportunity in {from_s:g}-{from_s + length_s:g} s")
    out.write_text("\n".join(map(str, kept)) + "\n")
    return out


def longest_gap(trace: Path, within_s: float) -> tuple[float, float]:
    """(start s, length s) of the longest stretch without an opportunity."""
    stamps = [int(line) for line in trace.read_text().split() if line.strip()]
    gaps = [(b - a, a) for a, b in itertools.pairwise(stamps) if a < within_s * 1000]
    length, at = max(gaps)
    return at / 1000, length / 1000


SCENARIO = """name: {name}
duration: {seconds}s
hosts: [alice, bob]
links:
  - endpoints: [alice, bob]
    up: {{trace: {trace}, queue: 100pkt}}
flows:
  - {{kind: tcp, from: alice, to: bob, cc: cubic}}
"""


def run(backend: str, trace: Path, seconds: float, work: Path) -> dict[str, Any]:
    scenario = work / f"{backend}.yaml"
    scenario.write_text(SCENARIO.format(name=f"rtf{backend[0]}", seconds=seconds, trace=trace))
    out = work / f"runs-{backend}"
    done = subprocess.run([sys.executable, "-m", "netlab.cli.main", "run", "-q", "--backend",
                           backend, "--out", str(out), str(scenario)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"netlab run ({backend}) failed:\n{done.stderr}")
    results: dict[str, Any] = json.loads(next(out.glob("*/results.json")).read_text())
    return results


def summary(results: dict[str, Any]) -> dict[str, Any]:
    fidelity = results["fidelity"]
    up = next(e for e in fidelity["links"] if e["direction"] == "up")
    bins = up["capacity_by_bin"]
    worst = max(bins, key=lambda b: abs(b["delivered_bps"] / b["asked_bps"] - 1), default=None)
    choice = next(c for c in results["backend_choice"] if c["direction"] == "up")
    (flow,) = results["flows"]
    return {
        "faithful": fidelity["faithful"], "verdict": fidelity["verdicts"][0],
        "problems": fidelity["verdicts"][1:], "capacity_mape": up["capacity_mape"],
        "backlogged_bins": up["capacity_bins"],
        "worst_bin": None if worst is None else {
            "t_s": worst["t_s"], "asked_bps": worst["asked_bps"],
            "delivered_bps": worst["delivered_bps"],
            "error": worst["delivered_bps"] / worst["asked_bps"] - 1},
        "timing_err_ms": up["timing_err_ms"], "source": up["source"],
        "backend_choice": choice["reason"], "tcp_recv_rate_bps": flow["metrics"]["recv_rate_bps"],
        "bins": {round(b["t_s"], 1): b["delivered_bps"] for b in bins},
        "machine": (fidelity.get("machine") or {}).get("causes"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE,
                        help="a Mahimahi trace (default: the corpus's Verizon LTE downlink)")
    parser.add_argument("--from-s", type=float, default=None,
                        help="slice the trace from this second (default 60 for the default "
                             "trace, else 0: the trace as it is)")
    parser.add_argument("--seconds", type=float, default=25.0, help="the flow's length")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--write-trace", type=Path, metavar="FILE",
                        help="only write the (sliced) trace to FILE, for bench/byo_trace_flood.py")
    args = parser.parse_args()
    from_s = args.from_s if args.from_s is not None else (
        60.0 if args.trace == DEFAULT_TRACE else 0.0)
    if args.write_trace:
        slice_trace(args.trace, from_s, args.seconds + 15, args.write_trace)
        at, length = longest_gap(args.write_trace, args.seconds)
        print(f"{args.write_trace}: longest gap {length * 1000:.0f} ms at {at:.2f} s")
        return 0
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nl-rtf-") as tmp:
        work = Path(tmp)
        trace = (slice_trace(args.trace, from_s, args.seconds + 5, work / "trace.mahimahi")
                 if from_s > 0 else args.trace.resolve())
        at, length = longest_gap(trace, args.seconds)
        print(f"trace {args.trace.name} from {from_s:g} s: longest gap {length * 1000:.0f} ms at "
              f"{at:.2f} s of the run", flush=True)
        report["trace"] = {"file": str(args.trace), "from_s": from_s,
                           "longest_gap_s": length, "gap_at_s": at}
        for backend in ("kernel", "user"):
            figures = summary(run(backend, trace, args.seconds, work))
            report[backend] = figures
            worst = figures["worst_bin"] or {}
            mape = figures["capacity_mape"]
            print(f"{backend:>6}: {'faithful' if figures['faithful'] else 'NOT faithful'}; "
                  f"capacity MAPE {'-' if mape is None else f'{mape * 100:.2f} %'} over "
                  f"{figures['backlogged_bins']} backlogged bins; worst bin "
                  f"{worst.get('t_s', float('nan')):.1f} s {worst.get('error', 0) * 100:+.1f} % "
                  f"({worst.get('delivered_bps', 0) / 1e6:.2f} of "
                  f"{worst.get('asked_bps', 0) / 1e6:.2f} Mbit/s); TCP "
                  f"{figures['tcp_recv_rate_bps'] / 1e6:.2f} Mbit/s", flush=True)
            print(f"        {figures['verdict']}")
            for problem in figures["problems"]:
                print(f"        {problem}")
            print(f"        choice: {figures['backend_choice']}")
    kernel_bins, user_bins = report["kernel"].pop("bins"), report["user"].pop("bins")
    common = sorted(set(kernel_bins) & set(user_bins))
    k_bits = sum(kernel_bins[t] for t in common)
    u_bits = sum(user_bins[t] for t in common)
    agreement = k_bits / u_bits - 1 if u_bits else None
    report["kernel_vs_user"] = {"bins": len(common), "delivered_ratio_minus_1": agreement}
    met = {
        backend: bool(report[backend]["faithful"] and report[backend]["capacity_mape"] is not None
                      and report[backend]["capacity_mape"] <= TARGET_MAPE)
        for backend in ("kernel", "user")}
    met["agreement"] = agreement is not None and abs(agreement) <= TARGET_AGREEMENT
    report["targets_met"] = met
    print(f"kernel vs user over {len(common)} bins both counted: "
          f"{'-' if agreement is None else f'{agreement * 100:+.2f} %'} "
          f"(target within {TARGET_AGREEMENT * 100:.0f} %)")
    print(f"targets (MAPE <= {TARGET_MAPE * 100:.0f} % and faithful; agreement): "
          + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in met.items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
