"""Which of a run's logs stopped early, and why, for results.json.

Every log writer (user-space links, trace replayers, RTC and TCP endpoints)
stops at its size cap (``NETLAB_LOG_CAP_MB``) or at its first failed write
(a full disk) and records that where the lab can read it: in the file's
header, or for the headerless TCP logs in a ``<file>.status`` beside it.
A run whose logs were cut short says so instead of reporting numbers that
silently cover only part of it.
"""

from __future__ import annotations

from pathlib import Path

from endpoints.rtc import logs as rtc_logs
from shaping.replay.log import MAGIC as REPLAY_MAGIC
from shaping.replay.log import read_replay_log
from shaping.userlink.log import CHANGE_MAGIC, PACKET_MAGIC
from shaping.userlink.log import log_status as userlink_status


def _status(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
        if magic in (PACKET_MAGIC, CHANGE_MAGIC):
            return userlink_status(path)
        if magic == REPLAY_MAGIC:
            return read_replay_log(path).status
        if magic == rtc_logs.MAGIC:
            return rtc_logs.log_status(path)
        if path.suffix == ".status":
            return path.read_text(encoding="utf-8", errors="replace").strip()[:500] or None
    except (OSError, ValueError) as exc:
        return f"unreadable: {exc}"
    return None


def find_log_problems(*folders: Path) -> list[dict[str, str]]:
    """``[{"file": ..., "problem": ...}]`` for every truncated or failed log."""
    found: list[dict[str, str]] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix not in (".bin", ".log", ".status") or not path.is_file():
                continue
            problem = _status(path)
            if problem is not None:
                name = path.with_suffix("") if path.suffix == ".status" else path
                found.append({"file": str(name), "problem": problem})
    return found
