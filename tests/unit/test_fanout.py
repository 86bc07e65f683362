"""The per-viewer queue policy: start at a keyframe, bounded, resync on overflow."""

from __future__ import annotations

import av

from relay.fanout import VIDEO_QUEUE_FRAMES, Fanout, PacketTrack
from transcode.frames import EncodedFrame


def _packet() -> av.Packet:
    return av.Packet(b"\x00\x00\x00\x01x")


def test_video_track_skips_until_the_first_keyframe() -> None:
    track = PacketTrack("video", lambda: None)
    track.push(_packet(), keyframe=False)
    track.push(_packet(), keyframe=False)
    assert track.waiting_for_keyframe and track.skipped == 2
    track.push(_packet(), keyframe=True)
    track.push(_packet(), keyframe=False)
    assert not track.waiting_for_keyframe
    assert track._queue.qsize() == 2


def test_overflow_drops_the_backlog_and_asks_for_a_keyframe() -> None:
    asked: list[int] = []
    track = PacketTrack("video", lambda: asked.append(1))
    track.push(_packet(), keyframe=True)
    for _ in range(VIDEO_QUEUE_FRAMES + 5):
        track.push(_packet(), keyframe=False)
    assert asked == [1]
    assert track._queue.qsize() <= VIDEO_QUEUE_FRAMES
    assert track.waiting_for_keyframe  # the broken chain is never delivered


def test_audio_track_keeps_the_newest_on_overflow() -> None:
    track = PacketTrack("audio", lambda: None)
    for _ in range(200):
        track.push(_packet(), keyframe=True)
    assert 0 < track._queue.qsize() <= 50


def test_fanout_shares_one_packet_and_requests_keyframe_on_attach() -> None:
    asked: list[int] = []
    fanout = Fanout(lambda: asked.append(1))
    a, b = fanout.new_tracks(with_audio=True), fanout.new_tracks(with_audio=False)
    fanout.attach("a", a)
    fanout.attach("b", b)
    assert len(asked) == 2
    fanout.publish(EncodedFrame("video", "720p", b"\x00\x00\x00\x01e", 3000, True))
    fanout.publish(EncodedFrame("audio", "audio", b"opus", 960, True))
    pa, pb = a.video._queue.get_nowait(), b.video._queue.get_nowait()
    assert pa is pb and pa.pts == 3000
    assert a.audio is not None and a.audio._queue.qsize() == 1
    fanout.detach("a")
    assert len(fanout) == 1 and a.video.readyState == "ended"
