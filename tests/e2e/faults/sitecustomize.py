"""Fault injection for a server started with this folder on PYTHONPATH (tests only).

``LIVECART_FAULT=dup-emfile``: duplicating a viewer's ICE socket for the fast path
(``UdpLink.from_dtls``) fails with EMFILE, as it does when the process runs out of descriptors
between the answer and the connection.
``LIVECART_FAULT=receiver-thread``: aiortc cannot start a publisher's decoder thread once
connected, as when the process is out of memory or tasks. Nothing else is touched.
"""

from __future__ import annotations

import errno
import os
import sys

if os.environ.get("LIVECART_FAULT") == "dup-emfile":
    _dup = os.dup

    def _failing_dup(fd: int) -> int:
        if sys._getframe(1).f_code.co_name == "from_dtls":
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return _dup(fd)

    os.dup = _failing_dup

if os.environ.get("LIVECART_FAULT") == "receiver-thread":
    from typing import Any

    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    async def _failing_receive(self: Any, parameters: Any) -> None:
        raise RuntimeError("can't start new thread")

    RTCRtpReceiver.receive = _failing_receive  # type: ignore[method-assign]
