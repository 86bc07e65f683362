"""The per-packet path: hot loops that neither log nor await per packet.

``rtp`` (pure packetisation), ``rewriter`` (pure per-viewer numbering), ``history`` (pure packet
history and GOP cache), ``fanout`` (one stream to its viewers), ``udplink`` (SRTP + batched UDP
sends), ``takeover`` and ``feedback`` (the seam with aiortc: parameters in, RTCP out).
"""
