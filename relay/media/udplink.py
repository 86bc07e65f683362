"""The I/O edge of the fast path: one viewer's SRTP context and UDP socket, and batched sends.

A ``UdpLink`` borrows what aiortc negotiated for a viewer (the DTLS transport's outbound SRTP
session, the ICE pair's socket and remote address) and sends through them directly: one
``sendmsg`` with UDP GSO for each run of equal-size packets, plain ``sendto`` where the kernel
refuses GSO. A full socket buffer drops the packets (counted) instead of queueing: a viewer that
stops reading costs the others nothing.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

from ingest.errors import exhausted

try:  # the compiled send loop (setup.py builds it where a C compiler is found)
    from relay.media import _sendloop  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the machine that installed us
    _sendloop = None

log = logging.getLogger(__name__)

# LIVECART_NATIVE=0 keeps the pure-Python loop even where the compiled one is built (the suite
# runs its fast-path tests both ways; the two must put the same bytes on the wire).
NATIVE = _sendloop is not None and os.environ.get("LIVECART_NATIVE", "1") != "0"

SOL_UDP = getattr(socket, "SOL_UDP", 17)
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
_SEGMENT = struct.Struct("=H")
# What sendmsg with UDP_SEGMENT raises where the kernel or the route cannot do GSO.
GSO_REFUSED = (errno.EIO, errno.EINVAL, errno.EMSGSIZE, errno.EOPNOTSUPP, errno.EAFNOSUPPORT)


MAX_PACKET = 1500 - 16 - 128  # pylibsrtp's buffer less the largest SRTP trailer


class SrtpRefused(Exception):
    """libsrtp refused to protect a packet (its error code is the argument)."""


def fast_protect(srtp: Any) -> Callable[[bytes], bytes]:
    """``srtp.protect`` without pylibsrtp's per-call Python overhead (~2 µs of ~3 per packet).

    Calls libsrtp through pylibsrtp's own cffi binding and buffers, with the same checks;
    falls back to ``srtp.protect`` if that pylibsrtp's layout is not the one this was written for.
    """
    try:
        from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]

        context = srtp._srtp[0]
        cdata = srtp._cdata
        buffer = srtp._buffer
    except (ImportError, AttributeError):
        protect: Callable[[bytes], bytes] = srtp.protect
        return protect
    length = ffi.new("int *")
    call = lib.srtp_protect

    def protect_fast(data: bytes) -> bytes:
        size = len(data)
        if size > MAX_PACKET:
            raise ValueError("packet is too long")
        length[0] = size
        buffer[0:size] = data
        status = call(context, cdata, length)
        if status:
            raise SrtpRefused(status)
        out: bytes = buffer[0 : length[0]]
        return out

    return protect_fast


def native_handles(srtp: Any) -> tuple[int, int] | None:
    """(address of libsrtp's ``srtp_protect``, the session's ``srtp_t``) for the compiled loop,
    or None where that pylibsrtp's layout is not the one this was written for."""
    try:
        from pylibsrtp._binding import ffi, lib

        return int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect"))), int(ffi.cast("uintptr_t", srtp._srtp[0]))
    except (ImportError, AttributeError, TypeError):
        return None


class LinkUnavailable(Exception):
    """The viewer's transports are not (or no longer) connected; nothing can be sent."""


class UdpLink:
    """One viewer's path to the wire: ``protect`` is SRTP for RTP, ``send_runs`` sends batches."""

    __slots__ = (
        "_addr",
        "_gso",
        "_handles",
        "_protect_rtcp",
        "_sock",
        "_sockaddr",
        "_srtp",
        "closed",
        "dropped",
        "native",
        "protect",
        "sent",
    )

    def __init__(
        self, sock: socket.socket, addr: tuple[str, int], srtp: Any, *, gso: bool = True, native: bool = NATIVE
    ) -> None:
        self._sock = sock
        self._addr = addr
        self._srtp = srtp  # the compiled loop holds only its address: keep the session alive
        self.protect = fast_protect(srtp)
        self._protect_rtcp = srtp.protect_rtcp
        self._gso = gso
        self.sent = 0
        self.dropped = 0
        self.closed = False
        # ``native(b0, pt, seq, ts, ssrc, ext, tcc_pad, tseq, payloads, runs)``: the whole frame in
        # C (see send_native); None: the fan-out's Python loop over protect and send_runs.
        self.native: Callable[..., None] | None = None
        handles = native_handles(srtp) if native and _sendloop is not None else None
        if handles is not None:
            try:
                self._sockaddr = _sendloop.sockaddr(str(addr[0]), int(addr[1]))
            except ValueError:  # not a numeric address: the Python loop resolves it per send
                return
            self._handles = handles
            self.native = self.send_native

    @classmethod
    def from_dtls(cls, dtls: Any) -> UdpLink:
        """Take over the SRTP session and ICE socket of a connected aiortc ``RTCDtlsTransport``."""
        srtp = getattr(dtls, "_tx_srtp", None)
        connection = getattr(getattr(dtls, "transport", None), "_connection", None)
        pair = getattr(connection, "_nominated", {}).get(1) if connection is not None else None
        if srtp is None or pair is None:
            raise LinkUnavailable("DTLS/ICE not connected")
        transport = pair.protocol.transport
        raw = transport.get_extra_info("socket") if transport is not None else None
        if raw is None:
            raise LinkUnavailable("ICE socket closed")
        # Our own descriptor for the same socket: works with asyncio and uvloop alike (uvloop only
        # hands out a pseudo-socket), and stays valid until we close it.
        try:
            sock = socket.socket(fileno=os.dup(raw.fileno()))
        except OSError as exc:  # EMFILE: the process is out of descriptors
            problem = exhausted(exc)
            raise LinkUnavailable(problem.reason if problem else f"cannot duplicate the ICE socket: {exc}") from None
        sock.setblocking(False)
        return cls(sock, pair.remote_addr, srtp)

    def send_runs(self, packets: list[bytes], runs: list[tuple[int, int]]) -> None:
        """Send protected ``packets``; each run of ``runs`` is one GSO datagram (see rtp.gso_runs)."""
        sock = self._sock
        addr = self._addr
        for start, end in runs:
            try:
                if end - start == 1 or not self._gso:
                    for packet in packets[start:end]:
                        sock.sendto(packet, addr)
                else:
                    sock.sendmsg(
                        [b"".join(packets[start:end])],
                        [(SOL_UDP, UDP_SEGMENT, _SEGMENT.pack(len(packets[start])))],
                        0,
                        addr,
                    )
                self.sent += end - start
            except BlockingIOError:
                self.dropped += end - start
            except OSError as exc:
                if self._gso and end - start > 1 and exc.errno in GSO_REFUSED:
                    log.info("UDP GSO refused (%s): sending packet by packet", exc.strerror)
                    self._gso = False
                    self.send_runs(packets, [(start, end)])
                    continue
                self.dropped += end - start

    def send_native(
        self,
        b0: int,
        pt: int,
        seq: int,
        ts: int,
        ssrc: int,
        ext: bytes,
        tcc_pad: int,
        tseq: int,
        payloads: list[bytes],
        runs: list[tuple[int, int]],
    ) -> None:
        """One frame in the compiled loop: the packets fanout.send_frame would build, protected
        and sent as ``runs``. ``tcc_pad`` -1: no transport-wide number; else the number ``tseq``
        (+1 per packet) and that many zero bytes end ``ext``. Raises as ``protect`` does."""
        fn, ctx = self._handles
        status, sent, refused = _sendloop.send_frame(
            self._sock.fileno(), self._sockaddr, fn, ctx, self._gso, b0, pt, seq, ts, ssrc, ext, tcc_pad, tseq,
            payloads, runs,
        )  # fmt: skip
        if status:
            raise ValueError("packet is too long") if status < 0 else SrtpRefused(status)
        self.sent += sent
        self.dropped += len(payloads) - sent
        if refused:
            log.info("UDP GSO refused (%s): sending packet by packet", os.strerror(refused))
            self._gso = False

    def send_one(self, packet: bytes) -> None:
        try:
            self._sock.sendto(packet, self._addr)
            self.sent += 1
        except OSError:
            self.dropped += 1

    def send_rtcp(self, compound: bytes) -> None:
        """Protect and send one RTCP compound packet (sender reports)."""
        try:
            self.send_one(self._protect_rtcp(compound))
        except Exception:  # an SRTP error on a closing session is not worth more than a count
            self.dropped += 1

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._sock.close()
