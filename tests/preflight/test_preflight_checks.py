"""Scenario checks: backend choice, TCP CCs, lab-name and address collisions, error text."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from labcore.netlink import netns
from netlab import paths
from netlab.errors import NetlabError
from netlab.preflight import (
    KernelCapabilities,
    PreflightError,
    ProbeResult,
    choose_backend,
    choose_subnet,
    probe_kernel,
    raise_on_failures,
    run_preflight,
)
from netlab.preflight.capabilities import NETNS_DIR
from netlab.preflight.checks import (
    FIX_NETEM,
    FIX_TUN,
    check_addresses,
    check_backend,
    check_lab_not_up,
    check_tcp_cc,
    machine_report,
)
from netlab.scenario.model import Direction, Flow, Host, Link, Scenario
from shaping.spec import LinkShape

SOURCE = Path("/tmp/nltb-lab.yaml")


def scenario(
    name: str = "nltb-lab",
    up: LinkShape | None = None,
    down: LinkShape | None = None,
    flows: tuple[Flow, ...] = (),
    subnet: IPv4Network | None = None,
) -> Scenario:
    return Scenario(
        name=name,
        duration_s=10.0,
        seed=1,
        hosts=(Host("alice"), Host("bob")),
        links=(
            Link(
                "alice-bob",
                "alice",
                "bob",
                Direction(up or LinkShape(rate_bps=10_000_000)),
                Direction(down or LinkShape(rate_bps=10_000_000)),
            ),
        ),
        flows=flows,
        subnet=subnet,
        source=SOURCE,
    )


def caps(**changes: object) -> KernelCapabilities:
    """A kernel's answers as data: everything present unless changed."""
    base = KernelCapabilities(
        kernel_release="test",
        boot_id="test",
        probed=True,
        qdiscs={"netem": True, "htb": True, "tbf": True},
        link_kinds={"veth": True, "ifb": True},
        tun=True,
        setns=True,
        tcp_cc_available=("reno", "cubic", "bbr"),
        tcp_cc_allowed=("reno", "cubic"),
        tcp_cc_default="cubic",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


NO_NETEM = {"qdiscs": {"netem": False, "htb": True, "tbf": True}}
DELAYED = LinkShape(rate_bps=10_000_000, delay_s=0.020)


# ---------------------------------------------------------------- backend choice


def test_choose_backend() -> None:
    plain = scenario()
    delayed = scenario(up=DELAYED)
    lossy = scenario(down=LinkShape(loss=0.01))
    assert choose_backend(delayed, caps(), None) == "kernel"
    assert choose_backend(delayed, caps(**NO_NETEM), None) == "user"
    assert choose_backend(delayed, caps(**NO_NETEM), "auto") == "user"
    assert choose_backend(lossy, caps(**NO_NETEM), None) == "user"
    assert choose_backend(plain, caps(**NO_NETEM), None) == "kernel"
    assert choose_backend(delayed, caps(**NO_NETEM), "kernel") == "kernel"
    assert choose_backend(plain, caps(), "user") == "user"
    no_shaper = caps(qdiscs={"netem": True, "htb": False, "tbf": False})
    assert choose_backend(plain, no_shaper, None) == "user"
    only_tbf = caps(qdiscs={"netem": True, "htb": False, "tbf": True})
    assert choose_backend(plain, only_tbf, None) == "kernel"
    unprobed = KernelCapabilities(kernel_release="x", boot_id="y", probed=False)
    assert choose_backend(delayed, unprobed, None) == "user"
    with pytest.raises(NetlabError, match="unknown backend 'ns3'"):
        choose_backend(plain, caps(), "ns3")


def test_auto_without_netem_says_user_space_link_is_used() -> None:
    results = check_backend(scenario(up=DELAYED), caps(**NO_NETEM), None)
    assert results == [
        ProbeResult(
            "backend",
            True,
            "user-space link backend will be used: the kernel has no netem for the links' "
            "delay, jitter or loss",
            severity="info",
        )
    ]


def test_auto_without_netem_and_tun_fails() -> None:
    broken = caps(qdiscs={"netem": False, "htb": True, "tbf": True}, tun=False,
                  notes={"tun": "/dev/net/tun: No such file or directory"})
    (result,) = check_backend(scenario(up=DELAYED), broken, None)
    assert result.failed
    assert result.detail == (
        "the user-space link backend needs TUN devices, which are unavailable "
        "(/dev/net/tun: No such file or directory)"
    )
    assert result.fix == FIX_TUN


def test_explicit_kernel_without_netem_names_link_and_fields() -> None:
    up = LinkShape(rate_bps=10_000_000, delay_s=0.020, jitter_s=0.002)
    down = LinkShape(rate_bps=10_000_000, loss=0.005)
    results = check_backend(scenario(up=up, down=down), caps(**NO_NETEM), "kernel")
    with pytest.raises(PreflightError) as raised:
        raise_on_failures(results)
    assert raised.value.render() == (
        "error: preflight found 2 problems; nothing was created\n"
        "  - qdisc netem: link alice-bob (links[0]) asks for delay 20 ms, jitter 2 ms on 'up'; "
        "the kernel backend needs netem for that and this kernel has no netem qdisc\n"
        "    where: /tmp/nltb-lab.yaml: links[0].up.delay\n"
        "    fix: use `--backend user` (the user-space link emulates delay, jitter and loss), "
        "or load netem: `modprobe sch_netem`\n"
        "  - qdisc netem: link alice-bob (links[0]) asks for loss 0.5% on 'down'; "
        "the kernel backend needs netem for that and this kernel has no netem qdisc\n"
        "    where: /tmp/nltb-lab.yaml: links[0].down.loss\n"
        "    fix: use `--backend user` (the user-space link emulates delay, jitter and loss), "
        "or load netem: `modprobe sch_netem`"
    )
    assert all(r.fix == FIX_NETEM for r in raised.value.failures)


def test_missing_htb_and_tbf_is_an_error_for_the_kernel_backend() -> None:
    none = caps(qdiscs={"netem": True, "htb": False, "tbf": False})
    (result,) = check_backend(scenario(), none, "kernel")
    assert result.failed and result.name == "rate shaper"
    assert result.detail == (
        "this kernel has neither the htb nor the tbf qdisc, which the kernel backend shapes "
        "rate with"
    )
    assert result.where == "/tmp/nltb-lab.yaml: links"
    # One of the two is enough.
    assert not any(r.failed for r in check_backend(scenario(), caps(
        qdiscs={"netem": True, "htb": False, "tbf": True}), "kernel"))


def test_single_failure_renders_like_any_netlab_error() -> None:
    failure = ProbeResult("x", False, "it broke", fix="mend it", where="f.yaml: a.b")
    with pytest.raises(PreflightError) as raised:
        raise_on_failures([failure, ProbeResult("y", False, "meh", severity="warning")])
    assert isinstance(raised.value, NetlabError)
    assert raised.value.where == "f.yaml: a.b" and raised.value.fix == "mend it"
    assert raised.value.render() == (
        "error: preflight found 1 problem; nothing was created\n"
        "  - x: it broke\n"
        "    where: f.yaml: a.b\n"
        "    fix: mend it"
    )
    raise_on_failures([ProbeResult("y", False, "meh", severity="warning")])  # no raise


# ---------------------------------------------------------------- TCP congestion control


def _tcp(i: int, cc: str) -> Flow:
    return Flow(f"f{i}", "tcp", "alice", "bob", options={"cc": cc})


def test_unknown_cc_names_the_flow_field() -> None:
    flows = (Flow("v", "rtc", "alice", "bob"), _tcp(1, "nltbfakecc"), _tcp(2, "cubic"))
    (result,) = check_tcp_cc(scenario(flows=flows), probe_kernel())
    available = ", ".join(probe_kernel().tcp_cc_available)
    assert result.failed
    assert result.where == "/tmp/nltb-lab.yaml: flows[1].cc"
    assert result.detail == (
        f"flow f1: TCP congestion control 'nltbfakecc' is not available in this kernel "
        f"(available: {available})"
    )
    assert result.fix == f"`modprobe tcp_nltbfakecc`, or pick one of: {available}"


def test_available_cc_outside_allowed_is_fine_for_root() -> None:
    kernel = probe_kernel()
    flows = tuple(_tcp(i, cc) for i, cc in enumerate(kernel.tcp_cc_available))
    assert check_tcp_cc(scenario(flows=flows), kernel) == []


def test_available_cc_outside_allowed_fails_without_net_admin() -> None:
    kernel = probe_kernel()
    restricted = [cc for cc in kernel.tcp_cc_available if cc not in kernel.tcp_cc_allowed]
    if not restricted:
        pytest.skip("every available CC is allowed here")
    code = (
        "import sys\n"
        "from netlab.preflight import probe_kernel\n"
        "from netlab.preflight.checks import check_tcp_cc\n"
        "from netlab.scenario.model import Flow, Scenario\n"
        f"flow = Flow('f0', 'tcp', 'a', 'b', options={{'cc': {restricted[0]!r}}})\n"
        "s = Scenario('nltb-x', 1.0, 1, (), (), (flow,))\n"
        "(r,) = check_tcp_cc(s, probe_kernel(use_disk_cache=False))\n"
        "print(r.detail); print(r.fix); print(r.where)\n"
    )
    out = subprocess.run(
        ["setpriv", "--inh-caps=-all", "--bounding-set=-net_admin", sys.executable, "-c", code],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    allowed = " ".join((*kernel.tcp_cc_allowed, restricted[0]))
    assert out == [
        f"flow f0: '{restricted[0]}' is available but not in "
        "net.ipv4.tcp_allowed_congestion_control, and only CAP_NET_ADMIN may use it",
        f'run as root, or `sysctl -w net.ipv4.tcp_allowed_congestion_control="{allowed}"`',
        "nltb-x: flows[0].cc",
    ]


# ---------------------------------------------------------------- lab already up


@pytest.fixture
def lab_prefix(monkeypatch: pytest.MonkeyPatch) -> str:
    """Host namespaces of test labs carry this engineer's prefix."""
    monkeypatch.setattr(paths, "NAMESPACE_PREFIX", "nltb-")
    return "nltb-"


def _write_state(run_root: Path, lab: str, data: object) -> Path:
    """A lab's state as the journal writes it: metadata in state.json, one
    recorded object per line in objects.jsonl."""
    (run_root / lab).mkdir(exist_ok=True)
    path = run_root / lab / "state.json"
    if isinstance(data, dict):
        namespaces = data.pop("namespaces", [])
        data = {"lab": lab, "created": 0.0, **data}
        lines = [json.dumps({"kind": "netns", "name": ns}) for ns in namespaces
                 if isinstance(ns, str)] if isinstance(namespaces, list) else ["{torn"]
        (run_root / lab / "objects.jsonl").write_text("".join(f"{line}\n" for line in lines))
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_lab_with_live_owner_is_up(run_root: Path) -> None:
    path = _write_state(run_root, "nltb-lab", {"owner_pid": os.getpid(), "namespaces": []})
    (result,) = check_lab_not_up(scenario())
    assert result.failed
    assert result.detail == (
        f"a lab named 'nltb-lab' is already up: owner pid {os.getpid()} is alive"
    )
    assert result.where == str(path)
    assert result.fix == "`netlab down nltb-lab`"


def test_lab_with_dead_owner_but_live_namespace_is_up(run_root: Path, own_netns: str) -> None:
    _write_state(run_root, "nltb-lab", {"owner_pid": _dead_pid(), "namespaces": [own_netns, "x"]})
    (result,) = check_lab_not_up(scenario())
    assert result.failed
    assert result.detail == f"a lab named 'nltb-lab' is already up: namespaces {own_netns} exist"


def test_stale_state_is_only_a_warning(run_root: Path) -> None:
    for data in ({"owner_pid": _dead_pid(), "namespaces": ["nltb-gone"]},
                 {"owner_pid": "12", "namespaces": "nope"}):
        _write_state(run_root, "nltb-lab", data)
        (result,) = check_lab_not_up(scenario())
        assert not result.ok and result.severity == "warning", data
        assert result.detail.startswith("stale state file")


def test_garbled_state_is_an_error_that_says_what_to_remove(run_root: Path) -> None:
    """Nobody knows what a garbled journal's lab made: up must not replace it."""
    for data, why in (("{garbled", "Expecting property name enclosed in double quotes: "
                       "line 1 column 2 (char 1)"), ([1, 2], "not a netlab state object")):
        path = _write_state(run_root, "nltb-lab", data)
        (result,) = check_lab_not_up(scenario())
        assert result.failed
        assert result.detail == (f"the state file of lab 'nltb-lab' is unreadable ({why}); "
                                 "netlab does not know what the lab made, so it removes "
                                 "nothing of it")
        assert result.where == str(path)
        assert result.fix == ("remove what is left by hand ('ip netns list | grep nl-nltb-lab.', "
                              f"'ip netns del NAME'), then 'rm -r {path.parent}'")


def test_no_state_no_namespaces_is_free(run_root: Path) -> None:
    assert check_lab_not_up(scenario()) == [
        ProbeResult("lab name", True, "no lab named 'nltb-lab' is up")
    ]


@pytest.fixture
def leftover_host_namespace(lab_prefix: str) -> Iterator[str]:
    lab = f"lab{secrets.token_hex(2)}"
    name = f"{lab_prefix}{lab}.alice"
    netns.create(name)
    try:
        yield lab
    finally:
        netns.remove(name)


def test_leftover_host_namespace_blocks_up(run_root: Path, leftover_host_namespace: str) -> None:
    lab = leftover_host_namespace
    (result,) = check_lab_not_up(scenario(name=lab))
    assert result.failed
    ns = f"nltb-{lab}.alice"
    assert result.detail == (f"namespace {ns} already exists and no lab's journal records it "
                             "(netlab did not make it, or its state was removed)")
    assert result.fix == f"check what uses it (`ip netns pids {ns}`), then `ip netns del {ns}`"
    assert result.where == f"{NETNS_DIR}/{ns}"


def test_leftover_namespace_names_the_lab_whose_journal_holds_it(
        run_root: Path, leftover_host_namespace: str) -> None:
    lab = leftover_host_namespace
    ns = f"nltb-{lab}.alice"
    path = _write_state(run_root, "nltb-holder", {"owner_pid": _dead_pid(), "namespaces": [ns]})
    (result,) = check_lab_not_up(scenario(name=lab))
    assert result.detail == f"namespace {ns} already exists and belongs to lab 'nltb-holder'"
    assert result.fix == "`netlab down nltb-holder`"
    assert result.where == str(path)


# ---------------------------------------------------------------- addresses


def test_given_subnet_colliding_with_loopback_is_an_error(run_root: Path) -> None:
    (result,) = check_addresses(scenario(subnet=IPv4Network("127.0.0.0/16")))
    suggestion = choose_subnet("nltb-lab")
    assert result.failed
    assert result.where == "/tmp/nltb-lab.yaml: subnet"
    assert result.detail == (
        "subnet 127.0.0.0/16 overlaps this machine's address 127.0.0.1/8 on lo; "
        "route 127.0.0.0/8 dev lo table local"
    )
    assert result.fix == (
        f"pick a free range such as {suggestion}, or remove `subnet:` to let netlab choose one"
    )


def test_given_free_subnet_passes_and_overlap_with_a_lab_warns(run_root: Path) -> None:
    free = choose_subnet("nltb-lab")
    assert check_addresses(scenario(subnet=free)) == [
        ProbeResult("address range", True, f"{free} is free")
    ]
    _write_state(run_root, "other", {"subnet": str(free)})
    (result,) = check_addresses(scenario(subnet=free))
    assert result.severity == "warning" and not result.ok
    assert f"overlaps lab other ({free})" in result.detail


def test_subnet_option_gets_the_same_checks_as_the_scenarios(run_root: Path) -> None:
    """--subnet replaces the scenario's and is checked the same way, named as itself."""
    (result,) = check_addresses(scenario(), IPv4Network("127.0.0.0/16"))
    assert result.failed and result.where == "--subnet"
    assert result.detail.startswith("subnet 127.0.0.0/16 overlaps this machine's address")
    assert result.fix == (f"pick a free range such as {choose_subnet('nltb-lab')}, "
                          "or leave --subnet out to let netlab choose one")
    free = choose_subnet("nltb-lab")
    _write_state(run_root, "other", {"subnet": str(free)})
    (result,) = check_addresses(scenario(), free)
    assert result.severity == "warning" and result.where == "--subnet"
    assert f"overlaps lab other ({free})" in result.detail


def test_no_subnet_reports_the_chosen_one(run_root: Path) -> None:
    (result,) = check_addresses(scenario())
    assert result.ok and result.detail.startswith(str(choose_subnet("nltb-lab")))


# ---------------------------------------------------------------- whole preflight


def test_run_preflight_on_this_machine(run_root: Path) -> None:
    kernel = probe_kernel()
    results = run_preflight(scenario(up=DELAYED, flows=(_tcp(0, "reno"),)), kernel)
    raise_on_failures(results)  # this machine can run it
    names = [r.name for r in results]
    assert names[:2] == ["privileges", "setns"]
    assert "lab name" in names and "address range" in names
    backend = next(r for r in results if r.name == "backend")
    expected = "kernel" if kernel.netem else "user-space"
    assert backend.detail.startswith(expected)


def test_run_preflight_lists_every_problem_at_once(run_root: Path) -> None:
    _write_state(run_root, "nltb-lab", {"owner_pid": os.getpid()})
    bad = scenario(up=DELAYED, flows=(_tcp(0, "nltbfakecc"),),
                   subnet=IPv4Network("127.0.0.0/16"))
    with pytest.raises(PreflightError) as raised:
        raise_on_failures(run_preflight(bad, caps(**NO_NETEM), backend="kernel"))
    failed = [(f.name, f.where) for f in raised.value.failures]
    assert failed == [
        ("lab name", str(run_root / "nltb-lab" / "state.json")),
        ("address range", "/tmp/nltb-lab.yaml: subnet"),
        ("qdisc netem", "/tmp/nltb-lab.yaml: links[0].up.delay"),
        ("tcp congestion control", "/tmp/nltb-lab.yaml: flows[0].cc"),
    ]


def test_machine_report_fails_only_on_errors(run_root: Path) -> None:
    report = machine_report(caps(**NO_NETEM))
    netem = next(r for r in report if r.name == "qdisc netem")
    assert netem.severity == "warning" and not netem.failed
    no_tun = machine_report(caps(qdiscs={"netem": False, "htb": True, "tbf": True}, tun=False))
    assert next(r for r in no_tun if r.name == "qdisc netem").failed
