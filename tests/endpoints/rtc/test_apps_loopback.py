"""The RTC sender and receiver as real processes over loopback.

Each test starts ``python -m endpoints.rtc.receiver_app`` (port 0; the bound
port is read back from receiver_meta.json) and then the sender, lets them
run a few seconds, and checks the logs against each other: every received
packet was sent with the same fields, delays are non-negative and small,
the target did what the estimator mode says, and a SIGTERM flushes
everything.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from endpoints.rtc import logs
from endpoints.rtc.live import read_live
from endpoints.rtc.rtcp import Remb

REPO = Path(__file__).resolve().parents[3]
PLUGIN = Path(__file__).parent / "data" / "BandwidthEstimator.py"


class Processes:
    """Started processes, ended by pid on teardown whatever happened."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, module: str, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.started.append(process)
        return process

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=10)


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        procs.close()


def start_receiver(procs: Processes, log_dir: Path, *args: str) -> tuple[subprocess.Popen[str],
                                                                       int]:
    log_dir.mkdir(parents=True, exist_ok=True)
    process = procs.start("endpoints.rtc.receiver_app", "--bind", "127.0.0.1:0",
                          "--log-dir", str(log_dir), *args)
    meta_path = log_dir / "receiver_meta.json"
    deadline = time.monotonic() + 20
    while not meta_path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            _out, err = process.communicate(timeout=10)
            raise AssertionError(f"receiver did not start: {err}")
        time.sleep(0.02)
    port = json.loads(meta_path.read_text())["bound_address"][1]
    return process, int(port)


def finish(process: subprocess.Popen[str], timeout: float = 20) -> str:
    """Wait for a clean exit; returns stderr."""
    _out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return err


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    return finish(process)


def meta(log_dir: Path, role: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((log_dir / f"{role}_meta.json").read_text())
    return result


def check_consistent(log_dir: Path) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Every received packet was sent, with the same identity; delays >= 0."""
    sent = logs.read_kind(log_dir, logs.SENDER_PACKETS)
    received = logs.read_kind(log_dir, logs.RECEIVER_PACKETS)
    assert len(sent) > 50 and len(received) > 50
    assert (np.diff(sent["transport_seq"].astype(np.int64)) == 1).all()
    assert sent["transport_seq"][0] == 0
    assert (np.diff(sent["send_ns"]) >= 0).all()
    assert len(np.unique(received["transport_seq"])) == len(received), "no duplicates"
    index = np.searchsorted(sent["transport_seq"], received["transport_seq"])
    assert (index < len(sent)).all()
    matched = sent[index]
    assert (matched["transport_seq"] == received["transport_seq"]).all()
    for name in ("send_ns", "ssrc", "rtp_seq", "size", "payload_type", "frame_id"):
        assert (matched[name] == received[name]).all(), name
    delays = received["arrival_ns"] - received["send_ns"]
    assert (delays >= 0).all()
    # Record counts in the meta files equal what is on disk: nothing left unflushed.
    assert meta(log_dir, "sender")["records"]["sender_packets"] == len(sent)
    assert meta(log_dir, "receiver")["records"]["receiver_packets"] == len(received)
    return sent, received


def check_frames(log_dir: Path, sent: np.ndarray[Any, Any],
                 received: np.ndarray[Any, Any]) -> None:
    """The payload bytes of each frame whose last packet was sent add up to its size
    (at least the 16-byte send-time stamp)."""
    frames = logs.read_kind(log_dir, logs.SENDER_FRAMES)
    sizes = {(int(f["ssrc"]), int(f["frame_id"])): int(f["size"]) for f in frames}
    complete = {(int(p["ssrc"]), int(p["frame_id"])) for p in sent if p["last_of_frame"]}
    got: dict[tuple[int, int], int] = {}
    for packet in received:
        key = (int(packet["ssrc"]), int(packet["frame_id"]))
        got[key] = got.get(key, 0) + int(packet["size"]) - int(packet["header_length"])
    assert len(complete) > 20
    for key in complete:
        assert got[key] == max(16, sizes[key]), key


def test_sender_side_gcc_over_loopback(processes: Processes, tmp_path: Path) -> None:
    receiver, port = start_receiver(processes, tmp_path)
    sender = processes.start("endpoints.rtc.sender_app", "--dest", f"127.0.0.1:{port}",
                             "--duration", "4", "--start-rate", "500kbit", "--estimator", "gcc",
                             "--no-probing", "--log-dir", str(tmp_path), "--seed", "3")
    finish(sender)
    time.sleep(0.2)  # the last packets' feedback
    stop(receiver)

    sent, received = check_consistent(tmp_path)
    check_frames(tmp_path, sent, received)
    # Loopback loses nothing.
    assert len(received) == len(sent)
    delays_ms = (received["arrival_ns"] - received["send_ns"]) / 1e6
    assert np.median(delays_ms) < 5
    assert {96, 111} == set(received["payload_type"].tolist())

    sender_meta = meta(tmp_path, "sender")
    assert sender_meta["state"] == "duration"
    counters = sender_meta["counters"]
    assert counters["feedback_received"] >= 0.6 * 4 / 0.05
    assert counters["packets_reported"] >= len(sent) - 30
    assert counters["packets_reported_lost"] == 0
    assert counters["remb_received"] == 0
    assert set(counters["last_fraction_lost"].values()) == {0}, "receiver reports arrived"

    rate = logs.read_kind(tmp_path, logs.SENDER_RATE)
    assert 4 / 0.05 * 0.8 <= len(rate) <= 4 / 0.05 + 2
    # No congestion on loopback: GCC only increases (8 %/s) from the start rate.
    assert rate["target_bps"][0] == pytest.approx(500_000, rel=0.01)
    assert rate["target_bps"][-1] > 500_000 * 1.1
    assert (rate["usage"] != 1).all()
    assert np.isnan(rate["remb_bps"]).all()
    assert np.nanmax(rate["rtt_ms"]) < 200
    # What was sent follows the target: 1-4 s mean within 40 % (encoder lag, key frames).
    elapsed = (sent["send_ns"][-1] - sent["send_ns"][0]) / 1e9
    sent_bps = sent["size"].sum() * 8 / elapsed
    assert 0.6 * rate["target_bps"].mean() < sent_bps < 1.4 * rate["target_bps"].mean()

    live = read_live(tmp_path / "live.jsonl")
    for role in ("sender", "receiver"):
        lines = [line for line in live if line["role"] == role]
        assert len(lines) >= 12
        times = [line["time_ns"] for line in lines]
        assert times == sorted(times)
        gaps = np.diff(times) / 1e9
        assert 0.2 < np.median(gaps) < 0.3
    receiver_lines = [line for line in live if line["role"] == "receiver"]
    assert any(line["owd_ms"] is not None and 0 <= line["owd_ms"] < 5
               for line in receiver_lines)
    assert max(line["rate_bps"] for line in receiver_lines) > 200_000


def test_target_follows_remb_from_fixed_receiver_estimate(processes: Processes,
                                                         tmp_path: Path) -> None:
    receiver, port = start_receiver(processes, tmp_path, "--estimator", "fixed:800000",
                                    "--poll-interval", "0.2")
    sender = processes.start("endpoints.rtc.sender_app", "--dest", f"127.0.0.1:{port}",
                             "--duration", "3", "--start-rate", "300kbit", "--estimator", "remb",
                             "--log-dir", str(tmp_path))
    finish(sender)
    stop(receiver)
    sent, received = check_consistent(tmp_path)
    assert len(received) == len(sent)

    estimates = logs.read_kind(tmp_path, logs.RECEIVER_ESTIMATES)
    assert set(estimates["estimate_bps"].tolist()) == {800_000}
    assert 3 / 0.2 * 0.7 <= len(estimates) <= 3 / 0.2 + 3
    assert np.median(np.diff(estimates["time_ns"])) / 1e9 == pytest.approx(0.2, abs=0.03)

    rate = logs.read_kind(tmp_path, logs.SENDER_RATE)
    remb_value = Remb.representable(800_000)
    first_remb = np.argmax(~np.isnan(rate["remb_bps"]))
    assert not np.isnan(rate["remb_bps"][first_remb])
    assert (rate["target_bps"][:first_remb] == 300_000).all()
    assert (rate["target_bps"][first_remb:] == remb_value).all()
    assert (rate["remb_bps"][first_remb:] == remb_value).all()
    # The first REMB follows the first packet by about one poll interval.
    assert (rate["time_ns"][first_remb] - sent["send_ns"][0]) / 1e9 < 0.6
    # Sent rate over the last 1.5 s (encoder lag ≈ 1 s) near the target.
    late = sent[sent["send_ns"] > sent["send_ns"][-1] - 1.5e9]
    late_bps = late["size"].sum() * 8 / 1.5
    assert 0.7 * remb_value < late_bps < 1.3 * remb_value


def test_alphartc_plugin_runs_unchanged(processes: Processes, tmp_path: Path) -> None:
    receiver, port = start_receiver(processes, tmp_path, "--estimator", f"plugin:{PLUGIN}")
    # Also: recorded frame sizes at 25 fps, video only.
    frame_file = tmp_path / "frames.txt"
    frame_file.write_text("# size key\n9000 1\n1500\n2600 0\n10\n")
    sender = processes.start("endpoints.rtc.sender_app", "--dest", f"127.0.0.1:{port}",
                             "--duration", "2.5", "--estimator", "remb", "--no-audio",
                             "--frames-file", str(frame_file), "--fps", "25",
                             "--log-dir", str(tmp_path))
    finish(sender)
    stop(receiver)
    sent, received = check_consistent(tmp_path)
    check_frames(tmp_path, sent, received)
    assert set(received["payload_type"].tolist()) == {96}
    frames = logs.read_kind(tmp_path, logs.SENDER_FRAMES)
    assert 2.5 * 25 - 2 <= len(frames) <= 2.5 * 25 + 1
    assert np.diff(frames["capture_ns"]).mean() == pytest.approx(40e6, rel=0.01)
    cycle = [9000, 1500, 2600, 10]
    assert frames["size"].tolist() == [cycle[i % 4] for i in range(len(frames))]
    assert frames["key"].tolist() == [i % 4 == 0 for i in range(len(frames))]
    # The example plugin alternates 1e6 and 2e6 (floats); the receiver int()s them.
    estimates = logs.read_kind(tmp_path, logs.RECEIVER_ESTIMATES)["estimate_bps"].tolist()
    assert len(estimates) >= 8
    assert estimates[:4] == [1_000_000, 2_000_000, 1_000_000, 2_000_000]
    rate = logs.read_kind(tmp_path, logs.SENDER_RATE)
    after_remb = rate[~np.isnan(rate["remb_bps"])]
    assert set(after_remb["target_bps"].tolist()) == {Remb.representable(1_000_000),
                                                      Remb.representable(2_000_000)}
    assert (after_remb["target_bps"] == after_remb["remb_bps"]).all()


def test_sigterm_flushes_every_log(processes: Processes, tmp_path: Path) -> None:
    receiver, port = start_receiver(processes, tmp_path, "--estimator", "gcc")
    sender = processes.start("endpoints.rtc.sender_app", "--dest", f"127.0.0.1:{port}",
                             "--log-dir", str(tmp_path))
    time.sleep(2.0)
    signalled_ns = time.monotonic_ns()
    err = stop(sender)
    assert "SIGTERM" in err
    time.sleep(0.1)
    stop(receiver)
    for role in ("sender", "receiver"):
        assert meta(tmp_path, role)["state"] == "signal SIGTERM"
    sent, received = check_consistent(tmp_path)
    # Flushed up to the signal: the last logged send is within 0.3 s of it.
    assert 0 <= (signalled_ns - sent["send_ns"][-1]) / 1e9 < 0.3
    assert len(received) == len(sent)
    for kind in logs.KINDS.values():
        path = logs.log_path(tmp_path, kind)
        assert (path.stat().st_size - logs.HEADER_SIZE) % kind.struct.size == 0, kind.name
    estimates = logs.read_kind(tmp_path, logs.RECEIVER_ESTIMATES)
    assert len(estimates) >= 5 and (estimates["estimate_bps"] > 0).all()


@pytest.mark.parametrize(("module", "args", "code", "text"), [
    ("endpoints.rtc.receiver_app", ["--bind", "127.0.0.1:0", "--estimator", "magic"], 1,
     "fix: use one of"),
    ("endpoints.rtc.receiver_app", ["--bind", "127.0.0.1:0", "--estimator",
                                    "plugin:/nonexistent/BandwidthEstimator.py"], 1,
     "does not exist"),
    ("endpoints.rtc.receiver_app", ["--bind", "127.0.0.1:0", "--feedback-interval", "0.5"],
     2, "[0.05, 0.1]"),
    ("endpoints.rtc.sender_app", ["--dest", "nohost"], 2, "HOST:PORT"),
    ("endpoints.rtc.sender_app", ["--dest", "127.0.0.1:9", "--start-rate", "1Mbit",
                                  "--max-rate", "500kbit"], 2, "outside"),
])
def test_bad_arguments_say_what_and_how_to_fix(module: str, args: list[str], code: int,
                                               text: str) -> None:
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == code, result.stderr
    assert text in result.stderr
