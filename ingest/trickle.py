"""RFC 9725 PATCH, the pure part: what a trickle/ICE-restart request to a WHIP or WHEP session means.

Owns: reading an ``application/trickle-ice-sdpfrag`` body (RFC 8840) into a small typed
``TrickleFragment``, checking ``If-Match`` against the session's entity-tag, and deciding whether
the request trickles candidates or restarts ICE (``read_patch``), plus the offer fix-up that keeps
mDNS candidates away from aiortc (``drop_mdns_candidates``).

Why it exists: aiortc has no API for either. Third-party players trickle even though LiveCart's
answer carries all its candidates (medooze's client sends no ``If-Match`` on plain trickle,
MediaMTX's sends ``If-Match: *`` and gives up on any status but 204), and aioice awaits the mDNS
resolution of every ``.local`` candidate inside ``setRemoteDescription`` (up to a second, for
addresses it cannot reach over loopback anyway), which delayed answers to browser offers.
Stdlib only; every problem ends in ``BadFragment``, ``PreconditionFailed`` or
``PreconditionRequired``, never another exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.errors import LiveCartError

MDNS_SUFFIX = ".local"
MAX_CANDIDATES = 64  # per PATCH: a browser trickles a handful; more is not a real client
_CANDIDATE = re.compile(r"candidate:\S{1,32} [0-9]{1,3} (?i:udp|tcp) [0-9]{1,10} \S{1,255} [0-9]{1,5} typ \S{1,16}.*")
_ETAG = re.compile(r'(?:W/)?"([\x21\x23-\x7e]*)"')
_BAD_CHARS = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f]")


class BadFragment(LiveCartError):
    """The PATCH body is not a usable trickle-ice-sdpfrag."""

    status = 400


class PreconditionFailed(LiveCartError):
    """``If-Match`` names an entity-tag the session does not have (RFC 9725 section 4.3.1)."""

    status = 412


class PreconditionRequired(LiveCartError):
    """An ICE restart must say ``If-Match: *`` (RFC 9725 section 4.4)."""

    status = 428


class IceRestartUnsupported(LiveCartError):
    """RFC 9725 section 4.4 lets a server that cannot restart ICE answer 422: aiortc 1.16 sets a
    transport's remote ICE credentials once (``RTCIceTransport.start``) and aioice 0.13 has no
    restart, so a new ufrag/pwd cannot be applied to a running session."""

    status = 422


@dataclass(frozen=True, slots=True)
class RemoteCandidate:
    """One ``a=candidate`` line of a fragment, with the media section (mid) it belongs to."""

    mid: str | None
    mline_index: int
    line: str  # without the "a=" prefix, as aiortc's candidate_from_sdp wants it

    @property
    def host(self) -> str:
        return self.line.split(" ")[4]

    @property
    def is_mdns(self) -> bool:
        return self.host.lower().endswith(MDNS_SUFFIX)


@dataclass(frozen=True, slots=True)
class TrickleFragment:
    """What a PATCH body says: the peer's ICE credentials, candidates, and whether it is done."""

    ufrag: str | None
    pwd: str | None
    candidates: tuple[RemoteCandidate, ...]
    end_of_candidates: bool

    def usable(self) -> tuple[RemoteCandidate, ...]:
        """Candidates aioice can use here: mDNS names are dropped (see the module docstring)."""
        return tuple(c for c in self.candidates if not c.is_mdns)


@dataclass(frozen=True, slots=True)
class PatchRequest:
    """A checked PATCH: ``restart`` when the fragment carries new ICE credentials."""

    fragment: TrickleFragment
    restart: bool


def parse_fragment(text: str) -> TrickleFragment:
    """Read an RFC 8840 fragment; tolerant of what real clients send (CRLF or LF, blank lines,
    session-level candidates, attributes we ignore), strict about what we would act on."""
    if _BAD_CHARS.search(text):
        raise BadFragment("fragment contains control characters: send plain-text SDP lines")
    ufrag: str | None = None
    pwd: str | None = None
    mid: str | None = None
    mline = -1
    candidates: list[RemoteCandidate] = []
    end = False
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise BadFragment(f"fragment line {number} is not <letter>=<value>")
        if line.startswith("m="):
            mline += 1
            mid = None
            continue
        if not line.startswith("a="):
            continue
        name, _, value = line[2:].partition(":")
        if name == "ice-ufrag":
            ufrag = value.strip()
        elif name == "ice-pwd":
            pwd = value.strip()
        elif name == "mid":
            mid = value.strip() or None
        elif name == "end-of-candidates":
            end = True
        elif name == "candidate":
            candidate = line[2:]
            if not _CANDIDATE.fullmatch(candidate):
                raise BadFragment(f"fragment line {number} is not an ICE candidate (RFC 8839)")
            if len(candidates) == MAX_CANDIDATES:
                raise BadFragment(f"fragment has over {MAX_CANDIDATES} candidates")
            candidates.append(RemoteCandidate(mid, max(mline, 0), candidate))
    return TrickleFragment(ufrag, pwd, tuple(candidates), end)


def entity_tags(header: str) -> list[str] | None:
    """The entity-tags of an ``If-Match`` value; None for ``*`` (any), [] when unreadable."""
    value = header.strip()
    if value == "*":
        return None
    return [m.group(1) for m in _ETAG.finditer(value)]


def read_patch(body: str, if_match: str | None, *, etag: str, ufrag: str, pwd: str) -> PatchRequest:
    """Check a PATCH against a session whose entity-tag is ``etag`` and whose peer's current ICE
    credentials are ``ufrag``/``pwd``.

    A fragment with other credentials is an ICE restart, which must carry ``If-Match`` (428
    otherwise; clients send ``*``). A trickle may omit it (medooze's client does, and a trickle
    changes nothing a stale client could clobber), but a tag given must be ours or ``*`` (412).
    """
    fragment = parse_fragment(body)
    restart = (fragment.ufrag is not None and fragment.ufrag != ufrag) or (
        fragment.pwd is not None and fragment.pwd != pwd
    )
    if if_match is None:
        if restart:
            raise PreconditionRequired("an ICE restart needs 'If-Match: *'")
        return PatchRequest(fragment, False)
    tags = entity_tags(if_match)
    if tags is not None and etag not in tags:
        raise PreconditionFailed("If-Match does not match this session's ETag")
    return PatchRequest(fragment, restart)


def ice_credentials(sdp: str) -> tuple[str, str]:
    """The first ``a=ice-ufrag`` and ``a=ice-pwd`` of an SDP ("" when absent)."""
    ufrag = pwd = ""
    for raw in sdp.splitlines():
        line = raw.strip()
        if not ufrag and line.startswith("a=ice-ufrag:"):
            ufrag = line[len("a=ice-ufrag:") :].strip()
        elif not pwd and line.startswith("a=ice-pwd:"):
            pwd = line[len("a=ice-pwd:") :].strip()
    return ufrag, pwd


def drop_mdns_candidates(offer: str) -> str:
    """The offer without its ``.local`` (mDNS) host candidates; every other line kept as it was.

    aioice would resolve each one before ``setRemoteDescription`` returns; LiveCart finds such a
    peer through its connectivity checks (peer-reflexive), as for an offer with no candidates.
    """
    lines = offer.splitlines(keepends=True)
    kept = [line for line in lines if not _is_mdns_candidate_line(line.rstrip("\r\n"))]
    return offer if len(kept) == len(lines) else "".join(kept)


def _is_mdns_candidate_line(line: str) -> bool:
    if not line.startswith("a=candidate:"):
        return False
    parts = line.split(" ")
    return len(parts) > 4 and parts[4].lower().endswith(MDNS_SUFFIX)
