"""A protected stream's playlists name every URI with the viewer's token (relay/http/hls_access)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from relay.http.hls_access import add_query, with_token

LIVE = """#EXTM3U
#EXT-X-VERSION:9
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0
#EXT-X-MAP:URI="init-ab1.mp4"
#EXT-X-DATERANGE:ID="card-3",START-DATE="2026-12-03T08:00:00.000Z",X-CARD-URI="aHR0cHM6Ly9zaG9w"
#EXT-X-PART:DURATION=0.333,URI="part-ab1-7.0.m4s",INDEPENDENT=YES
seg-ab1-6.m4s
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-ab1-7.1.m4s"
#EXT-X-RENDITION-REPORT:URI="../480p/index.m3u8",LAST-MSN=7,LAST-PART=0
"""


def _token_of(uri: str) -> list[str]:
    return parse_qs(urlsplit(uri).query).get("token", [])


def test_every_uri_of_a_live_playlist_carries_the_token_and_nothing_else_changes() -> None:
    token = "eyJ.abc+/=.sig"
    out = with_token(LIVE, token)
    uris = re.findall(r'(?<=[:,])URI="([^"]*)"', out) + [
        line for line in out.splitlines() if line and not line.startswith("#")
    ]
    assert len(uris) == 5
    assert all(_token_of(uri) == [token] for uri in uris), uris
    assert 'X-CARD-URI="aHR0cHM6Ly9zaG9w"' in out  # a card's attribute is not a URI to rewrite
    assert re.sub(r"[?&]token=[^\"\n]*", "", out) == LIVE


def test_a_uri_with_a_query_keeps_it() -> None:
    uri = add_query("index.m3u8?start=5&duration=10", "token", "t k")
    assert uri == "index.m3u8?start=5&duration=10&token=t%20k"
    assert parse_qs(urlsplit(uri).query) == {"start": ["5"], "duration": ["10"], "token": ["t k"]}


NAMES = st.from_regex(r"[a-z0-9][a-z0-9.\-/]{0,30}(\?[a-z]=[0-9]{1,3})?", fullmatch=True)


@given(st.lists(NAMES, min_size=1, max_size=8), st.text(min_size=1, max_size=40))
def test_any_token_reaches_every_uri_line_once_as_sent(names: list[str], token: str) -> None:
    playlist = "#EXTM3U\n" + "".join(f"#EXTINF:2.0,\n{name}\n" for name in names)
    out = with_token(playlist, token).splitlines()
    uris = [line for line in out if not line.startswith("#")]
    assert len(uris) == len(names)
    for name, uri in zip(names, uris, strict=True):
        assert _token_of(uri) == [token]
        assert uri.startswith(name)
