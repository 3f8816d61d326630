"""RTC endpoint library: RTP/RTCP wire formats, transport-wide feedback,
media model, packetizer, pacer, GCC and receiver-side estimator plugins.

Layers: wire formats (:mod:`rtp`, :mod:`rtcp`) are pure functions of bytes;
control logic (:mod:`twcc`, :mod:`media`, :mod:`packetizer`, :mod:`pacer`,
:mod:`gcc`, :mod:`estimators`) takes time as an argument; sockets live in
the sender/receiver processes built on top.
"""
