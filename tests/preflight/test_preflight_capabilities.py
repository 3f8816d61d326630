"""The kernel probe: right answers, nothing left behind, cheap when cached."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from netlab.preflight import capabilities, probe_kernel
from netlab.preflight.capabilities import KernelCapabilities, probe_tun

THIS_MACHINE = os.uname().release.startswith("6.18.44-fc")
TC_ARGS = {
    "htb": ["default", "10"],
    "tbf": ["rate", "1mbit", "burst", "15k", "latency", "50ms"],
    "netem": ["delay", "1ms"],
}


def _tc_accepts(namespace: str, kind: str) -> bool:
    """Independent oracle: iproute2's tc, in a namespace of our own."""
    where = ["ingress"] if kind == "ingress" else ["root", kind, *TC_ARGS.get(kind, [])]
    added = subprocess.run(
        ["ip", "netns", "exec", namespace, "tc", "qdisc", "add", "dev", "lo", *where],
        capture_output=True,
        text=True,
        check=False,
    )
    if added.returncode == 0:
        subprocess.run(
            ["ip", "netns", "exec", namespace, "tc", "qdisc", "del", "dev", "lo",
             "ingress" if kind == "ingress" else "root"],
            check=True,
        )
    return added.returncode == 0


def test_probe_agrees_with_tc_for_every_qdisc(run_root: Path, own_netns: str) -> None:
    caps = probe_kernel(refresh=True)
    assert caps.probed and not caps.from_cache
    for kind in capabilities.PROBED_QDISCS:
        assert caps.has_qdisc(kind) == _tc_accepts(own_netns, kind), kind


@pytest.mark.skipif(not THIS_MACHINE, reason="facts of the documented 6.18 build machine")
def test_probe_finds_what_this_machine_has_and_lacks(run_root: Path) -> None:
    caps = probe_kernel(refresh=True)
    for kind in ("htb", "tbf", "ingress"):
        assert caps.has_qdisc(kind), kind
    for kind in ("netem", "fq", "fq_codel", "cake"):
        assert not caps.has_qdisc(kind), kind
        assert caps.notes[f"qdisc {kind}"] == "kernel: unknown qdisc kind (ENOENT)"
    assert caps.has_link_kind("veth") and caps.has_link_kind("ifb")
    assert caps.tun is True and caps.setns is True
    assert {"reno", "cubic", "bbr"} <= set(caps.tcp_cc_available)
    assert caps.netem is False and caps.rate_shaper is True


def test_tcp_lists_are_read_live_from_proc(run_root: Path) -> None:
    caps = probe_kernel()
    base = Path("/proc/sys/net/ipv4")
    assert caps.tcp_cc_available == tuple(
        (base / "tcp_available_congestion_control").read_text().split()
    )
    allowed = (base / "tcp_allowed_congestion_control").read_text().split()
    assert caps.tcp_cc_allowed == tuple(allowed)
    assert caps.tcp_cc_default == (base / "tcp_congestion_control").read_text().strip()


def test_no_probe_namespace_is_left(
    run_root: Path, probe_namespaces: Callable[[], list[str]]
) -> None:
    assert probe_namespaces() == []
    probe_kernel(refresh=True)
    assert probe_namespaces() == []


def test_namespace_removed_when_probe_raises_midway(
    run_root: Path, monkeypatch: pytest.MonkeyPatch, probe_namespaces: Callable[[], list[str]]
) -> None:
    real = capabilities._probe_qdisc
    seen_during: list[list[str]] = []

    def failing_after_two(ipr: object, index: int, kind: str) -> tuple[bool, str | None]:
        seen_during.append(probe_namespaces())
        if len(seen_during) > 2:
            raise RuntimeError("injected failure")
        return real(ipr, index, kind)

    monkeypatch.setattr(capabilities, "_probe_qdisc", failing_after_two)
    with pytest.raises(RuntimeError, match="injected failure"):
        probe_kernel(refresh=True)
    assert len(seen_during[-1]) == 1  # the namespace really existed mid-probe
    assert probe_namespaces() == []


def test_kernel_error_midway_gives_unprobed_result_and_no_namespace(
    run_root: Path, monkeypatch: pytest.MonkeyPatch, probe_namespaces: Callable[[], list[str]]
) -> None:
    def refuse(ipr: object, index: int, kind: str) -> tuple[bool, str | None]:
        raise OSError(5, "injected I/O error")

    monkeypatch.setattr(capabilities, "_probe_qdisc", refuse)
    caps = probe_kernel(refresh=True)
    assert not caps.probed
    assert caps.probe_error is not None and "injected I/O error" in caps.probe_error
    assert caps.has_qdisc("htb") is False
    assert probe_namespaces() == []
    assert not (run_root / capabilities.CACHE_FILE).exists()  # a failed probe is not cached


def test_tun_is_made_inside_the_namespace_not_the_callers(own_netns: str) -> None:
    seen: dict[str, object] = {}

    def while_open() -> None:
        # This runs in the thread that entered own_netns: the name resolves there...
        seen["index_inside"] = socket.if_nametoindex("probetun0")
        # ...while sysfs, mounted from the root namespace, must not show it.
        seen["in_root"] = Path("/sys/class/net/probetun0").exists()

    ok, note = probe_tun(own_netns, on_open=while_open)
    assert ok and note is None
    assert isinstance(seen["index_inside"], int) and seen["index_inside"] > 0
    assert seen["in_root"] is False
    # Non-persistent: gone once the descriptor closed.
    ok_after, _ = probe_tun(own_netns)
    assert ok_after


def test_tun_reports_missing_namespace() -> None:
    missing = f"nltb-{os.getpid()}-does-not-exist"
    assert probe_tun(missing) == (False, f"namespace {missing}: No such file or directory")


def test_stale_probe_namespace_of_dead_process_is_swept(own_netns: str) -> None:
    from labcore.netlink import netns

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{capabilities.PROBE_NAMESPACE_PREFIX}{dead.pid}-abc123"
    live = f"{capabilities.PROBE_NAMESPACE_PREFIX}{os.getpid()}-feed01"
    netns.create(stale)
    netns.create(live)
    try:
        removed = capabilities.sweep_stale_probe_namespaces()
        assert stale in removed and live not in removed
        assert not (capabilities.NETNS_DIR / stale).exists()
        assert (capabilities.NETNS_DIR / live).exists()
    finally:
        for name in (stale, live):
            if (capabilities.NETNS_DIR / name).exists():
                netns.remove(name)


def test_disk_cache_is_reused_then_invalidated(run_root: Path) -> None:
    fresh = probe_kernel(refresh=True)
    cache = run_root / capabilities.CACHE_FILE
    stored = json.loads(cache.read_text())
    assert stored["key"]["boot_id"] == capabilities.boot_id()
    assert stored["key"]["kernel_release"] == os.uname().release

    capabilities.forget_cached()
    started = time.perf_counter()
    cached = probe_kernel()
    elapsed = time.perf_counter() - started
    assert cached.from_cache
    assert cached.qdiscs == fresh.qdiscs and cached.tun == fresh.tun
    assert elapsed < 0.02, f"cached probe took {elapsed * 1e3:.1f} ms"

    stored["key"]["boot_id"] = "another-boot"
    cache.write_text(json.dumps(stored))
    capabilities.forget_cached()
    reprobed = probe_kernel()
    assert not reprobed.from_cache and reprobed.probed


def test_process_cache_skips_the_disk(run_root: Path) -> None:
    probe_kernel(refresh=True)
    (run_root / capabilities.CACHE_FILE).unlink()
    again = probe_kernel()
    assert again.probed and not (run_root / capabilities.CACHE_FILE).exists()


def test_fresh_probe_is_cheap(run_root: Path) -> None:
    """A fresh probe must fit in `up`'s 0.5 s budget with room to spare."""
    durations = []
    for _ in range(3):
        durations.append(probe_kernel(refresh=True).probe_seconds)
    print(f"fresh probe: {[round(d * 1e3, 1) for d in durations]} ms")
    assert min(durations) < 0.2


def test_without_net_admin_nothing_is_probed(tmp_path: Path) -> None:
    """Root stripped of CAP_NET_ADMIN/CAP_SYS_ADMIN (a container's root) probes nothing."""
    code = (
        "from netlab.preflight import probe_kernel\n"
        "caps = probe_kernel(use_disk_cache=False)\n"
        "print(caps.probed, caps.probe_error)\n"
    )
    out = subprocess.run(
        ["setpriv", "--inh-caps=-all", "--bounding-set=-net_admin,-sys_admin",
         sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NETLAB_RUN_ROOT": str(tmp_path)},
    ).stdout
    assert out.strip() == (
        "False needs CAP_NET_ADMIN and CAP_SYS_ADMIN (root) to create a probe namespace"
    )


def test_capabilities_round_trip_to_json(run_root: Path) -> None:
    caps = probe_kernel()
    data = caps.to_json()
    assert json.loads(json.dumps(data)) == data
    unprobed = KernelCapabilities(kernel_release="x", boot_id="y", probed=False)
    assert unprobed.has_qdisc("htb") is False


def test_ifb_and_dummy_are_not_loaded_just_to_probe_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading ifb/dummy creates ifb0/ifb1/dummy0 on the host: the probe must not do it."""
    modules = tmp_path / "modules"
    sys_module = tmp_path / "sys_module"
    sys_module.mkdir()
    monkeypatch.setattr(capabilities, "_PROC_MODULES", modules)
    monkeypatch.setattr(capabilities, "_SYS_MODULE", sys_module)
    touches = capabilities._loading_would_touch_root_namespace
    assert not touches("ifb") and not touches("dummy")  # no module support: built in
    modules.write_text("veth 40960 0 - Live 0x0\n")
    assert touches("ifb") and touches("dummy") and not touches("veth")
    modules.write_text("ifb 12288 0 - Live 0x0\n")
    assert not touches("ifb") and touches("dummy")
    (sys_module / "dummy").mkdir()
    assert not touches("dummy")


def test_tun_reports_a_missing_device_node(
    own_netns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "tun")
    monkeypatch.setattr(capabilities, "TUN_DEVICE", missing)
    assert probe_tun(own_netns) == (False, f"{missing}: No such file or directory")
