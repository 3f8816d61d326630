"""Turns a LabPlan into kernel objects through pyroute2, journaling first.

Every namespace and link is recorded in the state journal *before* it is
created, so a crash at any point leaves a journal that ``netlab down`` can
replay.  Namespaces are made in-process (see ``netns``) and one netlink
socket is opened per namespace for the whole build.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from labcore.netlink import IPRoute
from netlab.lab import netns
from netlab.lab.plan import HostPlan, LabPlan
from netlab.lab.state import StateJournal


class NetlinkPool:
    """One IPRoute per namespace, opened inside it and closed together."""

    def __init__(self) -> None:
        self._handles: dict[str, IPRoute] = {}

    def get(self, namespace: str) -> IPRoute:
        handle = self._handles.get(namespace)
        if handle is None:
            handle = netns.call_inside(namespace, IPRoute)
            self._handles[namespace] = handle
        return handle

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()


def create_namespaces(plan: LabPlan, journal: StateJournal) -> None:
    for host in plan.hosts.values():
        journal.record("netns", host.namespace)
        netns.create(host.namespace, identified=partial(_identify_netns, journal, host.namespace))


def _identify_netns(journal: StateJournal, name: str, inode: int) -> None:
    journal.identify("netns", name, None, inode)


def create_veths(plan: LabPlan, journal: StateJournal, pool: NetlinkPool,
                 links: list[str] | None = None) -> None:
    """One veth pair per link (of ``links``, default all), each end created directly
    in its namespace."""
    for name, (end_a, end_b) in plan.links.items():
        if links is not None and name not in links:
            continue
        ns_a = plan.hosts[end_a.host].namespace
        ns_b = plan.hosts[end_b.host].namespace
        journal.record("link", end_a.name, ns_a)
        fd_a = os.open(netns.path_of(ns_a), os.O_RDONLY)
        fd_b = os.open(netns.path_of(ns_b), os.O_RDONLY)
        try:
            pool.get(ns_a).link(
                "add", ifname=end_a.name, kind="veth", net_ns_fd=fd_a,
                peer={"ifname": end_b.name, "net_ns_fd": fd_b},
            )
        finally:
            os.close(fd_a)
            os.close(fd_b)


def identify_links(plan: LabPlan, journal: StateJournal, pool: NetlinkPool) -> None:
    """Journal the index of every link end the lab made (both ends of a veth
    and each TUN), so teardown can tell them from a same-named interface."""
    for host in plan.hosts.values():
        wanted = {iface.name for iface in host.interfaces}
        for link in pool.get(host.namespace).get_links():
            name = link.get_attr("IFLA_IFNAME")
            if name in wanted:
                journal.identify("link", name, host.namespace, link["index"])


def configure_host(host: HostPlan, pool: NetlinkPool) -> None:
    """Addresses, links up, sysctls and routes inside one namespace."""
    ipr = pool.get(host.namespace)
    index: dict[str, int] = {}
    for link in ipr.get_links():
        index[link.get_attr("IFLA_IFNAME")] = link["index"]
    ipr.link("set", index=index["lo"], state="up")
    for iface in host.interfaces:
        ipr.addr("add", index=index[iface.name], address=str(iface.address.ip),
                 prefixlen=iface.address.network.prefixlen)
        ipr.link("set", index=index[iface.name], state="up")
    write_sysctls(host.namespace, host.sysctls)
    for route in host.routes:
        ipr.route("add", dst=str(route.destination), gateway=str(route.via),
                  oif=index[route.device])


def write_sysctls(namespace: str, sysctls: dict[str, str]) -> None:
    """/proc/sys/net follows the opening thread's namespace, so writing
    from inside the namespace changes only that namespace."""
    if not sysctls:
        return
    with netns.inside(namespace):
        for key, value in sysctls.items():
            Path("/proc/sys", *key.split(".")).write_text(f"{value}\n")


def read_sysctl(namespace: str, key: str) -> str:
    with netns.inside(namespace):
        return Path("/proc/sys", *key.split(".")).read_text().strip()
