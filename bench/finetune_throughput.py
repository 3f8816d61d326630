"""Fine-tuning throughput: faithful episodes and decisions per hour at K labs at once.

Issue #15 asks that fine-tuning keep at least 3 labs faithful on an idle
2-vCPU machine.  This runs the same small fine-tune (``configs/finetune-
tiny.yaml``'s ranges, a policy served by an agent in every lab) once per K
starting at K (fine-tune lowers K only when an episode's own report blames
the machine), and prints per K: episodes, faithful ones,
the K each round really used, wall time, faithful episodes per hour, agent
decisions per hour, agent misses, and, for every unfaithful episode, what its
own fidelity verdict blamed (the machine's load, or the link itself).

    sudo .venv/bin/python bench/finetune_throughput.py [--parallel 1,3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parents[1]
BASE_CONFIG = REPO / "configs" / "finetune-tiny.yaml"


def _episodes(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("episodes/*/*/episode.json"))]


def _blame(episode: dict[str, Any]) -> str:
    """What an unfaithful episode's own fidelity report named."""
    run_dir = episode.get("run_dir")
    if not run_dir or not (Path(run_dir) / "results.json").is_file():
        return episode.get("error") or "no results"
    fidelity = json.loads((Path(run_dir) / "results.json").read_text())["fidelity"]
    causes = (fidelity.get("machine") or {}).get("causes") or []
    # the first verdict counts the problems, the ones after it name them
    problems = [str(v) for v in fidelity.get("verdicts", [])[1:]]
    head = "; ".join(problems) or "unfaithful"
    return head[:400] + (f" | machine: {'; '.join(causes)[:160]}" if causes else "")


def run_k(k: int, rounds: int, episodes: int, duration_s: float, work: Path) -> dict[str, Any]:
    from netlab.learning.finetune import Finetuner, load_config

    out = work / f"k{k}"
    config = load_config(BASE_CONFIG, {"out": str(out), "rounds": rounds, "parallel": k,
                                       "episodes": episodes})
    config.train = {**config.train, "duration_s": duration_s}
    start = time.monotonic()
    Finetuner(config, log=lambda *a, **_: None).run(resume=False)
    wall = time.monotonic() - start
    eps = _episodes(out)
    faithful = [e for e in eps if e.get("faithful") and e.get("error") is None]
    decisions = sum(int((e.get("agent") or {}).get("decisions") or 0) for e in eps)
    misses = sum(int((e.get("agent") or {}).get("misses") or 0) for e in eps)
    with open(out / "progress.csv") as handle:
        used = [int(row["parallel"]) for row in csv.DictReader(handle)]
    return {"k": k, "episodes": len(eps), "faithful": len(faithful), "wall_s": round(wall, 1),
            "k_used": used, "faithful_per_hour": round(len(faithful) / wall * 3600, 1),
            "decisions_per_hour": round(decisions / wall * 3600), "misses": misses,
            "unfaithful": [_blame(e) for e in eps if e not in faithful]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parallel", default="1,3", help="the Ks to measure, comma separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=0,
                        help="episodes per round (default: 2 x the largest K)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per episode")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    ks = [int(k) for k in args.parallel.split(",")]
    episodes = args.episodes or 2 * max(ks)
    report = []
    with tempfile.TemporaryDirectory(prefix="nl-ftput-") as tmp:
        for k in ks:
            row = run_k(k, args.rounds, episodes, args.duration, Path(tmp))
            report.append(row)
            print(f"K={k}: {row['faithful']}/{row['episodes']} faithful, K used per round "
                  f"{row['k_used']}, {row['wall_s']} s, {row['faithful_per_hour']} faithful "
                  f"episodes/h, {row['decisions_per_hour']} decisions/h, "
                  f"{row['misses']} agent misses", flush=True)
            for blame in row["unfaithful"]:
                print(f"    unfaithful: {blame}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
