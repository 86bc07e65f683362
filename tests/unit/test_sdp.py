"""ingest.sdp: real third-party offers, one case per rejection rule, the answer fix-up, fuzzing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.errors import BadOffer
from ingest.sdp import (
    Codec,
    OfferSummary,
    add_rtcp_mux_only,
    alias_h264_profiles,
    check_publish_offer,
    check_view_offer,
    hint_start_bitrate,
    parse_offer,
    restore_h264_profiles,
    view_codec,
)
from tests.fixtures import all_sdp

PUBLISH_FIXTURES = (
    "obs-offer.sdp",
    "obs-offer-reconstructed.sdp",
    "whip-ffmpeg-offer.sdp",
    "whip-ffmpeg224-offer.sdp",
    "whip-gst-offer.sdp",
    "whip-node-offer.sdp",
    "whip-test-offer.sdp",
)
# fixture -> the video codec LiveCart sends that viewer
VIEW_FIXTURES: dict[str, str] = {
    "whep-test-offer.sdp": "h264",
    "whep-node-offer.sdp": "h264",
    "whep-gst-offer.sdp": "vp8",  # GStreamer's viewer offers VP8 only: it gets a VP8 rendition
}


FIXTURES = all_sdp()


def fixture(name: str) -> str:
    return FIXTURES[name]


def reason_of(call: Callable[[], object]) -> str:
    with pytest.raises(BadOffer) as info:
        call()
    reason = info.value.reason
    assert reason and "\n" not in reason and len(reason) < 160
    return reason


# A minimal valid WHIP offer, built from line lists so each test changes exactly one thing.
FP = "sha-256 " + ":".join(["AB"] * 32)
CREDS = ["a=ice-ufrag:abcd", "a=ice-pwd:0123456789abcdefghijkl", f"a=fingerprint:{FP}", "a=setup:actpass"]
SESSION = ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0"]
AUDIO = [
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "c=IN IP4 0.0.0.0",
    "a=mid:0",
    *CREDS,
    "a=sendonly",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=fmtp:111 minptime=10;useinbandfec=1",
]
VIDEO = [
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
    "c=IN IP4 0.0.0.0",
    "a=mid:1",
    *CREDS,
    "a=sendonly",
    "a=rtcp-mux",
    "a=rtpmap:96 H264/90000",
    "a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    "a=rtpmap:97 rtx/90000",
    "a=fmtp:97 apt=96",
]
DATA = ["m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:2", *CREDS, "a=sctp-port:5000"]


def sdp(*sections: list[str], session: list[str] = SESSION, eol: str = "\r\n") -> str:
    """An offer of ``sections``, with a BUNDLE group of their mids as every browser sends."""
    media = [line for section in sections for line in section]
    mids = [line.removeprefix("a=mid:") for line in media if line.startswith("a=mid:")]
    bundle = ["a=group:BUNDLE " + " ".join(mids)] if mids else []
    return eol.join([*session, *bundle, *media]) + eol


def swap(lines: list[str], old: str, *new: str) -> list[str]:
    """``lines`` with the line ``old`` replaced by ``new`` (none: deleted)."""
    assert old in lines, old
    at = lines.index(old)
    return [*lines[:at], *new, *lines[at + 1 :]]


def without(lines: list[str], *prefixes: str) -> list[str]:
    return [line for line in lines if not line.startswith(prefixes)]


def as_viewer(lines: list[str]) -> list[str]:
    return swap(lines, "a=sendonly", "a=recvonly")


# ---------------------------------------------------------------- fixtures


def test_fixture_folder_holds_exactly_the_offers_these_tests_know() -> None:
    assert set(FIXTURES) == set(PUBLISH_FIXTURES) | set(VIEW_FIXTURES)


@pytest.mark.parametrize("name", [*PUBLISH_FIXTURES, *VIEW_FIXTURES])
def test_every_fixture_parses(name: str) -> None:
    offer = parse_offer(fixture(name))
    assert offer.video is not None and offer.video.codecs
    assert all(s.kind in ("audio", "video", "application") for s in offer.media)


@pytest.mark.parametrize("name", PUBLISH_FIXTURES)
def test_publisher_fixtures_are_accepted_for_publish_and_refused_for_view(name: str) -> None:
    offer = parse_offer(fixture(name))
    check_publish_offer(offer)
    assert not offer.has_datachannel
    assert "a WHEP viewer must receive video" in reason_of(lambda: check_view_offer(offer))


@pytest.mark.parametrize(("name", "codec"), VIEW_FIXTURES.items())
def test_viewer_fixtures_are_served_in_h264_or_else_vp8(name: str, codec: str) -> None:
    offer = parse_offer(fixture(name))
    assert offer.video is not None and offer.video.direction == "recvonly"
    assert offer.has_datachannel  # all three captured viewers happen to offer one
    offers_h264 = any(c.name == "H264" and c.h264_packetization_mode == 1 for c in offer.video.codecs)
    assert offers_h264 == (codec == "h264")
    check_view_offer(offer)
    assert view_codec(offer) == codec
    assert "a WHIP publisher must send video" in reason_of(lambda: check_publish_offer(offer))


def test_obs_offer_with_session_level_ice_and_group_ls_is_accepted() -> None:
    offer = parse_offer(fixture("obs-offer-reconstructed.sdp"))
    check_publish_offer(offer)
    assert offer.video is not None and offer.audio is not None
    assert offer.video.codecs == (
        Codec(96, "H264", 90000, "profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1"),
    )
    assert offer.audio.codecs[0].name == "OPUS" and offer.audio.codecs[0].clock_rate == 48000
    assert (offer.audio.port, offer.video.mid, offer.video.direction) == (9, "1", "sendonly")


def test_node_publisher_is_accepted_through_vp8_alone() -> None:
    offer = parse_offer(fixture("whip-node-offer.sdp"))
    assert offer.video is not None
    names = {c.name for c in offer.video.codecs}
    assert "H264" not in names and "VP8" in names
    check_publish_offer(offer)


def test_chrome_viewer_keeps_m_line_order_and_its_data_channel() -> None:
    offer = parse_offer(fixture("whep-test-offer.sdp"))
    assert [s.kind for s in offer.media] == ["video", "audio", "application"]
    assert offer.has_datachannel
    assert offer.video is not None
    first = offer.video.codecs[0]
    assert (first.payload_type, first.name, first.h264_packetization_mode) == (102, "H264", 1)
    assert offer.video.codecs[2].h264_packetization_mode == 0  # pt 104, packetization-mode=0


def test_gstreamer_bundle_only_sections_with_port_zero_are_accepted() -> None:
    offer = parse_offer(fixture("whip-gst-offer.sdp"))
    assert offer.audio is not None and offer.audio.port == 0 and offer.audio.codecs[0].name == "OPUS"


# ---------------------------------------------------------------- accepted oddities


def test_minimal_offer_summary() -> None:
    offer = parse_offer(sdp(AUDIO, VIDEO))
    assert isinstance(offer, OfferSummary)
    assert offer.audio is not None and offer.video is not None
    assert offer.video.codecs[1] == Codec(97, "RTX", 90000, "apt=96")
    assert offer.video.formats == ("96", "97")
    check_publish_offer(offer)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(sdp(AUDIO, VIDEO, eol="\n"), id="lf-endings"),
        pytest.param(sdp(AUDIO, VIDEO) + "\r\n", id="trailing-empty-line"),
        pytest.param(sdp(AUDIO, VIDEO).removesuffix("\r\n"), id="no-final-newline"),
        pytest.param("\ufeff" + sdp(AUDIO, VIDEO), id="utf8-bom"),
        pytest.param(sdp(AUDIO, VIDEO).replace("\r\n", " \t\r\n"), id="trailing-whitespace"),
        pytest.param(sdp(AUDIO, without(VIDEO, "a=mid")), id="missing-mid"),
        pytest.param(sdp(AUDIO, [*VIDEO, "a=x-livecart-unknown:1", "a=flag-without-value"]), id="unknown"),
        pytest.param(
            sdp(AUDIO, [*VIDEO, "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid", "a=extmap-allow-mixed"]),
            id="extmap",
        ),
        pytest.param(sdp(AUDIO, [*VIDEO, "a=ssrc-group:FID 1 2", "a=ssrc:1 cname:x", "a=ssrc:2 cname:x"]), id="ssrc"),
        pytest.param(sdp(AUDIO, [*VIDEO, "a=rid:h send", "a=rid:l send", "a=simulcast:send h;l"]), id="simulcast"),
        pytest.param(
            sdp(AUDIO, VIDEO, session=[*SESSION, "a=group:LS 0 1", "a=msid-semantic:WMS *", "b=AS:5000"]),
            id="session-attributes",
        ),
        pytest.param(
            sdp(without(AUDIO, *CREDS), without(VIDEO, *CREDS), session=[*SESSION, *CREDS]),
            id="session-level-ice-and-fingerprint",
        ),
        pytest.param(
            sdp(VIDEO, session=[*SESSION, "u=http://caf\u00e9.example/", "e=Caf\u00e9\u00a0\u2603", "i=\tinfo"]),
            id="utf8",
        ),
        pytest.param(sdp(AUDIO, [*VIDEO, "a=rtpmap:96 H264/90000"]), id="identical-duplicate-rtpmap"),
        pytest.param(sdp(AUDIO, [*VIDEO, "a=rtpmap:100 VP9/90000"]), id="rtpmap-not-in-m-line"),
        pytest.param(
            sdp(swap(AUDIO, "m=audio 9 UDP/TLS/RTP/SAVPF 111", "m=audio 0 UDP/TLS/RTP/SAVPF 111"), VIDEO),
            id="port-zero",
        ),
        pytest.param(sdp(swap(AUDIO, "a=sendonly", "a=inactive", "a=foo"), VIDEO), id="inactive-audio"),
        pytest.param(sdp(AUDIO, swap(VIDEO, "a=setup:actpass", "a=setup:passive")), id="setup-passive"),
        pytest.param(sdp(AUDIO, without(VIDEO, "a=setup")), id="no-setup"),
    ],
)
def test_valid_but_odd_offers_are_accepted_for_publish(text: str) -> None:
    check_publish_offer(parse_offer(text))


def test_session_level_direction_is_the_default_and_media_level_overrides_it() -> None:
    offer = parse_offer(sdp(without(AUDIO, "a=sendonly"), VIDEO, session=[*SESSION, "a=recvonly"]))
    assert offer.audio is not None and offer.audio.direction == "recvonly"
    assert offer.video is not None and offer.video.direction == "sendonly"
    plain = parse_offer(sdp(without(VIDEO, "a=sendonly")))
    assert plain.video is not None and plain.video.direction == "sendrecv"


def test_static_payload_types_without_rtpmap_are_known_codecs() -> None:
    audio = swap(AUDIO, "m=audio 9 UDP/TLS/RTP/SAVPF 111", "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 13 126")
    offer = parse_offer(sdp(audio, VIDEO))
    assert offer.audio is not None
    assert [c.name for c in offer.audio.codecs] == ["OPUS", "PCMU", "PCMA", "CN"]  # 126 has no rtpmap


@pytest.mark.parametrize(
    ("fmtp", "mode"),
    [
        ("", 0),
        ("packetization-mode=1", 1),
        ("profile-level-id=42e01f; Packetization-Mode = 1 ", 1),
        ("packetization-mode=0", 0),
        ("packetization-mode=x", 0),
        ("packetization-mode", 0),
    ],
)
def test_h264_packetization_mode_reads_the_fmtp(fmtp: str, mode: int) -> None:
    assert Codec(96, "H264", 90000, fmtp).h264_packetization_mode == mode


def test_viewer_without_data_channel_or_audio_is_served() -> None:
    for offer in (parse_offer(sdp(as_viewer(VIDEO))), parse_offer(sdp(as_viewer(AUDIO), as_viewer(VIDEO)))):
        assert not offer.has_datachannel
        check_view_offer(offer)
    with_data = parse_offer(sdp(as_viewer(AUDIO), as_viewer(VIDEO), DATA))
    assert with_data.has_datachannel
    check_view_offer(with_data)


# ---------------------------------------------------------------- parse_offer rejections


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param(" \r\n\t\n", "empty", id="whitespace"),
        pytest.param("\ufeff\r\n", "empty", id="bom-only"),
        pytest.param("<html>hello</html>", "v=0", id="not-sdp"),
        pytest.param(sdp(VIDEO).replace("v=0", "v=1"), "v=0", id="wrong-version"),
        pytest.param("\r\n" + sdp(VIDEO), "v=0", id="leading-blank-line"),
        pytest.param(sdp(VIDEO, session=[*SESSION, ""]), "line 5 is not <letter>=<value>", id="blank-line"),
        pytest.param(sdp(VIDEO, session=[*SESSION, "A=foo"]), "<letter>=<value>", id="upper-case-type"),
        pytest.param(sdp(VIDEO, session=[*SESSION, "ab=foo"]), "<letter>=<value>", id="two-letter-type"),
        pytest.param(sdp(VIDEO, session=[*SESSION, " a=foo"]), "<letter>=<value>", id="leading-space"),
        pytest.param(sdp(VIDEO, session=[*SESSION, "a=x\x00y"]), "control characters", id="nul"),
        pytest.param(sdp(VIDEO, session=[*SESSION, "a=x\rm=video"]), "control characters", id="bare-cr"),
        pytest.param(sdp(VIDEO, session=[*SESSION, "a=x\u2028m=video"]), "control characters", id="u2028"),
        pytest.param(sdp(VIDEO, session=swap(SESSION, "o=- 1 2 IN IP4 127.0.0.1")), "no o= line", id="no-o"),
        pytest.param(sdp(VIDEO, session=swap(SESSION, "s=-")), "no s= line", id="no-s"),
        pytest.param(sdp(session=[*SESSION, *CREDS]), "no m-lines", id="no-media"),
        pytest.param(sdp(*[AUDIO] * 9), "offer has 9 m-lines; at most 8 are accepted", id="too-many"),
        pytest.param(sdp(swap(VIDEO, VIDEO[0], "m=video 9 UDP/TLS/RTP/SAVPF")), "malformed", id="no-formats"),
        pytest.param(sdp(swap(VIDEO, VIDEO[0], "m=video  9 UDP/TLS/RTP/SAVPF 96")), "malformed", id="double-sp"),
        pytest.param(sdp(swap(VIDEO, VIDEO[0], "m=text 9 UDP/TLS/RTP/SAVPF 96")), "m=text", id="media-text"),
        pytest.param(sdp(swap(VIDEO, VIDEO[0], "m=video 70000 UDP/TLS/RTP/SAVPF 96")), "port", id="port-big"),
        pytest.param(sdp(swap(VIDEO, VIDEO[0], "m=video -1 UDP/TLS/RTP/SAVPF 96")), "port", id="port-neg"),
        pytest.param(sdp(swap(VIDEO, VIDEO[0], "m=video 9/2 UDP/TLS/RTP/SAVPF 96")), "port", id="port-count"),
        pytest.param(sdp(swap(VIDEO, VIDEO[0], "m=video 9 RTP/AVP 96")), "not a WebRTC offer", id="rtp-avp"),
        pytest.param(sdp(swap(VIDEO, VIDEO[0], "m=video 9 RTP/SAVPF 96")), "UDP/TLS/RTP/SAVPF", id="sdes"),
        pytest.param(
            sdp(VIDEO, swap(DATA, DATA[0], "m=application 9 UDP/TLS/RTP/SAVPF 5000")), "UDP/DTLS/SCTP", id="app-proto"
        ),
        pytest.param(sdp(swap(VIDEO, VIDEO[0], "m=video 9 UDP/TLS/RTP/SAVPF 96 abc")), "'abc'", id="pt-word"),
        pytest.param(sdp(swap(VIDEO, VIDEO[0], "m=video 9 UDP/TLS/RTP/SAVPF 96 128")), "0..127", id="pt-128"),
        pytest.param(sdp(swap(VIDEO, VIDEO[0], "m=video 9 UDP/TLS/RTP/SAVPF 96 72")), "RTCP", id="pt-72"),
        pytest.param(sdp(AUDIO, without(VIDEO, "a=ice-ufrag")), "no a=ice-ufrag", id="no-ufrag"),
        pytest.param(sdp(AUDIO, without(VIDEO, "a=ice-pwd")), "no a=ice-pwd", id="no-pwd"),
        pytest.param(
            sdp(AUDIO, swap(VIDEO, "a=ice-pwd:0123456789abcdefghijkl", "a=ice-pwd:")), "ice-pwd", id="empty-pwd"
        ),
        pytest.param(sdp(VIDEO, without(DATA, "a=fingerprint")), "no a=fingerprint", id="no-fingerprint"),
        pytest.param(sdp(VIDEO, session=[*SESSION, "a=fingerprint:sha-256"]), "fingerprint", id="bad-fp"),
        pytest.param(
            sdp(swap(VIDEO, f"a=fingerprint:{FP}", "a=fingerprint:sha-256 zz:zz")), "fingerprint", id="bad-fp-hex"
        ),
        pytest.param(sdp(swap(VIDEO, "a=setup:actpass", "a=setup:holdconn")), "holdconn", id="holdconn"),
        pytest.param(sdp(VIDEO, session=[*SESSION, "a=setup"]), "a=setup", id="setup-empty"),
        pytest.param(sdp(without(VIDEO, "a=rtcp-mux")), "no a=rtcp-mux", id="no-rtcp-mux"),
        pytest.param(sdp([*VIDEO, "a=rtpmap:96"]), "a=rtpmap", id="rtpmap-no-codec"),
        pytest.param(sdp([*VIDEO, "a=rtpmap:96 H264"]), "a=rtpmap", id="rtpmap-no-rate"),
        pytest.param(sdp([*VIDEO, "a=rtpmap:200 H264/90000"]), "a=rtpmap", id="rtpmap-pt-200"),
        pytest.param(sdp([*VIDEO, "a=rtpmap:98 H264/fast"]), "a=rtpmap", id="rtpmap-rate-word"),
        pytest.param(sdp([*VIDEO, "a=rtpmap:96 VP8/90000"]), "two different a=rtpmap", id="rtpmap-conflict"),
        pytest.param(sdp([*VIDEO, "a=fmtp:96"]), "a=fmtp", id="fmtp-no-params"),
        pytest.param(sdp([*VIDEO, "a=fmtp:x apt=1"]), "a=fmtp", id="fmtp-pt-word"),
        pytest.param(sdp([*VIDEO, "a=fmtp:98 apt=96"]), "no matching a=rtpmap:98", id="fmtp-orphan"),
        pytest.param(sdp(VIDEO, [*DATA, "a=fmtp:45 x=1"]), "no matching a=rtpmap:45", id="fmtp-in-data"),
        pytest.param(
            sdp(VIDEO, session=[*SESSION, "a=group:BUNDLE 0 1"]), "BUNDLE names mid '0'", id="bundle-unknown-mid"
        ),
        pytest.param(
            sdp(without(VIDEO, "a=mid"), session=[*SESSION, "a=group:BUNDLE 1"]),
            "BUNDLE names mid '1'",
            id="bundle-mid-missing",
        ),
    ],
)
def test_parse_offer_refuses_with_a_reason_naming_the_problem(text: str, mentions: str) -> None:
    assert mentions in reason_of(lambda: parse_offer(text))


def test_max_media_sections_is_configurable() -> None:
    text = sdp(AUDIO, VIDEO, DATA)
    assert len(parse_offer(text, max_media_sections=3).media) == 3
    assert "at most 2 are accepted" in reason_of(lambda: parse_offer(text, max_media_sections=2))


def test_three_hundred_m_lines_are_refused_by_count() -> None:
    reason = reason_of(lambda: parse_offer(sdp(*[AUDIO] * 300)))
    assert reason == "offer has 300 m-lines; at most 8 are accepted"


def test_non_string_body_is_a_bad_offer() -> None:
    assert "not text" in reason_of(lambda: parse_offer(b"v=0\r\n"))  # type: ignore[arg-type]


# ---------------------------------------------------------------- publish / view checks


H264_MODE0 = "a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f"
VP8_VIDEO = swap(
    swap(VIDEO, "a=rtpmap:96 H264/90000", "a=rtpmap:96 VP8/90000"),
    "a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
)
VIDEO_MODE0 = swap(
    VIDEO, "a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", H264_MODE0
)
AUDIO_PCMU = swap(without(AUDIO, "a=rtpmap", "a=fmtp"), AUDIO[0], "m=audio 9 UDP/TLS/RTP/SAVPF 0")


@pytest.mark.parametrize(
    ("sections", "mentions"),
    [
        pytest.param([AUDIO], "no video m-line", id="no-video"),
        pytest.param([AUDIO, swap(VIDEO, "a=sendonly", "a=recvonly")], "recvonly", id="video-recvonly"),
        pytest.param([AUDIO, swap(VIDEO, "a=sendonly", "a=inactive")], "inactive", id="video-inactive"),
        pytest.param([AUDIO, VIDEO_MODE0], "no video codec in common", id="h264-mode0"),
        pytest.param(
            [AUDIO, swap(VIDEO, "a=rtpmap:96 H264/90000", "a=rtpmap:96 AV1/90000")],
            "no video codec in common",
            id="av1",
        ),
        pytest.param([AUDIO_PCMU, VIDEO], "no audio codec in common", id="audio-pcmu"),
        pytest.param(
            [swap(AUDIO, "a=rtpmap:111 opus/48000/2", "a=rtpmap:111 opus/16000/2"), VIDEO], "Opus/48000", id="opus-16k"
        ),
    ],
)
def test_check_publish_offer_refuses(sections: list[list[str]], mentions: str) -> None:
    offer = parse_offer(sdp(*sections))
    assert mentions in reason_of(lambda: check_publish_offer(offer))


@pytest.mark.parametrize(
    "sections",
    [
        pytest.param([VP8_VIDEO], id="vp8-only-no-audio"),
        pytest.param([swap(AUDIO_PCMU, "a=sendonly", "a=inactive"), VIDEO], id="inactive-pcmu-audio"),
        pytest.param([AUDIO, swap(VIDEO, "a=sendonly", "a=sendrecv")], id="video-sendrecv"),
        pytest.param(
            [
                AUDIO,
                [
                    *swap(VIDEO_MODE0, VIDEO[0], VIDEO[0] + " 98"),
                    "a=rtpmap:98 H264/90000",
                    "a=fmtp:98 packetization-mode=1",
                ],
            ],
            id="mode1-among-mode0",
        ),
        pytest.param(
            [
                AUDIO,
                swap(
                    VIDEO,
                    "a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
                    "a=fmtp:96 packetization-mode=1;profile-level-id=640c1f",
                ),
            ],
            id="h264-high-profile",
        ),
    ],
)
def test_check_publish_offer_accepts(sections: list[list[str]]) -> None:
    check_publish_offer(parse_offer(sdp(*sections)))


@pytest.mark.parametrize(
    ("sections", "mentions"),
    [
        pytest.param([as_viewer(AUDIO)], "no video m-line", id="no-video"),
        pytest.param([VIDEO], "sendonly", id="video-sendonly"),
        pytest.param([swap(VIDEO, "a=sendonly", "a=inactive")], "inactive", id="video-inactive"),
        pytest.param([as_viewer(VIDEO_MODE0)], "H.264 (packetization-mode=1) or VP8", id="h264-mode0-only"),
        pytest.param([as_viewer(AUDIO_PCMU), as_viewer(VIDEO)], "no audio codec in common", id="audio-pcmu"),
    ],
)
def test_check_view_offer_refuses(sections: list[list[str]], mentions: str) -> None:
    offer = parse_offer(sdp(*sections))
    assert mentions in reason_of(lambda: check_view_offer(offer))


def test_a_viewer_offering_vp8_but_no_usable_h264_gets_vp8() -> None:
    offer = parse_offer(sdp(as_viewer(VP8_VIDEO)))
    check_view_offer(offer)
    assert view_codec(offer) == "vp8"
    assert view_codec(parse_offer(sdp(as_viewer(VIDEO)))) == "h264"


def test_check_view_offer_ignores_audio_it_will_not_send_to() -> None:
    check_view_offer(parse_offer(sdp(swap(AUDIO_PCMU, "a=sendonly", "a=inactive"), as_viewer(VIDEO))))
    check_view_offer(parse_offer(sdp(as_viewer(AUDIO), swap(VIDEO, "a=sendonly", "a=sendrecv"))))


# ---------------------------------------------------------------- add_rtcp_mux_only

ANSWER = sdp(as_viewer(AUDIO), as_viewer(VIDEO), DATA)


def test_add_rtcp_mux_only_inserts_after_rtcp_mux_in_audio_and_video_only() -> None:
    out = add_rtcp_mux_only(ANSWER)
    assert out.count("a=rtcp-mux-only\r\n") == 2
    assert out.count("a=rtcp-mux\r\na=rtcp-mux-only\r\n") == 2
    assert out.replace("a=rtcp-mux-only\r\n", "") == ANSWER  # nothing else touched
    data_part = out[out.index("m=application") :]
    assert "rtcp-mux-only" not in data_part


def test_add_rtcp_mux_only_is_idempotent_and_keeps_existing_ones() -> None:
    once = add_rtcp_mux_only(ANSWER)
    assert add_rtcp_mux_only(once) == once
    partly = sdp(swap(AUDIO, "a=rtcp-mux", "a=rtcp-mux", "a=rtcp-mux-only"), VIDEO)
    assert add_rtcp_mux_only(partly).count("a=rtcp-mux-only") == 2


def test_add_rtcp_mux_only_keeps_lf_endings_and_a_missing_final_newline() -> None:
    lf = sdp(AUDIO, VIDEO, eol="\n")
    assert "\r" not in add_rtcp_mux_only(lf)
    assert add_rtcp_mux_only(lf).count("a=rtcp-mux\na=rtcp-mux-only\n") == 2
    ends_in_mux = sdp(AUDIO).removesuffix("\r\n").removesuffix("\r\na=fmtp:111 minptime=10;useinbandfec=1")
    ends_in_mux = ends_in_mux.removesuffix("\r\na=rtpmap:111 opus/48000/2")
    assert ends_in_mux.endswith("a=rtcp-mux")
    assert add_rtcp_mux_only(ends_in_mux) == ends_in_mux + "\r\na=rtcp-mux-only"


def test_add_rtcp_mux_only_leaves_sections_without_rtcp_mux_alone() -> None:
    for text in (sdp(without(VIDEO, "a=rtcp-mux")), sdp(DATA), "", "garbage"):
        assert add_rtcp_mux_only(text) == text


def test_add_rtcp_mux_only_on_real_offers_only_adds_lines() -> None:
    for text in FIXTURES.values():
        out = add_rtcp_mux_only(text)
        assert add_rtcp_mux_only(out) == out
        assert out.replace("a=rtcp-mux-only\r\n", "") == text.replace("a=rtcp-mux-only\r\n", "")


# ---------------------------------------------------------------- fuzzing


def must_not_crash(text: str) -> None:
    """Whatever the input, parse_offer and the checks end normally or in BadOffer."""
    try:
        offer = parse_offer(text)
    except BadOffer as exc:
        assert exc.reason and "\n" not in exc.reason
        return
    for check in (check_publish_offer, check_view_offer):
        try:
            check(offer)
        except BadOffer:
            pass
    once = add_rtcp_mux_only(text)
    assert add_rtcp_mux_only(once) == once


@st.composite
def mutated_fixture(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(sorted(FIXTURES.values()))).split("\r\n")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        op = draw(st.sampled_from(["delete", "duplicate", "truncate", "insert", "replace_char", "swap"]))
        if not lines:
            break
        if op == "delete":
            del lines[at]
        elif op == "duplicate":
            lines.insert(at, lines[at])
        elif op == "truncate":
            lines[at] = lines[at][: draw(st.integers(0, len(lines[at])))]
        elif op == "insert":
            cut = draw(st.integers(0, len(lines[at])))
            lines[at] = lines[at][:cut] + draw(st.text(max_size=8)) + lines[at][cut:]
        elif op == "replace_char" and lines[at]:
            cut = draw(st.integers(0, len(lines[at]) - 1))
            lines[at] = lines[at][:cut] + draw(st.characters()) + lines[at][cut + 1 :]
        elif op == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
    return draw(st.sampled_from(["\r\n", "\n"])).join(lines)


sdp_like = st.lists(
    st.one_of(
        st.sampled_from(["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", *AUDIO, *VIDEO, *DATA, *CREDS]),
        st.from_regex(r"[a-z]=[ -~]{0,30}", fullmatch=True),
        st.from_regex(r"a=(rtpmap|fmtp|setup|mid|ice-ufrag|fingerprint):[ -~]{0,20}", fullmatch=True),
        st.from_regex(r"m=(audio|video|application|x) [0-9/ -]{0,8} [A-Z/]{0,20}( [0-9a-z]{0,4}){0,3}", fullmatch=True),
    ),
    max_size=30,
).map(lambda lines: "\r\n".join(["v=0", *lines]))


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1")), sdp_like))
def test_random_text_parses_or_raises_bad_offer(text: str) -> None:
    must_not_crash(text)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(), sdp_like.map(lambda text: text.replace("v=0", "", 1))))
def test_add_rtcp_mux_only_never_raises_and_only_ever_adds_its_line(text: str) -> None:
    once = add_rtcp_mux_only(text)
    assert add_rtcp_mux_only(once) == once
    assert once.replace("a=rtcp-mux-only", "").split() == text.replace("a=rtcp-mux-only", "").split()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_fixture())
def test_mutated_fixtures_parse_or_raise_bad_offer(text: str) -> None:
    must_not_crash(text)


def _h264_offer(*fmtps: str) -> str:
    lines = ["v=0", "m=video 9 UDP/TLS/RTP/SAVPF " + " ".join(str(96 + i) for i in range(len(fmtps)))]
    for i, fmtp in enumerate(fmtps):
        lines += [f"a=rtpmap:{96 + i} H264/90000", f"a=fmtp:{96 + i} {fmtp}"]
    return "\r\n".join(lines) + "\r\n"


def test_main_and_high_only_offers_are_aliased_to_baseline_and_restored_in_the_answer() -> None:
    offer = _h264_offer(
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f",
        "packetization-mode=1;profile-level-id=640028",
        "packetization-mode=0;profile-level-id=4d001f",
    )
    aliased, originals = alias_h264_profiles(offer)
    assert originals == {"96": "4d001f", "97": "640028"}
    assert "a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n" in aliased
    assert "a=fmtp:98 packetization-mode=0;profile-level-id=4d001f" in aliased  # mode 0 is not ours to touch
    answer = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n"
    assert restore_h264_profiles(answer, originals).endswith("profile-level-id=4d001f\r\n")


def test_offers_with_a_baseline_format_are_left_alone() -> None:
    offer = _h264_offer("packetization-mode=1;profile-level-id=42e01f", "packetization-mode=1;profile-level-id=640c1f")
    assert alias_h264_profiles(offer) == (offer, {})
    no_level = _h264_offer("packetization-mode=1")  # no profile-level-id means baseline (RFC 6184)
    assert alias_h264_profiles(no_level) == (no_level, {})


VP8_ANSWER = [
    "m=video 9 UDP/TLS/RTP/SAVPF 100 101",
    "c=IN IP4 0.0.0.0",
    "a=mid:1",
    *CREDS,
    "a=rtcp-mux",
    "a=rtpmap:100 VP8/90000",
    "a=rtpmap:101 rtx/90000",
    "a=fmtp:101 apt=100",
]


def test_start_bitrate_hint_goes_on_every_video_format_and_nothing_else() -> None:
    answer = sdp(AUDIO, VIDEO, DATA)
    out = hint_start_bitrate(answer, 1500)
    fmtp = "a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
    assert fmtp + ";x-google-start-bitrate=1500\r\n" in out
    assert out.count("x-google-start-bitrate") == 1  # not on audio, RTX or the data channel
    assert out.replace(";x-google-start-bitrate=1500", "") == answer


def test_start_bitrate_hint_adds_an_fmtp_line_where_a_format_has_none() -> None:
    answer = sdp(AUDIO, VP8_ANSWER, eol="\n")
    out = hint_start_bitrate(answer, 2000)
    assert "a=rtpmap:100 VP8/90000\na=fmtp:100 x-google-start-bitrate=2000\na=rtpmap:101 rtx/90000\n" in out
    assert "\r" not in out and out.count("x-google") == 1
    video = parse_offer(out).video
    assert video is not None and video.codecs[0].name.upper() == "VP8"


def test_start_bitrate_hint_is_idempotent_and_zero_leaves_the_answer_alone() -> None:
    answer = sdp(AUDIO, VIDEO)
    once = hint_start_bitrate(answer, 1500)
    assert hint_start_bitrate(once, 1500) == once
    for text in (answer, sdp(DATA), "", "garbage"):
        assert hint_start_bitrate(text, 0) == text
