"""User-space link emulator: a process moving packets between two TUN devices.

It emulates rate (byte token model, or Mahimahi's delivery opportunities),
fixed, scheduled and jittered delay, IID and Gilbert-Elliott loss, and
droptail/drophead queues in packets or bytes, per direction, and logs every
packet's fate.  The lab uses it when the kernel lacks netem, or on request.
"""

from __future__ import annotations

from .config import DEFAULT_QUEUE, DIRECTIONS, DirectionConfig, DirectionName, UserLinkSpec
from .control import ControlClient
from .engine import REASON_NAMES, DirectionEngine
from .errors import UserLinkError
from .launcher import UserLinkHandle, start_link
from .log import log_status, read_change_log, read_packet_log
from .wiring import Recorder, create_link_interfaces, delete_link_interfaces

__all__ = [
    "DEFAULT_QUEUE",
    "DIRECTIONS",
    "REASON_NAMES",
    "ControlClient",
    "DirectionConfig",
    "DirectionEngine",
    "DirectionName",
    "Recorder",
    "UserLinkError",
    "UserLinkHandle",
    "UserLinkSpec",
    "create_link_interfaces",
    "delete_link_interfaces",
    "log_status",
    "read_change_log",
    "read_packet_log",
    "start_link",
]
