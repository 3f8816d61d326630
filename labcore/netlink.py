"""pyroute2, imported once with the one setting every netlab process needs.

pyroute2 opens a socket in another namespace by forking a child (``fork``
mode, ``pyroute2/process.py``) and stops it with SIGTERM.  The child
inherits the parent's Python SIGTERM handler: netlab's own (which raises to
tear a lab down) or Ray's (``sys.exit``).  A child that gets SIGTERM while
still in Python then raises, skips its ``os._exit`` and goes on running
the parent's code in the other namespace: a second copy of the parent.
CI once saw exactly that (a pytest clone in a lab namespace, where loopback
was down).  ``disable_mp_signal`` makes the child reset SIGTERM to its
default action first, so SIGTERM ends it there.

Import pyroute2 through this module, never directly.
"""

from __future__ import annotations

import pyroute2.config

pyroute2.config.disable_mp_signal = True

from pyroute2 import IPRoute, netns  # noqa: E402  (after the setting, on purpose)
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402

__all__ = ["IPRoute", "NetlinkError", "netns"]
