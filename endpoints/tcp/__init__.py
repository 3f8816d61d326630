"""Kernel TCP endpoints: bulk and application-limited senders with any kernel
congestion control, TCP_INFO sampling every 10 ms, an externally driven
pacing-rate mode, and a receiver that logs bytes per 10 ms bin.

Run them as ``python -m endpoints.tcp.sender_app`` and
``python -m endpoints.tcp.receiver_app``; their on-disk formats and readers
are in :mod:`endpoints.tcp.logs`.
"""
