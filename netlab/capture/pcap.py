"""A small reader of pcap and pcapng files, over the raw bytes.

Only what the analysis needs: each packet's kernel timestamp (ns), link
type and captured bytes.  Reading with ``struct.unpack_from`` over one
``bytes`` object is several times faster than scapy's packet objects (see
``bench/capture.py``).  Formats: classic pcap (tcpdump.org/manpages/
pcap-savefile.5.html, micro- and nanosecond magic) and pcapng
(draft-ietf-opsawg-pcapng: SHB, IDB with ``if_tsresol``, EPB).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from netlab.errors import NetlabError

# link types (tcpdump.org/linktypes.html) and where the IPv4 header starts
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_LINUX_SLL2 = 276
_FIXED_OFFSETS = {LINKTYPE_RAW: 0, LINKTYPE_IPV4: 0, LINKTYPE_LINUX_SLL: 16,
                  LINKTYPE_LINUX_SLL2: 20}
_ETH_IPV4 = b"\x08\x00"
_ETH_VLAN = (b"\x81\x00", b"\x88\xa8")

_PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1000), b"\xa1\xb2\xc3\xd4": (">", 1000),
               b"\x4d\x3c\xb2\xa1": ("<", 1), b"\xa1\xb2\x3c\x4d": (">", 1)}
_PCAPNG_SHB = 0x0A0D0D0A
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_IDB, _EPB, _SHB = 1, 6, _PCAPNG_SHB
_OPT_TSRESOL = 9

Packet = tuple[int, int, bytes]  # timestamp ns, link type, captured bytes


def ip_offset(linktype: int, data: bytes) -> int:
    """Where the IPv4 header starts in ``data``, or -1 when it is not IPv4."""
    offset = _FIXED_OFFSETS.get(linktype)
    if offset is not None:
        return offset if len(data) > offset and data[offset] >> 4 == 4 else -1
    if linktype != LINKTYPE_ETHERNET:
        return -1
    ethertype, offset = data[12:14], 14
    while ethertype in _ETH_VLAN:
        ethertype, offset = data[offset + 2:offset + 4], offset + 4
    return offset if ethertype == _ETH_IPV4 else -1


def read_packets(path: Path) -> Iterator[Packet]:
    """Every packet of a pcap or pcapng file, in file order."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise NetlabError(f"cannot read capture file: {exc.strerror}", where=str(path),
                          fix="check the capture directory of the run") from exc
    if raw[:4] in _PCAP_MAGIC:
        return _read_pcap(raw, path)
    if len(raw) >= 12 and struct.unpack_from("<I", raw)[0] == _PCAPNG_SHB:
        return _read_pcapng(raw, path)
    if not raw:
        return iter(())  # a capture stopped before its header was written
    raise NetlabError("not a pcap or pcapng file", where=str(path),
                      fix="analyse only files written by netlab's capture")


def _read_pcap(raw: bytes, path: Path) -> Iterator[Packet]:
    order, ns_per_unit = _PCAP_MAGIC[raw[:4]]
    (linktype,) = struct.unpack_from(order + "I", raw, 20)
    linktype &= 0x0FFFFFFF
    record = struct.Struct(order + "IIII")
    pos, end = 24, len(raw)
    while pos + 16 <= end:
        sec, frac, caplen, _ = record.unpack_from(raw, pos)
        pos += 16
        if pos + caplen > end:
            return  # a record torn by a capture that was killed
        yield sec * 1_000_000_000 + frac * ns_per_unit, linktype, raw[pos:pos + caplen]
        pos += caplen


def _tsresol_ns(options: bytes, order: str) -> tuple[int, int]:
    """(multiplier, divisor) turning an IDB's timestamp units into ns."""
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, pos)
        if code == 0:
            break
        if code == _OPT_TSRESOL and length >= 1:
            value = options[pos + 4]
            if value & 0x80:
                return 1_000_000_000, 1 << (value & 0x7F)
            exponent = value & 0x7F
            if exponent <= 9:
                return 10 ** (9 - exponent), 1
            return 1, 10 ** (exponent - 9)
        pos += 4 + ((length + 3) & ~3)
    return 1000, 1  # default: microseconds


def _read_pcapng(raw: bytes, path: Path) -> Iterator[Packet]:
    end = len(raw)
    pos = 0
    order = "<"
    interfaces: list[tuple[int, int, int]] = []  # link type, ns multiplier, divisor
    header = struct.Struct("<II")
    epb = struct.Struct("<IIIIIII")  # block type and length, then the EPB's fixed fields
    while pos + 12 <= end:
        if pos + 28 <= end:
            block_type, block_len, iface, high, low, caplen, _ = epb.unpack_from(raw, pos)
        else:
            block_type, block_len = header.unpack_from(raw, pos)
        if block_type == _SHB:
            (magic,) = struct.unpack_from("<I", raw, pos + 8)
            order = "<" if magic == _BYTE_ORDER_MAGIC else ">"
            header = struct.Struct(order + "II")
            epb = struct.Struct(order + "IIIIIII")
            block_type, block_len = header.unpack_from(raw, pos)
            interfaces = []
        if block_len < 12 or pos + block_len > end:
            return  # torn last block
        if block_type == _EPB:
            linktype, mult, div = interfaces[iface]
            units = (high << 32) | low
            yield (units * mult if div == 1 else units * mult // div), linktype, raw[
                pos + 28:pos + 28 + caplen]
        elif block_type == _IDB:
            linktype = struct.unpack_from(order + "H", raw, pos + 8)[0]
            mult, div = _tsresol_ns(raw[pos + 16:pos + block_len - 4], order)
            interfaces.append((linktype, mult, div))
        pos += block_len
