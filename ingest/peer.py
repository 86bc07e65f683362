"""Creating, negotiating and closing one aiortc peer connection the way LiveCart needs it.

Two things aiortc 1.16 gets wrong for real publishers are adapted here, per connection: it offers
only ECDSA DTLS suites (RSA-certificate peers fail), and it checks the peer's fingerprint by
parsing the certificate with ``cryptography``, which refuses the X.509 v2 certificates OBS 30.2
(libdatachannel < 0.23 with OpenSSL) presents, raising inside a task nobody awaits.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdtlstransport import RTCDtlsParameters, RTCDtlsTransport, State
from aiortc.sdp import candidate_from_sdp
from OpenSSL import crypto

from ingest.errors import BadOffer, exhausted
from ingest.sdp import add_rtcp_mux_only
from ingest.trickle import TrickleFragment, drop_mdns_candidates

log = logging.getLogger(__name__)


# aiortc offers only ECDHE-ECDSA suites. That is enough while aiortc is the DTLS server (its own
# certificate is ECDSA), but a peer with an RSA certificate acting as DTLS server (GStreamer's
# webrtcbin) then finds "no shared cipher". The RSA suites below make both roles work.
ECDSA_SUITES = (  # aiortc's own list
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"
)
RSA_SUITES = b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"


def new_peer_connection() -> RTCPeerConnection:
    """A peer connection that never contacts a STUN server (aiortc uses a public one by default)
    and that accepts peers with RSA DTLS certificates as well as ECDSA ones."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for certificate in getattr(pc, "_RTCPeerConnection__certificates", []):
        _accept_rsa_peers(certificate)
    return pc


def _accept_rsa_peers(certificate: Any) -> None:
    create = certificate._create_ssl_context

    def create_with_rsa(srtp_profiles: Any) -> Any:
        ctx = create(srtp_profiles)
        ctx.set_cipher_list(ECDSA_SUITES + b":" + RSA_SUITES)
        return ctx

    certificate._create_ssl_context = create_with_rsa


# The digests a=fingerprint may name that we can check (RFC 8122 allows more; aiortc knows these).
FINGERPRINT_DIGESTS = {"sha-256": hashlib.sha256, "sha-384": hashlib.sha384, "sha-512": hashlib.sha512}
# Why a DTLS transport failed, kept on the transport for ``failure_reason`` (one line each).
FINGERPRINT_MISMATCH = "DTLS certificate does not match the offer's a=fingerprint"
NO_USABLE_FINGERPRINT = "no a=fingerprint with sha-256, sha-384 or sha-512 in the offer"
_FAILURE_ATTR = "_livecart_failure"


def fingerprint_of(der: bytes, algorithm: str) -> str:
    """The SDP spelling (upper-case hex pairs joined by colons) of ``der``'s digest."""
    digest = FINGERPRINT_DIGESTS[algorithm.lower()](der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def fingerprints_match(der: bytes, fingerprints: Iterable[tuple[str, str]]) -> str | None:
    """None when the certificate ``der`` passes aiortc's rule, else why not.

    aiortc's rule, kept: at least one (algorithm, value) pair has an algorithm we know, and every
    such pair matches. Only the digest is computed over the DER bytes themselves, so a
    certificate that ``cryptography`` cannot parse (X.509 v2) is judged by what the SDP pinned.
    """
    usable = [(a.lower(), v) for a, v in fingerprints if a.lower() in FINGERPRINT_DIGESTS]
    if not usable:
        return NO_USABLE_FINGERPRINT
    for algorithm, value in usable:
        # Constant-time compare: the fingerprint is the only thing authenticating the peer.
        if not hmac.compare_digest(value.strip().upper(), fingerprint_of(der, algorithm)):
            return FINGERPRINT_MISMATCH
    return None


def _check_peer_by_der(transport: RTCDtlsTransport) -> None:
    """Replace ``transport``'s fingerprint check by one over the certificate's DER bytes."""

    def validate(remote: RTCDtlsParameters) -> None:
        # Runs inside aiortc's connect task, which nobody awaits: it must never raise.
        try:
            cert = transport._ssl.get_peer_certificate() if transport._ssl is not None else None
            der = crypto.dump_certificate(crypto.FILETYPE_ASN1, cert) if cert is not None else b""
            problem = fingerprints_match(der, [(f.algorithm, f.value) for f in remote.fingerprints])
        except Exception as exc:
            problem = f"DTLS peer certificate unreadable: {type(exc).__name__}: {exc}"
        if problem is not None:
            setattr(transport, _FAILURE_ATTR, problem)
            transport._set_state(State.FAILED)

    # Per instance, not on the class: other aiortc users in the process keep aiortc's behaviour.
    transport._validate_peer_identity = validate  # type: ignore[method-assign,assignment]


def _dtls_transports(pc: RTCPeerConnection) -> list[RTCDtlsTransport]:
    found: dict[int, RTCDtlsTransport] = {}
    for transceiver in pc.getTransceivers():
        found[id(transceiver.receiver.transport)] = transceiver.receiver.transport
    if pc.sctp is not None:
        found[id(pc.sctp.transport)] = pc.sctp.transport
    return list(found.values())


def failure_reason(pc: RTCPeerConnection, *, was_connected: bool) -> str:
    """One line saying why ``pc`` failed: ICE, or DTLS (and what about it), or just its state."""
    transports = _dtls_transports(pc)
    if any(t.transport.state == "failed" for t in transports):
        # aiortc still tries DTLS over a failed ICE transport, so ICE is the cause when both failed.
        if was_connected:
            return "ICE failed: the peer stopped answering consent checks"
        return "ICE failed: no connectivity check succeeded"
    for transport in transports:
        if transport.state == "failed":
            return str(getattr(transport, _FAILURE_ATTR, "DTLS handshake failed"))
    return f"connection {pc.connectionState}"


async def apply_offer(pc: RTCPeerConnection, offer_sdp: str) -> None:
    """Set the remote offer; aiortc's assorted exceptions on odd SDP become BadOffer.

    The DTLS transports it creates get LiveCart's fingerprint check before they can start
    (aiortc starts them only once the answer is set).
    """
    try:
        # aioice would await each .local name's resolution here, delaying the answer by up to ~1 s.
        await pc.setRemoteDescription(RTCSessionDescription(sdp=drop_mdns_candidates(offer_sdp), type="offer"))
    except Exception as exc:
        raise exhausted(exc) or BadOffer(f"offer could not be applied: {type(exc).__name__}: {exc}") from None
    for transport in _dtls_transports(pc):
        _check_peer_by_der(transport)


async def add_remote_candidates(pc: RTCPeerConnection, fragment: TrickleFragment, who: str) -> int:
    """Hand a PATCH's candidates to aiortc (they help when the offer had none and the peer's
    checks cannot reach us first); returns how many were taken. Never raises: a candidate
    aiortc cannot use is skipped, as RFC 8838 lets an agent ignore what it cannot pair."""
    added = 0
    for remote in fragment.usable():
        try:
            candidate = candidate_from_sdp(remote.line.partition(":")[2])
            candidate.sdpMid = remote.mid
            candidate.sdpMLineIndex = remote.mline_index
            await pc.addIceCandidate(candidate)
        except Exception as exc:
            log.info("%s: trickled candidate ignored (%s: %s)", who, type(exc).__name__, exc)
            continue
        added += 1
    if fragment.end_of_candidates:
        try:
            await pc.addIceCandidate(None)
        except Exception as exc:  # e.g. the offer already said end-of-candidates
            log.info("%s: end-of-candidates ignored (%s: %s)", who, type(exc).__name__, exc)
    return added


async def make_answer(pc: RTCPeerConnection, *, timeout_s: float) -> str:
    """Create and set the answer (waits for host candidates); returns the RFC 9725 answer SDP."""
    try:
        answer = await pc.createAnswer()
        await asyncio.wait_for(pc.setLocalDescription(answer), timeout_s)
    except TimeoutError:
        raise BadOffer("gathering ICE candidates timed out") from None
    except Exception as exc:  # running out of descriptors or ports is the server's condition, not the offer's
        raise exhausted(exc) or BadOffer(f"no answer possible for this offer: {type(exc).__name__}: {exc}") from None
    local_sdp: str = pc.localDescription.sdp
    return add_rtcp_mux_only(local_sdp)


async def close_quietly(pc: RTCPeerConnection, who: str) -> None:
    """Close ``pc``; aiortc's close can raise, and a session's end must not."""
    try:
        await pc.close()
    except Exception as exc:
        log.warning("%s: closing peer connection raised %s: %s", who, type(exc).__name__, exc)


def watch_state(pc: RTCPeerConnection, on_change: Callable[[str], None]) -> None:
    """Call ``on_change(state)`` with each new connection state."""

    @pc.on("connectionstatechange")
    def _changed() -> None:
        on_change(pc.connectionState)


def is_abandoned_connect(context: dict[str, object]) -> bool:
    """An asyncio error context from aiortc's own connect task, which it starts without keeping
    (``ensure_future(self.__connect())``): when the peer connection is closed while ICE or DTLS
    is still starting (a viewer that never connects, at shutdown), the task fails with nobody to
    retrieve it. That is a session ending, not a bug."""
    future = context.get("future")
    get_coro = getattr(future, "get_coro", None)
    coro = get_coro() if callable(get_coro) else None
    name = str(getattr(coro, "__qualname__", ""))
    return name == "RTCPeerConnection.__connect" and context.get("exception") is not None


def quiet_abandoned_connects(loop: asyncio.AbstractEventLoop) -> None:
    """Log aiortc's abandoned connect tasks in one line; every other loop error as asyncio does."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        if is_abandoned_connect(context):
            exc = context["exception"]
            log.info("a peer connection closed while connecting: %s: %s", type(exc).__name__, exc)
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)

