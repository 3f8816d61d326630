"""The tc shapers against the real kernel, on a veth between two namespaces."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from bench.shaping_accuracy import VethPair, veth_pair
from shaping.errors import ShapingError
from shaping.spec import LinkShape, QueueLimit
from shaping.tc import make_shaper

pytestmark = pytest.mark.skipif(
    subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0",
    reason="needs root",
)


@pytest.fixture(scope="module")
def pair() -> Iterator[VethPair]:
    with veth_pair("nlta-k", subnet=78) as made:
        yield made


def _tree(ipr: Any, ifname: str) -> tuple[dict[int, Any], dict[int, Any]]:
    index = ipr.link_lookup(ifname=ifname)[0]
    qdiscs = {m["handle"]: m for m in ipr.get_qdiscs(index=index) if m["index"] == index}
    classes = {m["handle"]: m for m in ipr.get_classes(index=index) if m["index"] == index}
    return qdiscs, classes


def _htb_rate_bytes(cls: Any) -> int:
    parms = cls.get_attr("TCA_OPTIONS").get_attr("TCA_HTB_PARMS")
    return int(parms["rate"])


def _blast_udp(pair: VethPair, count: int, size: int = 1000) -> None:
    """Send datagrams from the sender namespace (one first, to resolve ARP)."""
    ns = ["ip", "netns", "exec", pair.sender_ns]
    # SO_SNDBUFFORCE (32): queued datagrams count against the socket's buffer,
    # which would otherwise block the sender after ~100 of them.
    code = ("import socket,time;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
            "s.setsockopt(socket.SOL_SOCKET,32,1<<24);"
            f"a=('{pair.receiver_ip}',9);s.sendto(b'x',a);time.sleep(0.2);"
            f"[s.sendto(b'x'*{size},a) for _ in range({count})]")
    subprocess.run([*ns, "python3", "-c", code], check=True)


def test_htb_tree_change_keeps_handles_stats_and_queue(pair: VethPair) -> None:
    ipr, ifname = pair.sender_ipr, pair.sender_if
    shaper = make_shaper("htb", ipr, ifname, netem=False)
    shaper.apply(LinkShape(rate_bps=1_000_000, queue=QueueLimit(packets=1000)))
    try:
        qdiscs, classes = _tree(ipr, ifname)
        assert qdiscs[0x10000].get_attr("TCA_KIND") == "htb"
        assert qdiscs[0x100000].get_attr("TCA_KIND") == "pfifo"
        assert qdiscs[0x100000]["parent"] == 0x10010
        assert _htb_rate_bytes(classes[0x10010]) == 1_000_000 // 8
        link = ipr.get_links(ipr.link_lookup(ifname=ifname)[0])[0]
        assert link.get("IFLA_GSO_MAX_SEGS") == 1

        _blast_udp(pair, 300)  # ~310 kB: 2.5 s of queue at 1 Mbit/s
        before = shaper.stats()
        assert before["backlog_packets"] > 100, before
        shaper.change(LinkShape(rate_bps=2_000_000, queue=QueueLimit(packets=1000)))
        after = shaper.stats()
        qdiscs, classes = _tree(ipr, ifname)

        assert set(qdiscs) >= {0x10000, 0x100000}  # same handles
        assert _htb_rate_bytes(classes[0x10010]) == 2_000_000 // 8
        assert after["packets"] >= before["packets"]  # statistics not reset
        assert after["drops"] == before["drops"] == 0
        # Nothing flushed: what left since is bounded by ~20 ms at 2 Mbit/s.
        assert after["backlog_packets"] >= before["backlog_packets"] - 10, (before, after)
    finally:
        shaper.remove()
    qdiscs, _ = _tree(ipr, ifname)
    assert 0x10000 not in qdiscs
    link = ipr.get_links(ipr.link_lookup(ifname=ifname)[0])[0]
    assert link.get("IFLA_GSO_MAX_SEGS") > 1  # offloads restored


def test_tbf_tree_and_byte_queue(pair: VethPair) -> None:
    ipr, ifname = pair.sender_ipr, pair.sender_if
    shaper = make_shaper("tbf", ipr, ifname, netem=False)
    shaper.apply(LinkShape(rate_bps=1_000_000, queue=QueueLimit(bytes=20_000)))
    try:
        qdiscs, _ = _tree(ipr, ifname)
        assert qdiscs[0x10000].get_attr("TCA_KIND") == "tbf"
        leaf = qdiscs[0x110000]
        assert leaf.get_attr("TCA_KIND") == "bfifo" and leaf["parent"] == 0x10001
        _blast_udp(pair, 200)  # 200 x 1042 B against a 20 kB queue
        stats = shaper.stats()
        assert stats["drops"] > 100, stats  # the byte bound held
        assert stats["backlog_bytes"] <= 20_000, stats
        shaper.change(LinkShape(rate_bps=3_000_000, queue=QueueLimit(bytes=40_000)))
        qdiscs, _ = _tree(ipr, ifname)
        parms = qdiscs[0x10000].get_attr("TCA_OPTIONS").get_attr("TCA_TBF_PARMS")
        assert int(parms["rate"]) == 3_000_000 // 8
        assert int(parms["limit"]) == 40_000
        assert set(qdiscs) >= {0x10000, 0x110000}
        assert shaper.stats()["drops"] == stats["drops"]  # counters kept
    finally:
        shaper.remove()


@pytest.mark.parametrize("strategy", ["htb", "tbf"])
def test_change_200_times(pair: VethPair, strategy: str) -> None:
    """change() in a tight loop (no timing assertion): every call lands."""
    ipr, ifname = pair.sender_ipr, pair.sender_if
    shaper = make_shaper(strategy, ipr, ifname, netem=False)  # type: ignore[arg-type]
    shaper.apply(LinkShape(rate_bps=10_000_000, queue=QueueLimit(packets=100)))
    try:
        for i in range(200):
            shaper.change(LinkShape(rate_bps=1_000_000 + 50_000 * i,
                                    queue=QueueLimit(packets=100 + i % 7)))
        qdiscs, classes = _tree(ipr, ifname)
        last_rate = (1_000_000 + 50_000 * 199) // 8
        if strategy == "htb":
            assert _htb_rate_bytes(classes[0x10010]) == last_rate
        else:
            parms = qdiscs[0x10000].get_attr("TCA_OPTIONS").get_attr("TCA_TBF_PARMS")
            assert int(parms["rate"]) == last_rate
        leaf = qdiscs[0x100000].get_attr("TCA_OPTIONS")
        assert leaf is not None
    finally:
        shaper.remove()


def test_missing_interface_is_reported(pair: VethPair) -> None:
    with pytest.raises(ShapingError, match="does not exist"):
        make_shaper("htb", pair.sender_ipr, "nlta-nothere", netem=False)


def test_kernel_refusal_carries_errno_and_fix(pair: VethPair) -> None:
    """A leaf swap to netem on this netem-less kernel fails with the kernel's reason.

    Only meaningful where sch_netem is absent; with netem the swap succeeds.
    """
    ipr, ifname = pair.sender_ipr, pair.sender_if
    shaper = make_shaper("htb", ipr, ifname, netem=True)  # claim netem exists
    shaper.apply(LinkShape(rate_bps=1_000_000))
    try:
        shaper.change(LinkShape(rate_bps=1_000_000, delay_s=0.01))
    except ShapingError as err:
        assert err.errno == 2 and "netem" in err.what
        assert err.fix is not None and "sch_netem" in err.fix
    else:
        qdiscs, _ = _tree(ipr, ifname)
        assert qdiscs[0x120000].get_attr("TCA_KIND") == "netem"
    finally:
        shaper.remove()
