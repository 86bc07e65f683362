"""LL-HLS playlist text (relay/hls/playlist.py) and cards as EXT-X-DATERANGE (dateranges.py),
read back with the ``m3u8`` package as a player would."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import m3u8
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.hls.dateranges import CARD_CLASS, CardRanges
from relay.hls.playlist import (
    Variant,
    avc_codec,
    iso_date,
    media_playlist,
    multivariant_playlist,
    part_name,
    target_duration,
)
from relay.hls.timeline import TrackTimeline

HZ = 90_000
WALL0 = 1_795_000_000.0
EPOCH = "mx5abc"


def timeline_with(frames: int, *, key_every: int = 60, gap: int = 3000) -> TrackTimeline:
    timeline = TrackTimeline(
        timescale=HZ, part_s=0.333, grid_s=2.0, early_s=0.5, target_duration_s=target_duration(2.0), window=6
    )
    for i in range(frames):
        timeline.on_sample(i * gap, i % key_every == 0)
    return timeline


def card_json(card_id: str, title: str = "Mug") -> str:
    return json.dumps({"id": card_id, "title": title, "price": "12.50"})


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 1200))
def test_live_playlists_keep_the_ll_hls_rules(frames: int) -> None:
    timeline = timeline_with(frames)
    text = media_playlist(timeline, epoch=EPOCH, wall_at_zero=WALL0)
    playlist = m3u8.loads(text)
    part_target = playlist.part_inf.part_target
    assert playlist.server_control.can_block_reload == "YES"
    assert playlist.server_control.part_hold_back >= 3 * part_target
    assert 0.33 <= part_target <= 0.5
    complete = [s for s in playlist.segments if s.uri]
    for segment in complete:
        assert segment.duration <= playlist.target_duration
        assert segment.program_date_time is not None
    for segment in playlist.segments:
        for part in segment.parts:
            assert part.duration <= part_target
    assert len(complete) <= 6
    assert playlist.media_sequence == timeline.segments[0].msn
    hint = timeline.next_part()
    assert hint is not None
    assert playlist.preload_hint.hint_type == "PART"
    assert playlist.preload_hint.uri == part_name(EPOCH, *hint)
    # Parts are listed for the newest segments: the open one's always.
    assert not timeline.segments[-1].parts or playlist.segments[-1].parts


def test_program_date_time_follows_the_media_clock() -> None:
    timeline = timeline_with(400)
    playlist = m3u8.loads(media_playlist(timeline, epoch=EPOCH, wall_at_zero=WALL0))
    for listed, segment in zip([s for s in playlist.segments if s.uri], timeline.segments, strict=False):
        expected = datetime.fromtimestamp(WALL0 + segment.start / HZ, tz=UTC)
        assert abs((listed.program_date_time - expected).total_seconds()) < 0.001


def test_a_discontinuity_gets_its_tag_and_its_own_init_segment() -> None:
    timeline = timeline_with(200)
    timeline.end(200 * 3000)
    for i in range(100):
        timeline.on_sample(10 * HZ + i * 3000, i == 0, new_map=i == 0)
    text = media_playlist(timeline, epoch=EPOCH, wall_at_zero=WALL0)
    assert "#EXT-X-DISCONTINUITY\n" in text
    assert f'#EXT-X-MAP:URI="{EPOCH}-init1.mp4"' in text
    playlist = m3u8.loads(text)
    assert [s.discontinuity for s in playlist.segments if s.uri].count(True) == 1


def test_multivariant_lists_every_rung_with_bandwidth_resolution_codecs_and_audio() -> None:
    variants = [
        Variant("720p", 1280, 720, 3_200_000, "avc1.42c01f,mp4a.40.2", 30),
        Variant("240p", 426, 240, 530_000, "avc1.42c015,mp4a.40.2", 30),
    ]
    playlist = m3u8.loads(multivariant_playlist(variants, audio="audio"))
    assert playlist.is_variant
    got = [(p.uri, p.stream_info.bandwidth, p.stream_info.resolution, p.stream_info.codecs) for p in playlist.playlists]
    assert got == [
        ("720p/index.m3u8", 3_200_000, (1280, 720), "avc1.42c01f,mp4a.40.2"),
        ("240p/index.m3u8", 530_000, (426, 240), "avc1.42c015,mp4a.40.2"),
    ]
    assert [(m.type, m.group_id, m.uri) for m in playlist.media] == [("AUDIO", "aac", "audio/index.m3u8")]


def test_avc_codec_reads_profile_and_level_from_the_sps() -> None:
    sps = b"\x00\x00\x00\x01\x67\x42\xc0\x1f\xda\x01"
    assert avc_codec(b"\x00\x00\x00\x01\x09\xf0" + sps + b"\x00\x00\x01\x68\xce") == "avc1.42c01f"
    assert avc_codec(b"\x00\x00\x01\x41\x9a") is None


def _decoded(payload: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


def test_cards_become_dateranges_at_their_media_time() -> None:
    ranges = CardRanges()
    ranges.apply(1, "show", "mug", card_json("mug"), 4_000)
    ranges.apply(2, "show", "hat", card_json("hat", "Hat, \"wool\""), 5_500)
    ranges.apply(3, "hide", "mug", card_json("mug"), 9_250)
    ranges.apply(4, "update", "hat", card_json("hat", "Hat (sale)"), 10_000)
    timeline = timeline_with(400)
    text = media_playlist(
        timeline, epoch=EPOCH, wall_at_zero=WALL0, dateranges=ranges.ranges(wall_at_zero=WALL0, since_ms=0)
    )
    playlist = m3u8.loads(text)
    dateranges = [d for segment in playlist.segments for d in segment.dateranges]
    got = [
        (d.id, d.class_, d.start_date, d.end_date, _decoded(dict(d.x_client_attrs)["x_card"].strip('"'))["title"])
        for d in dateranges
    ]
    assert got == [
        ("card-1", CARD_CLASS, iso_date(WALL0 + 4.0), iso_date(WALL0 + 9.25), "Mug"),
        ("card-2", CARD_CLASS, iso_date(WALL0 + 5.5), iso_date(WALL0 + 10.0), 'Hat, "wool"'),
        ("card-4", CARD_CLASS, iso_date(WALL0 + 10.0), None, "Hat (sale)"),
    ]


def test_a_late_joiner_still_gets_the_cards_on_screen_and_old_ones_age_out() -> None:
    ranges = CardRanges()
    ranges.apply(1, "show", "mug", card_json("mug"), 1_000)
    ranges.apply(2, "show", "hat", card_json("hat"), 2_000)
    ranges.apply(3, "delete", "hat", card_json("hat"), 3_000)
    listed = ranges.ranges(wall_at_zero=WALL0, since_ms=60_000)  # the window starts a minute later
    assert [(r.id, r.end) for r in listed] == [("card-1", None)]
    assert ranges.on_screen() == ["mug"]


@given(st.lists(st.tuples(st.sampled_from(["show", "hide", "update", "delete"]), st.sampled_from("abc")), max_size=60))
def test_every_card_on_screen_has_exactly_one_open_range(actions: list[tuple[str, str]]) -> None:
    ranges = CardRanges()
    on_screen: set[str] = set()
    for seq, (action, card_id) in enumerate(actions, 1):
        ranges.apply(seq, action, card_id, card_json(card_id), seq * 100)
        if action == "show":
            on_screen.add(card_id)
        elif action in ("hide", "delete"):
            on_screen.discard(card_id)
    listed = ranges.ranges(wall_at_zero=WALL0, since_ms=0)
    open_ids = [dict(r.attributes)["X-CARD-ID"] for r in listed if r.end is None]
    assert sorted(open_ids) == sorted(on_screen)
    assert len({r.id for r in listed}) == len(listed)
    for r in listed:
        assert r.end is None or r.end >= r.start
