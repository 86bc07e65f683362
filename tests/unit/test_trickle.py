"""ingest.trickle: reading trickle-ice-sdpfrag bodies, If-Match rules, restart detection, mDNS."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.errors import LiveCartError
from ingest.trickle import (
    MAX_CANDIDATES,
    BadFragment,
    PreconditionFailed,
    PreconditionRequired,
    drop_mdns_candidates,
    entity_tags,
    ice_credentials,
    parse_fragment,
    read_patch,
)
from tests.fixtures import sdp

HOST = "candidate:1 1 udp 2122260223 192.0.2.7 50000 typ host generation 0"
MDNS = "candidate:2 1 udp 2122260223 6f1c0e6a-2b1d-4c2a-9f0e-5b7a1d2c3e4f.local 50001 typ host"
SRFLX = "candidate:3 1 udp 1686052607 203.0.113.9 40000 typ srflx raddr 192.0.2.7 rport 50000"
TCP = "candidate:4 1 tcp 1518280447 192.0.2.7 9 typ host tcptype active"


def medooze_fragment(ufrag: str = "uf", pwd: str = "pw", *candidates: str, end: bool = False) -> str:
    """The shape medooze's whip-whep 1.2 sends (CRLF, ICE credentials first, one m-line)."""
    body = f"a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
    body += "".join(f"a={c}\r\n" for c in candidates)
    return body + ("a=end-of-candidates\r\n" if end else "")


def test_a_medooze_fragment_is_read_with_its_mid_and_end_of_candidates() -> None:
    fragment = parse_fragment(medooze_fragment("uf", "pw", HOST, MDNS, SRFLX, TCP, end=True))
    assert (fragment.ufrag, fragment.pwd, fragment.end_of_candidates) == ("uf", "pw", True)
    assert [c.mid for c in fragment.candidates] == ["0"] * 4
    assert [c.line for c in fragment.usable()] == [HOST, SRFLX, TCP]  # the .local one is dropped


def test_session_level_candidates_and_lf_endings_are_accepted() -> None:
    fragment = parse_fragment(f"a=ice-ufrag:uf\na=ice-pwd:pw\na={HOST}\n\n")
    assert fragment.candidates[0].mid is None and fragment.candidates[0].mline_index == 0


def test_candidates_of_a_second_m_line_keep_its_index() -> None:
    body = medooze_fragment("uf", "pw", HOST) + f"m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\na={SRFLX}\r\n"
    assert [(c.mid, c.mline_index) for c in parse_fragment(body).candidates] == [("0", 0), ("1", 1)]


@pytest.mark.parametrize(
    "body",
    [
        "a=candidate:garbage\r\n",
        "not sdp at all\r\n",
        "a=candidate:1 1 udp 1 192.0.2.1 notaport typ host\r\n",
        "a=ice-ufrag:uf\x00\r\n",
        "".join(f"a={HOST}\r\n" for _ in range(MAX_CANDIDATES + 1)),
    ],
)
def test_a_bad_fragment_is_a_400_with_a_one_line_reason(body: str) -> None:
    with pytest.raises(BadFragment) as error:
        parse_fragment(body)
    assert error.value.status == 400 and "\n" not in error.value.reason


@given(st.text(max_size=400))
def test_any_body_is_read_or_refused_with_a_typed_error(body: str) -> None:
    try:
        read_patch(body, None, etag="e", ufrag="uf", pwd="pw")
    except LiveCartError:
        pass


def test_entity_tags() -> None:
    assert entity_tags("*") is None
    assert entity_tags('"abc"') == ["abc"]
    assert entity_tags('W/"abc", "def"') == ["abc", "def"]
    assert entity_tags("abc") == []


@pytest.mark.parametrize(
    ("if_match", "outcome"),
    [
        (None, "trickle"),  # medooze: no If-Match on trickle
        ("*", "trickle"),  # MediaMTX's reader
        ('"etag1"', "trickle"),
        ('"other", "etag1"', "trickle"),
        ('"other"', 412),
        ("etag1", 412),  # unquoted: not an entity-tag, so it matches nothing
    ],
)
def test_if_match_on_trickle(if_match: str | None, outcome: object) -> None:
    body = medooze_fragment("uf", "pw", HOST)
    if outcome == 412:
        with pytest.raises(PreconditionFailed):
            read_patch(body, if_match, etag="etag1", ufrag="uf", pwd="pw")
    else:
        assert not read_patch(body, if_match, etag="etag1", ufrag="uf", pwd="pw").restart


def test_new_credentials_are_a_restart_which_needs_if_match() -> None:
    for body in (medooze_fragment("new", "pw"), medooze_fragment("uf", "newpw")):
        with pytest.raises(PreconditionRequired) as error:
            read_patch(body, None, etag="e", ufrag="uf", pwd="pw")
        assert error.value.status == 428
        assert read_patch(body, "*", etag="e", ufrag="uf", pwd="pw").restart
        with pytest.raises(PreconditionFailed):
            read_patch(body, '"stale"', etag="e", ufrag="uf", pwd="pw")


def test_a_fragment_without_credentials_is_a_trickle() -> None:
    assert not read_patch(f"a={HOST}\r\n", None, etag="e", ufrag="uf", pwd="pw").restart


def test_ice_credentials_of_a_real_offer() -> None:
    ufrag, pwd = ice_credentials(sdp("whep-test-offer.sdp"))
    assert ufrag and len(pwd) >= 22


def test_mdns_candidates_leave_the_offer_and_nothing_else_changes() -> None:
    offer = sdp("whep-test-offer.sdp")
    assert drop_mdns_candidates(offer) == offer  # no .local candidates: the very same text
    lines = offer.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("a=candidate:"))
    mdns_line = f"a={MDNS}\r\n"
    with_mdns = "".join([*lines[:at], mdns_line, *lines[at:]])
    assert drop_mdns_candidates(with_mdns) == offer


@given(st.lists(st.sampled_from([HOST, MDNS, SRFLX, TCP, "a=mid:0", "a=rtcp-mux"]), max_size=30))
def test_dropping_mdns_keeps_every_other_line_in_order(lines: list[str]) -> None:
    text = "".join(f"{'' if ln.startswith('a=') else 'a='}{ln}\r\n" for ln in lines)
    kept = [ln for ln in text.splitlines(keepends=True) if ".local " not in ln]
    assert drop_mdns_candidates(text) == "".join(kept)
