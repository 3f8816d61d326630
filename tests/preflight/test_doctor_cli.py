"""``netlab doctor`` run as a real process: its table, its JSON and its exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Runs the doctor command module exactly as the dispatcher does (configure, then run),
# without importing the other subcommands.
RUNNER = (
    "import argparse, sys\n"
    "from netlab.cli import doctor\n"
    "parser = argparse.ArgumentParser(prog='netlab doctor')\n"
    "doctor.configure(parser)\n"
    "sys.exit(doctor.run(parser.parse_args(sys.argv[1:])))\n"
)
STATUS_WORDS = {"ok", "FAIL", "warn", "no"}


def _doctor(
    run_root: Path, *args: str, drop: str | None = None
) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", "--inh-caps=-all", f"--bounding-set={drop}"] if drop else []
    return subprocess.run(
        [*prefix, sys.executable, "-c", RUNNER, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "NETLAB_RUN_ROOT": str(run_root), "COLUMNS": "250"},
    )


def _table_rows(stdout: str) -> dict[str, str]:
    """probe name -> status word, from rich's box-drawn table."""
    rows: dict[str, str] = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) >= 2 and cells[0] and cells[1] in STATUS_WORDS:
            rows[cells[0]] = cells[1]
    return rows


def _expected_status(result: dict[str, object]) -> str:
    if result["ok"]:
        return "ok"
    return {"error": "FAIL", "warning": "warn", "info": "no"}[str(result["severity"])]


def test_doctor_json_and_table_agree(run_root: Path) -> None:
    as_json = _doctor(run_root, "--json")
    report = json.loads(as_json.stdout)
    assert as_json.returncode == (0 if report["can_run_labs"] else 1)
    assert report["kernel"] == os.uname().release
    assert report["from_cache"] is False  # doctor probes afresh
    results = report["results"]
    names = [r["name"] for r in results]
    for needed in ("privileges", "setns", "qdisc netem", "qdisc htb", "qdisc tbf", "qdisc ingress",
                   "qdisc fq_codel", "qdisc fq", "qdisc cake", "link veth", "link ifb", "tun",
                   "tcp congestion control", "iperf3", "address pool"):
        assert needed in names, needed
    assert report["can_run_labs"] == (not any(
        not r["ok"] and r["severity"] == "error" for r in results))

    as_table = _doctor(run_root)
    assert as_table.returncode == as_json.returncode
    rows = _table_rows(as_table.stdout)
    assert rows == {r["name"]: _expected_status(r) for r in results}
    assert f"kernel {os.uname().release}" in as_table.stdout
    if as_table.returncode == 0:
        assert "this machine can run netlab labs" in as_table.stdout


def test_doctor_on_this_machine_passes_with_netem_warning(run_root: Path) -> None:
    report = json.loads(_doctor(run_root, "--json").stdout)
    caps = report["capabilities"]
    assert report["can_run_labs"] is True  # root, htb+tbf, veth, TUN
    netem = next(r for r in report["results"] if r["name"] == "qdisc netem")
    if caps["qdiscs"]["netem"]:
        assert netem["ok"]
    else:
        assert netem["severity"] == "warning"
        assert "user-space link" in netem["detail"]


def test_doctor_without_privileges_fails_with_fixes(run_root: Path) -> None:
    done = _doctor(run_root, drop="-net_admin,-sys_admin")
    assert done.returncode == 1, done.stdout + done.stderr
    rows = _table_rows(done.stdout)
    assert rows["privileges"] == "FAIL" and rows["setns"] == "FAIL"
    assert rows["kernel probe"] == "FAIL"
    assert "sudo netlab" in done.stdout
    assert "labs cannot run here yet: fix the 3 FAIL row(s)" in done.stdout


def test_doctor_cached_reuses_the_disk_cache(run_root: Path) -> None:
    first = json.loads(_doctor(run_root, "--json").stdout)
    second = json.loads(_doctor(run_root, "--json", "--cached").stdout)
    assert second["from_cache"] is True
    assert second["capabilities"]["qdiscs"] == first["capabilities"]["qdiscs"]
    print(f"probe {first['probe_seconds'] * 1e3:.1f} ms")


def test_doctor_through_the_netlab_dispatcher(run_root: Path) -> None:
    """The user's path: `netlab doctor --json` via the CLI entry point."""
    done = subprocess.run(
        [sys.executable, "-m", "netlab.cli.main", "doctor", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "NETLAB_RUN_ROOT": str(run_root)},
    )
    report = json.loads(done.stdout)
    assert done.returncode == (0 if report["can_run_labs"] else 1), done.stderr
    assert report["results"][0]["name"] == "privileges"
