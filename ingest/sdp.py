"""Vetting untrusted WHIP/WHEP SDP offers, and the one fix-up LiveCart's SDP answers need.

Owns: turning an offer body into a small typed summary (``parse_offer``), deciding whether a
publisher's or viewer's offer is one LiveCart can serve (``check_publish_offer``,
``check_view_offer``), and RFC 9725's ``a=rtcp-mux-only`` in answers (``add_rtcp_mux_only``).
Pure and stdlib only. Every problem ends in ``BadOffer`` with a one-line reason, never another
exception. Odd but valid offers are accepted; what aiortc would fail on obscurely (or crash on)
is refused here with a clear reason instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from ingest.errors import BadOffer

_LINE = re.compile(r"[a-z]=.*")
# aiortc splits lines with str.splitlines(), which also breaks on these: refusing them keeps
# what we vet and what aiortc reads the same lines.
_BAD_CHARS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_DECIMAL = re.compile(r"[0-9]{1,10}")
_RTPMAP = re.compile(r"([0-9]{1,10}) ([^\s/]+)/([0-9]{1,10})(?:/([0-9]{1,10}))?")
_FMTP = re.compile(r"([0-9]{1,10}) (.*)")
_FINGERPRINT = re.compile(r"[A-Za-z0-9-]+ [0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+")
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_SETUP_ROLES = ("actpass", "active", "passive")
_KINDS = ("audio", "video", "application")
_RTCP_CLASH = range(72, 77)  # RTP payload types that look like RTCP packet types (RFC 5761)
_STATIC_PT = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000), 13: ("CN", 8000)}


@dataclass(frozen=True, slots=True)
class Codec:
    """One payload type of a media section: its rtpmap and raw fmtp parameters."""

    payload_type: int
    name: str
    clock_rate: int
    fmtp: str

    @property
    def h264_packetization_mode(self) -> int:
        """The fmtp ``packetization-mode`` (RFC 6184), 0 when absent or unreadable."""
        for param in self.fmtp.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "packetization-mode":
                value = value.strip()
                return int(value) if value in ("0", "1", "2") else 0
        return 0


@dataclass(frozen=True, slots=True)
class MediaSection:
    """What one m-line of an offer asks for. ``formats`` are the m-line's raw format tokens."""

    kind: str
    mid: str | None
    direction: str
    codecs: tuple[Codec, ...]
    port: int
    formats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OfferSummary:
    """The parts of a vetted offer that LiveCart decides on, in m-line order."""

    media: tuple[MediaSection, ...]

    @property
    def video(self) -> MediaSection | None:
        return next((m for m in self.media if m.kind == "video"), None)

    @property
    def audio(self) -> MediaSection | None:
        return next((m for m in self.media if m.kind == "audio"), None)

    @property
    def has_datachannel(self) -> bool:
        return any(m.kind == "application" and "webrtc-datachannel" in m.formats for m in self.media)


class _SessionDefaults(NamedTuple):
    """Session-level values: media sections inherit them unless they set their own."""

    ice: dict[str, str]
    fingerprint: bool
    direction: str
    bundle: tuple[str, ...]


def _show(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def _int(token: str, low: int, high: int) -> int | None:
    """A plain ASCII decimal in [low, high]; int() alone would also take '+1', '1_0' and '٣'."""
    if not _DECIMAL.fullmatch(token):
        return None
    value = int(token)
    return value if low <= value <= high else None


def _attr(value: str) -> tuple[str, str | None]:
    name, colon, rest = value.partition(":")
    return name, (rest if colon else None)


def _split_lines(text: str) -> list[str]:
    if not isinstance(text, str):
        raise BadOffer("offer is not text: send the SDP offer as an application/sdp body")
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise BadOffer("offer is empty: send the SDP offer as the request body")
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if lines[0].rstrip(" \t") != "v=0":
        raise BadOffer("offer does not start with v=0: the body must be an SDP offer")
    cleaned = []
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(" \t")
        if _BAD_CHARS.search(line):
            raise BadOffer(f"offer line {number} contains control characters: send plain-text SDP")
        if not _LINE.fullmatch(line):
            raise BadOffer(f"offer line {number} is not <letter>=<value>: {_show(line)}")
        cleaned.append(line)
    return cleaned


def _check_fingerprint(value: str | None, where: str) -> None:
    if value is None or not _FINGERPRINT.fullmatch(value):
        raise BadOffer(f"bad a=fingerprint in {where}: expected '<hash> <hex:hex:...>'")


def _check_setup(value: str | None, where: str) -> None:
    if value not in _SETUP_ROLES:
        raise BadOffer(f"a=setup value {_show(value or '')} in {where}: use actpass, active or passive")


def _parse_session(lines: list[str]) -> _SessionDefaults:
    if not any(line.startswith("o=") for line in lines):
        raise BadOffer("offer has no o= line before the first m= line: it is not a valid SDP offer")
    if not any(line.startswith("s=") for line in lines):
        raise BadOffer("offer has no s= line before the first m= line: it is not a valid SDP offer")
    ice: dict[str, str] = {}
    fingerprint = False
    direction = "sendrecv"
    bundle: list[str] = []
    for line in lines:
        if not line.startswith("a="):
            continue
        name, value = _attr(line[2:])
        if name == "group" and value is not None and value.startswith("BUNDLE "):
            bundle.extend(value.split()[1:])
        elif name in ("ice-ufrag", "ice-pwd"):
            ice[name] = value or ""
        elif name == "fingerprint":
            _check_fingerprint(value, "the session part")
            fingerprint = True
        elif name == "setup":
            _check_setup(value, "the session part")
        elif name in _DIRECTIONS:
            direction = name
    return _SessionDefaults(ice, fingerprint, direction, tuple(bundle))


def _parse_mline(value: str, number: int) -> tuple[str, int, str, list[str]]:
    parts = value.split(" ")
    if len(parts) < 4 or "" in parts:
        raise BadOffer(f"m-line {number} is malformed: expected m=<media> <port> <proto> <formats>")
    kind, port_token, proto, formats = parts[0], parts[1], parts[2], parts[3:]
    if kind not in _KINDS:
        raise BadOffer(f"offer has an m={_show(kind)[1:-1]} line: only audio, video and application are accepted")
    port = _int(port_token, 0, 65535)
    if port is None:
        raise BadOffer(f"m={kind} line has port {_show(port_token)}: expected a number 0..65535")
    if kind == "application":
        if "DTLS/SCTP" not in proto:
            raise BadOffer(f"m=application uses {_show(proto)}: a WebRTC data channel needs UDP/DTLS/SCTP")
    elif "UDP/TLS/RTP/SAVPF" not in proto:
        raise BadOffer(f"m={kind} uses {_show(proto)}, not UDP/TLS/RTP/SAVPF: this is not a WebRTC offer")
    return kind, port, proto, formats


def _payload_type(token: str, kind: str) -> int:
    pt = _int(token, 0, 127)
    if pt is None:
        raise BadOffer(f"m={kind} format {_show(token)} is not an RTP payload type 0..127")
    if pt in _RTCP_CLASH:
        raise BadOffer(f"m={kind} uses payload type {pt}, which clashes with RTCP: use 96..127")
    return pt


def _parse_section(lines: list[str], number: int, session: _SessionDefaults) -> MediaSection:
    kind, port, _, formats = _parse_mline(lines[0][2:], number)
    rtp = kind != "application"
    payload_types = [_payload_type(token, kind) for token in formats] if rtp else []
    where = f"m-line {number} ({kind})"
    mid: str | None = None
    direction = session.direction
    ice: dict[str, str] = {}
    fingerprint = session.fingerprint
    rtcp_mux = False
    rtpmaps: dict[int, tuple[str, int]] = {}
    fmtps: dict[int, str] = {}
    for line in lines[1:]:
        if not line.startswith("a="):
            continue
        name, value = _attr(line[2:])
        if name == "mid":
            mid = value or None
        elif name in _DIRECTIONS:
            direction = name
        elif name in ("ice-ufrag", "ice-pwd"):
            ice[name] = value or ""
        elif name == "fingerprint":
            _check_fingerprint(value, where)
            fingerprint = True
        elif name == "setup":
            _check_setup(value, where)
        elif name == "rtcp-mux":
            rtcp_mux = True
        elif name == "rtpmap":  # aiortc reads rtpmap and fmtp in every section, even application
            match = _RTPMAP.fullmatch(value or "")
            pt = _int(match.group(1), 0, 127) if match else None
            rate = _int(match.group(3), 1, 10_000_000) if match else None
            if match is None or pt is None or rate is None:
                raise BadOffer(f"bad {_show(line)} in {where}: expected a=rtpmap:<pt 0..127> <codec>/<rate>")
            entry = (match.group(2).upper(), rate)
            if rtpmaps.setdefault(pt, entry) != entry:
                raise BadOffer(f"payload type {pt} has two different a=rtpmap lines in {where}")
        elif name == "fmtp":
            match = _FMTP.fullmatch(value or "")
            pt = _int(match.group(1), 0, 127) if match else None
            if match is None or pt is None:
                raise BadOffer(f"bad {_show(line)} in {where}: expected a=fmtp:<pt 0..127> <parameters>")
            fmtps[pt] = match.group(2)
    for key in ("ice-ufrag", "ice-pwd"):
        if not ice.get(key, session.ice.get(key, "")):
            raise BadOffer(f"{where} has no a={key}: give ICE credentials at session level or in every m-line")
    if not fingerprint:
        raise BadOffer(f"{where} has no a=fingerprint: DTLS needs it at session level or in every m-line")
    if rtp and not rtcp_mux:
        raise BadOffer(f"{where} has no a=rtcp-mux: WebRTC needs RTP and RTCP on one port")
    for pt in fmtps:
        if pt not in rtpmaps:  # aiortc fails with an uncaught StopIteration on these
            raise BadOffer(f"a=fmtp:{pt} in {where} has no matching a=rtpmap:{pt} line")
    codecs: list[Codec] = []
    for pt in dict.fromkeys(payload_types):
        codec_name, rate = rtpmaps.get(pt) or _STATIC_PT.get(pt, ("", 0))
        if codec_name:
            codecs.append(Codec(pt, codec_name, rate, fmtps.get(pt, "")))
    return MediaSection(kind, mid, direction, tuple(codecs), port, tuple(formats))


def parse_offer(text: str, *, max_media_sections: int = 8) -> OfferSummary:
    """Parse and vet an untrusted SDP offer; raises only ``BadOffer``."""
    lines = _split_lines(text)
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    if not starts:
        raise BadOffer("offer has no m-lines: add an audio or video track before creating it")
    if len(starts) > max_media_sections:
        raise BadOffer(f"offer has {len(starts)} m-lines; at most {max_media_sections} are accepted")
    session = _parse_session(lines[: starts[0]])
    ends = [*starts[1:], len(lines)]
    media = tuple(
        _parse_section(lines[start:end], number, session)
        for number, (start, end) in enumerate(zip(starts, ends, strict=True), start=1)
    )
    mids = {section.mid for section in media}
    for mid in session.bundle:
        if mid not in mids:  # aiortc fails with an AttributeError on these
            raise BadOffer(f"a=group:BUNDLE names mid {_show(mid)}, which no m-line has: add its a=mid")
    return OfferSummary(media)


def _is_h264_mode1(codec: Codec) -> bool:
    return codec.name == "H264" and codec.clock_rate == 90000 and codec.h264_packetization_mode == 1


def _has_opus(section: MediaSection) -> bool:
    return any(c.name == "OPUS" and c.clock_rate == 48000 for c in section.codecs)


def check_publish_offer(offer: OfferSummary) -> None:
    """Refuse a WHIP offer that sends no video LiveCart can decode, or audio it cannot."""
    video = offer.video
    if video is None:
        raise BadOffer("offer has no video m-line: publish a video track")
    if video.direction in ("recvonly", "inactive"):
        raise BadOffer(f"video m-line is {video.direction}: a WHIP publisher must send video (sendonly)")
    if not any(_is_h264_mode1(c) or (c.name, c.clock_rate) == ("VP8", 90000) for c in video.codecs):
        raise BadOffer("no video codec in common: offer H.264 (packetization-mode=1) or VP8")
    audio = offer.audio
    if audio is not None and audio.direction != "inactive" and not _has_opus(audio):
        raise BadOffer("no audio codec in common: offer Opus/48000 or publish without audio")


def view_codec(offer: OfferSummary) -> str | None:
    """The video codec LiveCart sends this viewer: "h264" when offered (the ladder's own codec,
    encoded anyway), else "vp8" (a VP8 rendition is encoded while such viewers watch), else None."""
    video = offer.video
    codecs = video.codecs if video is not None else ()
    if any(_is_h264_mode1(c) for c in codecs):
        return "h264"
    if any((c.name, c.clock_rate) == ("VP8", 90000) for c in codecs):
        return "vp8"
    return None


def check_view_offer(offer: OfferSummary) -> None:
    """Refuse a WHEP offer that can receive neither H.264 nor VP8 (or that wants audio other than
    Opus); a data channel is optional."""
    video = offer.video
    if video is None:
        raise BadOffer("offer has no video m-line: a WHEP viewer must receive video (recvonly)")
    if video.direction not in ("recvonly", "sendrecv"):
        raise BadOffer(f"video m-line is {video.direction}: a WHEP viewer must receive video (recvonly)")
    if view_codec(offer) is None:
        raise BadOffer("no video codec in common: LiveCart sends H.264 (packetization-mode=1) or VP8")
    audio = offer.audio
    if audio is not None and audio.direction in ("recvonly", "sendrecv") and not _has_opus(audio):
        raise BadOffer("no audio codec in common: LiveCart sends Opus/48000; offer it or drop the audio")


def add_rtcp_mux_only(answer: str) -> str:
    """Add ``a=rtcp-mux-only`` after ``a=rtcp-mux`` in each audio/video section (RFC 9725).

    Keeps the answer's line endings and every other character; applying it twice changes nothing.
    """
    lines = answer.splitlines(keepends=True)  # "".join(lines) == answer, whatever the endings
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    if not starts:
        return answer
    targets = []
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        bare = [line.rstrip("\r\n") for line in lines[start:end]]
        if bare[0][2:].split(" ", 1)[0] in ("audio", "video") and "a=rtcp-mux-only" not in bare:
            if "a=rtcp-mux" in bare:
                targets.append(start + bare.index("a=rtcp-mux"))
    for at in reversed(targets):
        line = lines[at]
        ending = line[len(line.rstrip("\r\n")) :]
        # an answer that ends in a=rtcp-mux without a newline: that line needs one now
        missing = "" if ending else ("\r\n" if "\r\n" in answer else "\n")
        lines[at : at + 1] = [line + missing, "a=rtcp-mux-only" + ending]
    return "".join(lines)


def advertise_address(answer: str, public_ip: str) -> str:
    """Put ``public_ip`` in the answer's host candidates and c= lines (a server behind 1:1 NAT).

    The ports stay as they are: with 1:1 NAT the public address forwards every port.
    """
    family = "IP6" if ":" in public_ip else "IP4"
    eol = "\r\n" if "\r\n" in answer else "\n"
    out = []
    for line in answer.split(eol):
        if line.startswith("a=candidate:"):
            parts = line.split(" ")
            if len(parts) >= 8 and parts[6] == "typ" and parts[7] == "host":
                parts[4] = public_ip
                line = " ".join(parts)
        elif line.startswith("c=IN "):
            line = f"c=IN {family} {public_ip}"
        out.append(line)
    return eol.join(out)


_PROFILE_LEVEL_ID = re.compile(r"profile-level-id=([0-9a-fA-F]{6})")
_FMTP_LINE = re.compile(r"^a=fmtp:(\d+) (.*)$")
_RTPMAP_H264 = re.compile(r"^a=rtpmap:(\d+) H264/90000", re.IGNORECASE)
BASELINE_ALIAS = "42e01f"  # constrained baseline, level 3.1: what aiortc accepts from a publisher


def alias_h264_profiles(offer: str) -> tuple[str, dict[str, str]]:
    """Let aiortc accept a publisher's Main/High H.264 offer (its decoder, FFmpeg, decodes them all).

    aiortc only negotiates constrained-baseline H.264 from an offer. When an offer's
    packetization-mode=1 H.264 formats are all of other profiles, they are offered to aiortc as
    constrained baseline; ``restore_h264_profiles`` puts the publisher's own profile-level-id back
    into the answer. Offers with a baseline format are left alone (aiortc picks that one).
    Returns the offer for aiortc and {payload type: original profile-level-id}.
    """
    lines = offer.splitlines(keepends=True)
    h264 = {m.group(1) for line in lines if (m := _RTPMAP_H264.match(line.strip()))}
    mode1: dict[int, tuple[str, str]] = {}  # line index -> (payload type, profile-level-id)
    for index, line in enumerate(lines):
        match = _FMTP_LINE.match(line.rstrip("\r\n"))
        if not match or match.group(1) not in h264:
            continue
        params = match.group(2).replace(" ", "").lower()
        if "packetization-mode=1" not in params.split(";"):
            continue
        profile = _PROFILE_LEVEL_ID.search(match.group(2))
        level_id = profile.group(1) if profile else "42001f"
        mode1[index] = (match.group(1), level_id)
    if not mode1 or any(level_id[:2].lower() == "42" for _, level_id in mode1.values()):
        return offer, {}
    originals: dict[str, str] = {}
    for index, (payload_type, level_id) in mode1.items():
        originals[payload_type] = level_id
        lines[index] = _PROFILE_LEVEL_ID.sub(f"profile-level-id={BASELINE_ALIAS}", lines[index])
    return "".join(lines), originals


def restore_h264_profiles(answer: str, originals: dict[str, str]) -> str:
    """Put the publisher's own profile-level-id back into the answer (see ``alias_h264_profiles``)."""
    if not originals:
        return answer
    lines = answer.splitlines(keepends=True)
    for index, line in enumerate(lines):
        match = _FMTP_LINE.match(line.rstrip("\r\n"))
        if match and match.group(1) in originals:
            lines[index] = _PROFILE_LEVEL_ID.sub(f"profile-level-id={originals[match.group(1)]}", line)
    return "".join(lines)


_RTPMAP_VIDEO = re.compile(r"^a=rtpmap:(\d+) ([A-Za-z0-9-]+)/90000")
_NOT_ENCODERS = ("rtx", "red", "ulpfec", "flexfec-03")  # formats that carry no encoder of their own


def hint_start_bitrate(answer: str, kbps: int) -> str:
    """Ask a browser publisher to start its encoder at ``kbps`` (``x-google-start-bitrate``).

    libwebrtc starts every video sender at 300 kbit/s and, with REMB feedback, climbs by about
    8 % a second: a 720p host looks blurred for the first half minute of the session. The
    parameter on each video format of the answer moves the start; other stacks ignore unknown
    fmtp parameters (OBS sends at its configured rate anyway). RTX formats get none. A format
    without an ``a=fmtp`` line gets one. ``kbps`` 0 leaves the answer as it is; applying it
    twice changes nothing.
    """
    if kbps <= 0 or "x-google-start-bitrate=" in answer:
        return answer
    lines = answer.splitlines(keepends=True)
    newline = "\r\n" if "\r\n" in answer else "\n"
    out: list[str] = []
    video = False
    formats: dict[str, int] = {}  # payload type -> index in ``out`` of its rtpmap line, this section
    with_fmtp: set[str] = set()

    def close_section() -> None:
        for payload_type, at in sorted(formats.items(), key=lambda item: -item[1]):
            if payload_type not in with_fmtp:
                out.insert(at + 1, f"a=fmtp:{payload_type} x-google-start-bitrate={kbps}{newline}")

    for line in lines:
        bare = line.rstrip("\r\n")
        if bare.startswith("m="):
            close_section()
            formats, with_fmtp = {}, set()
            video = bare.startswith("m=video ")
        elif video and (rtpmap := _RTPMAP_VIDEO.match(bare)) and rtpmap.group(2).lower() not in _NOT_ENCODERS:
            formats[rtpmap.group(1)] = len(out)
        elif video and (fmtp := _FMTP_LINE.match(bare)) and fmtp.group(1) in formats:
            with_fmtp.add(fmtp.group(1))
            ending = line[len(bare) :] or newline
            line = f"{bare};x-google-start-bitrate={kbps}{ending}"
        out.append(line)
    close_section()
    return "".join(out)
