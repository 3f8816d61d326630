"""Dry run: the exact operations each strategy sends, and shape validation."""

from __future__ import annotations

import pytest

from shaping.errors import ShapingError
from shaping.spec import LinkShape, QueueLimit
from shaping.tc import DryRun, burst_bytes, default_queue, make_shaper

SEQUENCE = [
    ("apply", LinkShape(rate_bps=10_000_000, queue=QueueLimit(packets=100))),
    ("change", LinkShape(rate_bps=20_000_000, queue=QueueLimit(packets=100))),
    ("change", LinkShape(rate_bps=20_000_000, queue=QueueLimit(packets=100))),  # no-op
    ("change", LinkShape(rate_bps=20_000_000, queue=QueueLimit(bytes=60_000))),
    ("change", LinkShape(rate_bps=1_500_000, delay_s=0.02, jitter_s=0.0025, loss=0.01,
                         queue=QueueLimit(bytes=60_000))),
    ("change", LinkShape(rate_bps=2_000_000_000, queue=QueueLimit(bytes=60_000))),
    ("remove", None),
]

GOLDEN = {
    "htb": [
        "ip link set dev veth-a gso_max_size 1514 gso_max_segs 1",
        "tc qdisc delete dev veth-a root",
        "tc qdisc add dev veth-a root handle 1: htb default 10",
        "tc class add dev veth-a parent 1: classid 1:10 htb rate 10Mbit ceil 10Mbit"
        " burst 3028b cburst 3028b quantum 1514",
        "tc qdisc add dev veth-a parent 1:10 handle 10: pfifo limit 100",
        "tc class change dev veth-a parent 1: classid 1:10 htb rate 20Mbit ceil 20Mbit"
        " burst 5000b cburst 5000b quantum 1514",
        "tc qdisc replace dev veth-a parent 1:10 handle 11: bfifo limit 60000b",
        "tc class change dev veth-a parent 1: classid 1:10 htb rate 1500Kbit ceil 1500Kbit"
        " burst 3028b cburst 3028b quantum 1514",
        "tc qdisc replace dev veth-a parent 1:10 handle 12: netem limit 43 delay 20ms 2500us"
        " loss 1%",
        "tc class change dev veth-a parent 1: classid 1:10 htb rate 2Gbit ceil 2Gbit"
        " burst 500000b cburst 500000b quantum 1514",
        "tc qdisc change dev veth-a parent 1:10 handle 12: netem limit 40",
        "tc qdisc delete dev veth-a root",
    ],
    "tbf": [
        "ip link set dev veth-a gso_max_size 1514 gso_max_segs 1",
        "tc qdisc delete dev veth-a root",
        "tc qdisc add dev veth-a root handle 1: tbf rate 10Mbit burst 3028b limit 100",
        "tc qdisc replace dev veth-a parent 1:1 handle 10: pfifo limit 100",
        "tc qdisc change dev veth-a root handle 1: tbf rate 20Mbit burst 5000b limit 100",
        "tc qdisc replace dev veth-a parent 1:1 handle 11: bfifo limit 60000b",
        "tc qdisc change dev veth-a root handle 1: tbf rate 20Mbit burst 5000b limit 60000",
        "tc qdisc replace dev veth-a parent 1:1 handle 12: netem limit 43 delay 20ms 2500us"
        " loss 1%",
        "tc qdisc change dev veth-a root handle 1: tbf rate 1500Kbit burst 3028b limit 65102",
        "tc qdisc change dev veth-a root handle 1: tbf rate 2Gbit burst 500000b limit 60560",
        "tc qdisc change dev veth-a parent 1:1 handle 12: netem limit 40",
        "tc qdisc delete dev veth-a root",
    ],
}


@pytest.mark.parametrize("strategy", ["htb", "tbf"])
def test_dry_run_golden(strategy: str) -> None:
    dry = DryRun()
    shaper = make_shaper(strategy, None, "veth-a", netem=True, dry_run=dry)  # type: ignore[arg-type]
    for action, shape in SEQUENCE:
        if action == "apply":
            assert shape is not None
            shaper.apply(shape)
        elif action == "change":
            assert shape is not None
            shaper.change(shape)
        else:
            shaper.remove()
    assert dry.lines() == GOLDEN[strategy]
    assert shaper.leaf_swaps == 2


def test_netem_missing_fails_with_fix() -> None:
    shaper = make_shaper("htb", None, "veth-a", netem=False, dry_run=DryRun())
    with pytest.raises(ShapingError) as caught:
        shaper.apply(LinkShape(rate_bps=1_000_000, delay_s=0.02, loss=0.01))
    err = caught.value
    assert "netem" in err.what and "delay 20 ms" in err.what and "loss 1 %" in err.what
    assert err.where == "interface veth-a"
    assert err.fix is not None and "user-space link" in err.fix and "sch_netem" in err.fix
    shaper.apply(LinkShape(rate_bps=1_000_000))  # rate and queue alone are fine
    with pytest.raises(ShapingError):
        shaper.change(LinkShape(rate_bps=1_000_000, jitter_s=0.001))


@pytest.mark.parametrize(
    ("shape", "field"),
    [
        (LinkShape(rate_bps=-1), "rate"),
        (LinkShape(rate_bps=1_000_000, loss=1.5), "loss"),
        (LinkShape(rate_bps=1_000_000, delay_s=-0.1), "delay/jitter"),
        (LinkShape(rate_bps=1_000_000, queue=QueueLimit(bytes=1000)), "queue"),
        (LinkShape(rate_bps=1_000_000, queue=QueueLimit(packets=0)), "queue"),
    ],
)
def test_bad_shapes_name_the_field(shape: LinkShape, field: str) -> None:
    shaper = make_shaper("tbf", None, "veth-a", netem=True, dry_run=DryRun())
    with pytest.raises(ShapingError) as caught:
        shaper.apply(shape)
    assert caught.value.where == f"interface veth-a, {field}"
    assert caught.value.fix


def test_change_before_apply_is_an_error() -> None:
    shaper = make_shaper("htb", None, "veth-a", netem=False, dry_run=DryRun())
    with pytest.raises(ShapingError, match="before apply"):
        shaper.change(LinkShape(rate_bps=1_000_000))


def test_unknown_strategy() -> None:
    with pytest.raises(ShapingError, match="unknown shaping strategy"):
        make_shaper("cake", None, "veth-a", netem=False, dry_run=DryRun())  # type: ignore[arg-type]


def test_unshaped_and_outage_still_install_a_rate() -> None:
    dry = DryRun()
    shaper = make_shaper("htb", None, "veth-a", netem=False, dry_run=dry)
    shaper.apply(LinkShape(rate_bps=None))
    shaper.change(LinkShape(rate_bps=0))
    lines = dry.lines()
    assert "rate 100Gbit" in lines[3] and "pfifo limit 1000" in lines[4]
    assert "rate 1Kbit" in lines[5]


def test_burst_and_default_queue_follow_the_rate() -> None:
    assert burst_bytes(500_000) == 2 * 1514  # floor: two full frames
    assert burst_bytes(1_000_000_000) == 250_000  # 2 ms at 1 Gbit/s
    assert default_queue(10_000_000).bytes == 125_000  # 100 ms x 10 Mbit/s
    assert default_queue(10_000_000, delay_s=0.1).bytes == 250_000  # 2 x one-way delay
    assert default_queue(500_000).bytes == 8 * 1514  # floor
    assert default_queue(None).packets == 1000


def test_gso_limit_follows_rate_and_queue() -> None:
    dry = DryRun()
    shaper = make_shaper("htb", None, "veth-a", netem=False, dry_run=dry)
    shaper.apply(LinkShape(rate_bps=100_000_000))  # below 200 Mbit/s: one frame
    shaper.apply(LinkShape(rate_bps=1_000_000_000))  # 12.5 MB queue, 250 kB bucket
    shaper.apply(LinkShape(rate_bps=1_000_000_000, queue=QueueLimit(packets=20)))
    links = [line for line in dry.lines() if line.startswith("ip link")]
    assert links == [
        "ip link set dev veth-a gso_max_size 1514 gso_max_segs 1",
        "ip link set dev veth-a gso_max_size 24224 gso_max_segs 16",
        "ip link set dev veth-a gso_max_size 3028 gso_max_segs 2",  # 1/8 of 20 frames
    ]
