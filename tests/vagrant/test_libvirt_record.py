"""``netlab vagrant down --all`` removes only the libvirt objects netlab recorded on
``vagrant up``: a machine's own domains, networks, pools and volumes stay.  virsh
needs a libvirtd, so the selection runs over listings in virsh's own formats,
read by the same parsers the teardown uses."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from netlab.errors import NetlabError
from netlab.vagrant import infra


@pytest.fixture(autouse=True)
def own_record() -> Iterator[None]:
    """The record lives in the run root's vagrant folder: gone after each test."""
    folder = infra.record_path().parent
    existed = folder.exists()
    yield
    if not existed:
        shutil.rmtree(folder, ignore_errors=True)

# `virsh list --all --name` (and net-list/pool-list --name): a name a line, a blank last
DOMAINS = "nl-smoke-alice\nnl-smoke-bob\nwin10\nnl-smoke-router-old\n\n"
NETWORKS = "default\nnl-smoke-mgmt\nlab-bridge\n\n"
POOLS = "default\nimages\n\n"
# `virsh vol-list default`
VOLUMES = """ Name                                     Path
-------------------------------------------------------------------------------------
 debian12_vagrant_box_image_4.3_box.img   /var/lib/libvirt/images/debian12_box.img
 nl-smoke-alice.img                       /var/lib/libvirt/images/nl-smoke-alice.img
 win10.qcow2                              /var/lib/libvirt/images/win10.qcow2

"""


def _listing(domains: str = DOMAINS, volumes: str = VOLUMES) -> set[str]:
    found = {f"domain {n}" for n in infra.parse_names(domains)}
    found |= {f"network {n}" for n in infra.parse_names(NETWORKS)}
    found |= {f"pool {n}" for n in infra.parse_names(POOLS)}
    return found | {f"volume default/{v}" for v in infra.parse_volumes(volumes)}


def test_virsh_listings_parse() -> None:
    assert infra.parse_names(DOMAINS) == ["nl-smoke-alice", "nl-smoke-bob", "win10",
                                          "nl-smoke-router-old"]
    assert infra.parse_volumes(VOLUMES) == [
        "debian12_vagrant_box_image_4.3_box.img",
        "nl-smoke-alice.img", "win10.qcow2"]
    assert infra.parse_volumes(" Name   Path\n-----------\n\n") == []  # an empty pool
    assert infra.parse_names("") == []


def test_up_records_only_what_it_made() -> None:
    before = _listing(domains="win10\nnl-smoke-router-old\n\n",
                      volumes=VOLUMES.replace(" nl-smoke-alice.img", " x").replace(
                          " debian12_vagrant", " y"))
    after = _listing() | {"domain someone-elses-vm", "pool netlab-made"}
    made = infra.made_by_up(before, after, "nl-smoke-", "nl-smoke-mgmt")
    assert made == {
        "domain nl-smoke-alice", "domain nl-smoke-bob", "pool netlab-made",
        "volume default/nl-smoke-alice.img",
        "volume default/debian12_vagrant_box_image_4.3_box.img"}
    # nl-smoke-router-old and nl-smoke-mgmt existed before this up: not netlab's


def test_down_all_selects_recorded_objects_only() -> None:
    present = _listing()
    ours = {"domain nl-smoke-alice", "domain nl-smoke-bob", "network nl-smoke-mgmt",
            "volume default/nl-smoke-alice.img", "pool default", "pool images",
            "domain nl-gone", "volume default/debian12_vagrant_box_image_4.3_box.img"}
    chosen = infra.removable(present, ours)
    assert chosen == [
        "domain nl-smoke-alice", "domain nl-smoke-bob", "network nl-smoke-mgmt",
        "volume default/debian12_vagrant_box_image_4.3_box.img",
        "volume default/nl-smoke-alice.img", "pool images"]
    # untouched: the machine's win10 domain and its volume, libvirt's default network,
    # lab-bridge, and the default pool (it still holds win10.qcow2); nl-gone is gone
    assert infra.removable(present, set()) == []


def test_the_record_accumulates_and_forgets() -> None:
    assert infra.recorded() == set()
    infra.record({"domain nl-a-x", "network nl-a-mgmt"})
    infra.record({"volume default/nl-a-x.img"})
    assert infra.recorded() == {"domain nl-a-x", "network nl-a-mgmt",
                                "volume default/nl-a-x.img"}
    infra.forget({"domain nl-a-x", "network nl-a-mgmt", "volume default/nl-a-x.img"})
    assert not infra.record_path().exists()  # nothing left: no file


def test_a_garbled_record_is_refused_with_a_fix() -> None:
    infra.record_path().parent.mkdir(parents=True, exist_ok=True)
    infra.record_path().write_text("{not json")
    try:
        with pytest.raises(NetlabError) as error:
            infra.recorded()
        assert error.value.render() == (
            "error: netlab's record of its libvirt objects is garbled\n"
            f"  where: {infra.record_path()}\n"
            "  fix: remove netlab's VMs, networks and pools with virsh by hand, then delete "
            "this file")
    finally:
        infra.record_path().unlink()
