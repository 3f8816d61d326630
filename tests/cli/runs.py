"""Running ``netlab run`` on a scenario file and reading what it wrote, for the
CLI tests that need a whole run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def netlab_run(scenario: Path, out: Path, *extra: str, timeout: float = 120,
               plots: bool = False) -> tuple[Path, dict[str, Any]]:
    """``netlab run -q --out OUT [EXTRA] SCENARIO``; its one run directory and results.

    Without ``plots``, with ``--no-plots``: drawing them costs 1.5-2.5 s a run
    (matplotlib), and the tests that check them ask for them."""
    words = [] if plots else ["--no-plots"]
    done = subprocess.run([sys.executable, "-m", "netlab.cli.main", "run", "-q", "--out",
                           str(out), *words, *extra, str(scenario)], timeout=timeout,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (run_dir,) = out.iterdir()
    results: dict[str, Any] = json.loads((run_dir / "results.json").read_text())
    return run_dir, results


def bundled_scenario(name: str, tmp_path: Path, replacements: dict[str, str]) -> Path:
    """``scenarios/NAME.yaml`` with text replaced (a lab name, a shorter duration)
    and its ``../models/`` paths made absolute, written under ``tmp_path``."""
    text = (REPO / "scenarios" / f"{name}.yaml").read_text()
    for old, new in {**replacements, "../models/": f"{REPO}/models/"}.items():
        text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path
