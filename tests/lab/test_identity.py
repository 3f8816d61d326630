"""Teardown acts only on the objects a lab instance made, by kernel identity
and instance id, never on objects that merely carry the same names."""

from __future__ import annotations

import json
from pathlib import Path

from netlab.lab import lifecycle, netns, state
from tests.lab.scenarios import two_hosts, unique_lab


def test_journal_holds_each_objects_kernel_identity() -> None:
    lab = lifecycle.up(two_hosts(unique_lab("tji")))
    try:
        loaded = state.load(lab.name)
        assert loaded is not None
        spaces = [o for o in loaded.objects if o.kind == "netns"]
        assert len(spaces) == 2
        for obj in spaces:
            assert obj.ident == netns.inode_of(obj.name)
        links = [o for o in loaded.objects if o.kind == "link"]
        assert {o.name for o in links} == {"to-alice", "to-bob"}  # both ends, peers too
        assert all(isinstance(o.ident, int) and o.ident > 0 for o in links)
        lines = state.objects_path(lab.name).read_text().splitlines()
        assert any(json.loads(line)["ident"] is not None for line in lines)
    finally:
        lab.down()


def test_teardown_leaves_a_same_named_namespace_it_did_not_make() -> None:
    lab = lifecycle.up(two_hosts(unique_lab("tjn")))
    alice = lab.plan.hosts["alice"].namespace
    bob = lab.plan.hosts["bob"].namespace
    replaced = False
    try:
        netns.remove(alice)
        netns.create(alice)  # someone else's namespace under the lab's name
        replaced = True
        report = lab.down()
        assert netns.exists(alice), "a namespace the lab did not make was removed"
        assert not netns.exists(bob)
        assert any(alice in problem and "not the one this lab made" in problem
                   for problem in report.problems), report.problems
    finally:
        if replaced:
            netns.remove(alice)
        lab.down()


def test_down_clears_a_run_dir_an_up_left_before_its_journal_began(run_root: Path) -> None:
    """SIGKILL between making the lab's directory and writing its state."""
    name = unique_lab("tjd")
    (run_root / name).mkdir()
    (run_root / name / "state.tmp").write_text("{")
    report = lifecycle.down(name)
    assert not (run_root / name).exists()
    assert report.removed == [f"run dir {run_root / name} (stopped before its journal began: "
                              "nothing else was made)"]
