"""Fast checks of the VM orchestration's logic (no VMs: these run in CI)."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from endpoints.rtc import logs as rtc_logs
from endpoints.tcp import logs as tcp_logs
from netlab.errors import NetlabError
from netlab.lab.plan import plan_lab
from netlab.scenario import load_scenario
from netlab.vagrant import clock, logclock
from netlab.vagrant.node import split_module_argv
from netlab.vagrant.orchestrate import VM_PYTHON, build_jobs, node_setup_job, ssh_hostnames
from netlab.vagrant.topology import build_topology, endpoint_hosts, fold_routers, guest_routes

SMOKE = Path(__file__).with_name("smoke.yaml")
SUBNET = ipaddress.IPv4Network("10.201.0.0/16")


def _plan():  # type: ignore[no-untyped-def]
    scenario = load_scenario(SMOKE)
    return scenario, plan_lab(scenario, SUBNET)


def test_topology_mirrors_the_plan() -> None:
    _, plan = _plan()
    topo = build_topology(plan, source="smoke.yaml", project="/p", wheels="/w")
    assert sorted(topo.vms) == ["alice", "bob", "router"]
    assert len(topo.vms["router"]) == 2
    nics = [n for nics in topo.vms.values() for n in nics]
    assert len({n.mac for n in nics}) == len(nics)  # NICs are found by MAC: unique
    by_link: dict[str, list[object]] = {}
    for nic in nics:
        by_link.setdefault(nic.link, []).append(nic)
    for a, b in by_link.values():  # type: ignore[misc]
        assert (a.local_port, a.remote_port) == (b.remote_port, b.local_port)  # a tunnel
    plan_addresses = {str(i.address) for i in plan.interfaces()}
    assert {str(n.address) for n in nics} == plan_addresses
    data = topo.to_json()
    assert json.loads(json.dumps(data))["vms"][0]["nics"][0]["mac"].startswith("52:54:00:")


def test_topology_refuses_more_vms_than_allowed() -> None:
    _, plan = _plan()
    with pytest.raises(NetlabError) as info:
        build_topology(plan, source="smoke.yaml", project="/p", wheels="/w", max_vms=2)
    assert "3 hosts" in info.value.what and info.value.fix


def test_default_route_becomes_the_lab_subnet() -> None:
    _, plan = _plan()
    routes = guest_routes(plan, "alice")
    assert routes and all(dest == str(SUBNET) for dest, _ in routes)
    assert guest_routes(plan, "router") == []  # directly attached to both links
    # in a folded host's namespace there is no management NIC: the default route stays
    assert [dest for dest, _ in guest_routes(plan, "alice", own_vm=False)] == ["0.0.0.0/0"]


def test_jobs_put_each_process_and_replayer_on_its_vm() -> None:
    scenario, plan = _plan()
    topo = build_topology(plan, source="smoke.yaml", project="/p", wheels="/w").to_json()
    jobs, flows = build_jobs(scenario, plan, topo, "/var/tmp/x")
    assert [f.flow.id for f in flows] == ["rtc-0", "tcp-1"]
    assert {p["name"].split("/")[-1] for p in jobs["bob"]["processes"]} == {"receiver"}
    assert {p["name"].split("/")[-1] for p in jobs["alice"]["processes"]} == {"sender"}
    assert jobs["router"]["processes"] == []
    replays = {(r["link"], r["direction"]) for r in jobs["router"]["replays"]}
    assert replays == {("bottleneck", "up")}  # the traced direction, on the router
    setup = node_setup_job(plan, build_topology(plan, source="s", project="/p", wheels="/w"),
                           "router", SMOKE.parent)
    assert len(setup["shapes"]) == 2  # delay-only access down and the traced bottleneck up
    assert {s["shape"]["delay_s"] for s in setup["shapes"]} >= {0.02}
    assert node_setup_job(plan, build_topology(plan, source="s", project="/p", wheels="/w"),
                          "bob", SMOKE.parent)["shapes"] == []
    tcp_sender = next(p for p in jobs["alice"]["processes"] if "tcp-1" in p["name"])
    assert tcp_sender["argv"][0] == VM_PYTHON
    assert tcp_sender["start_s"] == pytest.approx(12.3)
    # senders set up early and read their start from stdin, as in namespaces; traces
    # start at the run's zero, with the senders, after the receivers' head start
    assert tcp_sender["gate"] and tcp_sender["argv"][-1] == "--wait-start"
    assert jobs["router"]["zero_s"] == pytest.approx(0.3)
    assert str(plan.hosts["bob"].address) in " ".join(tcp_sender["argv"])
    # the node launches every process's module with -P, from the job's argv
    python, module, args = split_module_argv(tcp_sender["argv"])
    assert (python, module) == (VM_PYTHON, "endpoints.tcp.sender_app") and "--dest" in args
    with pytest.raises(ValueError):
        split_module_argv([VM_PYTHON, "script.py"])


def test_ssh_config_hostnames() -> None:
    text = ("Host alice\n  HostName 192.168.121.5\n  User vagrant\n\n"
            "Host bob\n  HostName 192.168.121.9\n")
    assert ssh_hostnames(text) == {"alice": "192.168.121.5", "bob": "192.168.121.9"}


def test_offset_estimate_prefers_the_fastest_exchanges() -> None:
    offset = 5_000_000_000
    exchanges = [clock.Exchange(t1, t1 + 100_000 + offset, t1 + 110_000 + offset, t1 + 210_000)
                 for t1 in range(0, 10_000_000, 1_000_000)]
    # a slow one whose delay sits on one leg only: biased by 4 ms
    exchanges.append(clock.Exchange(0, 8_100_000 + offset, 8_110_000 + offset, 8_210_000))
    est = clock.estimate(exchanges)
    assert est.offset_ns == pytest.approx(offset)
    assert est.uncertainty_ns == pytest.approx(100_000)


def test_clock_model_corrects_drift_both_ways() -> None:
    before = clock.OffsetEstimate(1_000_000.0, 50_000.0, at_ns=0, exchanges=10)
    after = clock.OffsetEstimate(1_000_000.0 + 100.0 * 10, 50_000.0, at_ns=10_000_000_000,
                                 exchanges=10)  # 0.1 ppm... 100 ns per second
    model = clock.ClockModel(before, after)
    assert model.drift_ppm == pytest.approx(0.1)
    for driver in (0, 3_000_000_000, 20_000_000_000):
        assert model.to_driver(model.to_vm(driver)) == pytest.approx(driver, abs=1)


def test_clock_exchange_over_udp() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                clock.answer(server)
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve)
    thread.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        exchanges = clock.measure(client, server.getsockname(), count=10, interval_s=0.001)
    finally:
        stop.set()
        thread.join()
        server.close()
        client.close()
    assert len(exchanges) >= 8
    est = clock.estimate(exchanges)
    assert abs(est.offset_ns) <= est.uncertainty_ns + 1  # one clock: zero within the bound


def test_logs_move_to_the_driver_clock(tmp_path: Path) -> None:
    flow = tmp_path / "flow"
    for role in ("sender", "receiver"):
        (flow / role).mkdir(parents=True)
    writer = rtc_logs.LogWriter(flow / "receiver" / "receiver_packets.bin",
                                rtc_logs.RECEIVER_PACKETS)
    writer.append(2_000_000_000, 7_000_000_000, 1, 1, 1, 1, 1200, 12, 96, 0)
    writer.append(2_010_000_000, -1, 2, 1, 1, 2, 1200, 12, 96, 0)
    writer.close()
    bins = np.array([(3_000_000_000, 1500)], dtype=tcp_logs.RECV_BIN_DTYPE)
    (flow / "receiver" / tcp_logs.RECV_BINS_FILE).write_bytes(bins.tobytes())
    sender = clock.ClockModel(clock.OffsetEstimate(6_980_000_000.0, 1e5, 0, 10))  # VM ahead
    receiver = clock.ClockModel(clock.OffsetEstimate(1_000_000_000.0, 1e5, 0, 10))
    assert logclock.to_driver_clock(flow, sender, receiver) == 3
    packets = rtc_logs.read_kind(flow / "receiver", rtc_logs.RECEIVER_PACKETS)
    assert list(packets["arrival_ns"]) == [1_000_000_000, 1_010_000_000]
    assert list(packets["send_ns"]) == [20_000_000, -1]  # one-way delay now 980 ms; no stamp stays
    moved = tcp_logs.read_recv_bins(flow / "receiver")
    assert int(moved["bin_start_ns"][0]) == 2_000_000_000


def _folded():  # type: ignore[no-untyped-def]
    scenario, plan = _plan()
    placement = fold_routers(plan, endpoint_hosts(scenario))
    return scenario, plan, build_topology(plan, source="smoke.yaml", project="/p", wheels="/w",
                                          max_vms=2, placement=placement)


def test_a_router_folds_into_the_vm_its_traced_egress_leads_to() -> None:
    _, plan, topo = _folded()
    assert topo.placement == {"alice": "alice", "router": "bob", "bob": "bob"}
    assert list(topo.vms) == ["alice", "bob"]
    # the bottleneck (router -> bob, traced) is a veth inside bob's VM, named as in the plan
    (inner,) = topo.inner_links
    assert (inner.link, inner.vm) == ("bottleneck", "bob")
    assert {(host, ifname) for host, ifname, _ in inner.ends} == {("router", "to-bob"),
                                                                  ("bob", "to-router")}
    # the access link is a tunnel from alice's VM to bob's, whose end is the router's
    assert [n.link for n in topo.vms["alice"]] == ["access"] == [n.link for n in topo.vms["bob"]]
    router_end = next(i for i in plan.hosts["router"].interfaces if i.link == "access")
    assert topo.vms["bob"][0].address == router_end.address
    data = topo.to_json()
    assert [vm["hosts"] for vm in data["vms"]] == [["alice"], ["router", "bob"]]
    assert data["inner_links"][0]["vm"] == "bob"
    with pytest.raises(NetlabError):  # three VMs unfolded: over the limit of two
        build_topology(plan, source="smoke.yaml", project="/p", wheels="/w", max_vms=2)


def test_folded_setup_puts_the_router_in_a_namespace_of_its_own() -> None:
    _, plan, topo = _folded()
    job = node_setup_job(plan, topo, "bob", SMOKE.parent)
    assert job["namespaces"] == ["router"]
    assert job["veths"] == [{"link": "bottleneck", "ends": [
        {"namespace": "router", "ifname": "to-bob"}, {"namespace": None, "ifname": "to-router"}]}]
    by_name = {(i["namespace"], i["ifname"]): i for i in job["interfaces"]}
    moved = by_name[("router", "to-alice")]  # the tunnel NIC, moved and renamed as in the plan
    assert moved["mac"] == topo.vms["bob"][0].mac
    assert "mac" not in by_name[(None, "to-router")]  # bob's veth end
    shapes = {(s["namespace"], s.get("ifname")) for s in job["shapes"]}
    assert shapes == {("router", "to-bob"), ("router", "to-alice")}
    assert {"namespace": "router", "key": "net.ipv4.ip_forward", "value": "1"} in job["sysctls"]
    # bob's default route (the VM's own host) becomes the lab's subnet via the router
    assert [(r["namespace"], r["destination"]) for r in job["routes"]] == [(None, str(SUBNET))]
    alice = node_setup_job(plan, topo, "alice", SMOKE.parent)
    assert alice["namespaces"] == [] and alice["veths"] == [] and alice["shapes"] == []
    assert [i["mac"] for i in alice["interfaces"]] == [topo.vms["alice"][0].mac]


def test_folded_jobs_run_the_replayer_in_the_routers_namespace() -> None:
    scenario, plan, topo = _folded()
    jobs, flows = build_jobs(scenario, plan, topo.to_json(), "/var/tmp/x")
    assert set(jobs) == {"alice", "bob"}
    (replay,) = jobs["bob"]["replays"]
    assert (replay["namespace"], replay["ifname"], replay["link"]) == ("router", "to-bob",
                                                                       "bottleneck")
    assert jobs["alice"]["replays"] == []
    assert {p["name"].split("/")[-1] for p in jobs["bob"]["processes"]} == {"receiver"}
    assert len(flows) == 2


def test_only_routers_beside_an_endpoint_fold(tmp_path: Path) -> None:
    """a - r1 - r2 - r3 - b: r1 and r3 join a's and b's VMs, r2 keeps its own."""
    source = tmp_path / "line.yaml"
    source.write_text(
        "name: nltv-line\nduration: 5s\nhosts: [a, r1, r2, r3, b]\nlinks:\n"
        "  - endpoints: [a, r1]\n  - endpoints: [r1, r2]\n  - endpoints: [r2, r3]\n"
        "  - endpoints: [r3, b]\nflows:\n  - {kind: tcp, from: a, to: b}\n")
    scenario = load_scenario(source)
    plan = plan_lab(scenario, SUBNET)
    placement = fold_routers(plan, endpoint_hosts(scenario))
    assert placement == {"a": "a", "r1": "a", "r2": "r2", "r3": "b", "b": "b"}
    topo = build_topology(plan, source="line.yaml", project="/p", wheels="/w",
                          placement=placement)
    assert list(topo.vms) == ["a", "r2", "b"] and len(topo.inner_links) == 2
    # r1, in a's VM, routes in its own namespace exactly as in the plan
    job = node_setup_job(plan, topo, "a")
    assert [(r["destination"], r["via"]) for r in job["routes"] if r["namespace"] == "r1"] == [
        (str(r.destination), str(r.via)) for r in plan.hosts["r1"].routes]
