"""labcore.priority: the ladder's order, and what a real process gets on each rung."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labcore.priority import AGENT, DECISION_WAIT, ENDPOINT, LADDER, SHAPING, Rung

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, os, sys
from labcore import priority
rung = getattr(priority, sys.argv[1])
got = priority.raise_priority(sys.argv[2], rung)
print(json.dumps({"policy": got.policy, "slack": got.timer_slack_ns,
                  "fifo": os.sched_getscheduler(0) == os.SCHED_FIFO,
                  "rt": os.sched_getparam(0).sched_priority,
                  "nice": os.getpriority(os.PRIO_PROCESS, 0)}))
"""


def _probe(rung: Rung, want: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", PROBE, rung.name.upper(), want], cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                         text=True, timeout=30, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_the_ladder_puts_shaping_above_the_agent_above_the_endpoints() -> None:
    assert LADDER == (SHAPING, AGENT, DECISION_WAIT, ENDPOINT)
    assert SHAPING.fifo is not None and AGENT.fifo is not None
    assert DECISION_WAIT.fifo is not None
    assert SHAPING.fifo > AGENT.fifo > DECISION_WAIT.fifo > 0 and ENDPOINT.fifo is None
    assert SHAPING.nice < AGENT.nice < ENDPOINT.nice == 0  # the fallback keeps the order
    assert DECISION_WAIT.nice == 0  # a short wait never takes a nice value it keeps


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO needs CAP_SYS_NICE")
def test_each_rung_gets_its_fifo_priority() -> None:
    shaping, agent, endpoint = (_probe(r, "fifo") for r in (SHAPING, AGENT, ENDPOINT))
    assert shaping == {"policy": "fifo", "slack": 1, "fifo": True, "rt": SHAPING.fifo, "nice": 0}
    assert agent == {"policy": "fifo", "slack": 1, "fifo": True, "rt": AGENT.fifo, "nice": 0}
    # endpoints stay where any application runs; asking for fifo gives them nothing
    assert endpoint == {"policy": "none", "slack": 1, "fifo": False, "rt": 0, "nice": 0}


@pytest.mark.skipif(os.geteuid() != 0, reason="a negative nice needs CAP_SYS_NICE")
def test_the_nice_fallback_keeps_the_same_order() -> None:
    shaping, agent = _probe(SHAPING, "nice"), _probe(AGENT, "nice")
    assert (shaping["policy"], shaping["nice"]) == ("nice", SHAPING.nice)
    assert (agent["policy"], agent["nice"]) == ("nice", AGENT.nice)
    assert _probe(SHAPING, "none")["policy"] == "none"


WAIT_PROBE = """
import json, os
from labcore.priority import DecisionWait
wait = DecisionWait()
wait.raise_()
raised = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
wait.lower()
lowered = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
print(json.dumps({"active": wait.active, "raised": raised, "lowered": lowered}))
"""


def _wait_probe(*prefix: str) -> dict[str, object]:
    out = subprocess.run([*prefix, sys.executable, "-c", WAIT_PROBE], cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                         text=True, timeout=30, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping CAP_SYS_NICE needs it first")
def test_a_decision_wait_climbs_where_the_process_may_and_comes_back_down() -> None:
    """With CAP_SYS_NICE (root; a lab's flow keeps it where RLIMIT_RTPRIO cannot be
    raised) the wait climbs to the rung and back to normal; without it, and with
    RLIMIT_RTPRIO 0, it stays normal; with RLIMIT_RTPRIO at the rung (where this
    machine lets root raise it) it climbs again."""
    fifo, other, rung = os.SCHED_FIFO, os.SCHED_OTHER, DECISION_WAIT.fifo
    assert _wait_probe() == {"active": True, "raised": [fifo, rung], "lowered": [other, 0]}
    without_nice = ["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice"]
    refused = _wait_probe("prlimit", "--rtprio=0", *without_nice)
    assert refused == {"active": False, "raised": [other, 0], "lowered": [other, 0]}
    if subprocess.run(["prlimit", f"--rtprio={rung}", "true"]).returncode == 0:
        allowed = _wait_probe("prlimit", f"--rtprio={rung}", *without_nice)
        assert allowed == {"active": True, "raised": [fifo, rung], "lowered": [other, 0]}


FREEZE_PROBE = """
import gc, json, weakref
from labcore.priority import freeze_start_up_heap
before = len(gc.get_objects())
freeze_start_up_heap()
frozen = gc.get_freeze_count()
class Node:
    pass
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after set-up
alive = weakref.ref(a)
del a, b
collected = gc.collect()
print(json.dumps({"before": before, "frozen": frozen, "tracked": len(gc.get_objects()),
                  "cycle_freed": alive() is None and collected >= 2}))
"""


def test_the_start_up_heap_leaves_full_collections_and_later_garbage_does_not() -> None:
    out = subprocess.run([sys.executable, "-c", FREEZE_PROBE], cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                         text=True, timeout=30, check=True)
    got = json.loads(out.stdout)
    assert got["frozen"] >= 0.9 * got["before"]  # what set-up made is no longer walked
    assert got["tracked"] < 0.1 * got["frozen"]
    assert got["cycle_freed"]  # garbage made afterwards is still collected
