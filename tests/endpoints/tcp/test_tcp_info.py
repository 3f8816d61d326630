"""TCP_INFO offsets against the installed kernel header, and a live read."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from endpoints.tcp.tcp_info import KERNEL_FIELDS, TCP_INFO_MIN_LEN, read_tcp_info

HEADER = Path("/usr/include/linux/tcp.h")


@pytest.mark.skipif(shutil.which("cc") is None or not HEADER.exists(),
                    reason="needs a C compiler and linux/tcp.h")
def test_offsets_match_linux_header(tmp_path: Path) -> None:
    bitfield = {"flags7"}  # a bitfield byte: offsetof() cannot name it
    prints = "".join(
        f'printf("{name} %zu\\n", offsetof(struct tcp_info, tcpi_{name.removesuffix("_us")}));'
        for name, _offset, _code in KERNEL_FIELDS if name not in bitfield)
    source = tmp_path / "offsets.c"
    source.write_text("#include <stdio.h>\n#include <string.h>\n#include <stddef.h>\n"
                      "#include <linux/tcp.h>\n"
                      f"int main(void){{{prints}"
                      'printf("sizeof %zu\\n", sizeof(struct tcp_info));'
                      # Where the compiler puts tcpi_delivery_rate_app_limited:
                      "struct tcp_info t; memset(&t, 0, sizeof t);"
                      "t.tcpi_delivery_rate_app_limited = 1;"
                      "for (size_t i = 0; i < sizeof t; i++) if (((unsigned char *)&t)[i])"
                      ' printf("app_limited_byte %zu\\n", i);'
                      ' printf("app_limited_bits %u\\n", ((unsigned char *)&t)[7]);'
                      "return 0;}\n")
    binary = tmp_path / "offsets"
    subprocess.run(["cc", "-o", str(binary), str(source)], check=True)
    output = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    found = dict(line.split() for line in output.splitlines())
    for name, offset, _code in KERNEL_FIELDS:
        if name not in bitfield:
            assert int(found[name]) == offset, name
    flags7 = next(offset for name, offset, _code in KERNEL_FIELDS if name == "flags7")
    assert int(found["app_limited_byte"]) == flags7
    assert int(found["app_limited_bits"]) == 1  # bit 0, as the sender decodes it
    assert int(found["sizeof"]) >= TCP_INFO_MIN_LEN


def test_live_connection_reads_sane_values() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            peer, _ = server.accept()
            with peer:
                client.sendall(b"x" * 100_000)
                got = 0
                while got < 100_000:
                    got += len(peer.recv(65536))
                info = read_tcp_info(client)
    assert info["state"] == 1  # TCP_ESTABLISHED
    assert info["snd_mss"] > 0
    assert info["snd_cwnd"] >= 1
    assert info["bytes_sent"] >= 100_000
    assert 0 < info["min_rtt_us"] <= info["rtt_us"] + 1
    assert info["app_limited"] in (0, 1)
