"""The per-viewer queue policy and rung routing: start at a keyframe, bounded, switch on IDR."""

from __future__ import annotations

import av

from relay.fanout import VIDEO_QUEUE_FRAMES, Fanout, PacketTrack
from transcode.frames import EncodedFrame


def _packet() -> av.Packet:
    return av.Packet(b"\x00\x00\x00\x01x")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fanout() -> tuple[Fanout, list[str], list[tuple[str, str]], Clock]:
    asked: list[str] = []
    switched: list[tuple[str, str]] = []
    clock = Clock()
    fanout = Fanout(asked.append, lambda v, r: switched.append((v, r)), keyframe_min_interval_s=0.5, clock=clock)
    return fanout, asked, switched, clock


def _video(rung: str, pts: int, key: bool) -> EncodedFrame:
    return EncodedFrame("video", rung, b"\x00\x00\x00\x01e", pts, key)


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


def test_join_waits_for_a_keyframe_of_its_rung_and_shares_one_packet() -> None:
    fanout, asked, switched, _ = _fanout()
    a, b = fanout.new_tracks("a", with_audio=True), fanout.new_tracks("b", with_audio=False)
    fanout.attach("a", a, "480p")
    fanout.attach("b", b, "480p")
    assert asked == ["480p", "480p"]  # the transcoder's KeyframeGate coalesces these
    fanout.publish(_video("480p", 0, False))
    assert a.video._queue.qsize() == 0  # not before the keyframe
    fanout.publish(_video("720p", 3000, True))  # another rung's keyframe: not theirs
    fanout.publish(_video("480p", 3000, True))
    assert switched == [("a", "480p"), ("b", "480p")]
    fanout.publish(EncodedFrame("audio", "audio", b"opus", 960, True))
    pa, pb = a.video._queue.get_nowait(), b.video._queue.get_nowait()
    assert pa is pb and pa.pts == 3000
    assert a.audio is not None and a.audio._queue.qsize() == 1
    fanout.detach("a")
    assert len(fanout) == 1 and a.video.readyState == "ended"


def test_join_right_after_a_keyframe_starts_from_the_cache_without_a_new_one() -> None:
    fanout, asked, _, clock = _fanout()
    first = fanout.new_tracks("first", with_audio=False)
    fanout.attach("first", first, "240p")
    fanout.publish(_video("240p", 0, True))
    fanout.publish(_video("240p", 3000, False))
    clock.now = 0.1  # second viewer 100 ms later
    second = fanout.new_tracks("second", with_audio=False)
    fanout.attach("second", second, "240p")
    assert asked == ["240p"]  # one forced keyframe for two joins
    assert second.video._queue.qsize() == 2 and not second.video.waiting_for_keyframe
    clock.now = 0.7  # too long after the keyframe: the cache would mean a long burst
    third = fanout.new_tracks("third", with_audio=False)
    fanout.attach("third", third, "240p")
    assert asked == ["240p", "240p"]


def test_switch_happens_on_the_target_keyframe_and_frames_keep_flowing_meanwhile() -> None:
    fanout, asked, switched, _ = _fanout()
    viewer = fanout.new_tracks("v", with_audio=False)
    fanout.attach("v", viewer, "720p")
    fanout.publish(_video("720p", 0, True))
    fanout.switch("v", "240p")
    assert asked[-1] == "240p"
    fanout.publish(_video("720p", 3000, False))  # still on 720p until 240p's IDR
    fanout.publish(_video("240p", 3000, False))
    assert fanout.rung_of("v") == "240p" and viewer.rung == "720p"
    fanout.publish(_video("240p", 6000, True))
    fanout.publish(_video("720p", 6000, False))
    assert viewer.rung == "240p"
    pts = []
    while not viewer.video._queue.empty():
        pts.append(viewer.video._queue.get_nowait().pts)
    assert pts == [0, 3000, 6000]  # continuous: no frame twice, none from the old rung after
    assert switched[-1] == ("v", "240p")


def test_switching_back_before_the_keyframe_cancels_the_switch() -> None:
    fanout, _, switched, _ = _fanout()
    viewer = fanout.new_tracks("v", with_audio=False)
    fanout.attach("v", viewer, "720p")
    fanout.publish(_video("720p", 0, True))
    fanout.switch("v", "240p")
    fanout.switch("v", "720p")
    fanout.publish(_video("240p", 3000, True))
    assert viewer.rung == "720p" and switched == [("v", "720p")]


def test_remap_moves_viewers_off_rungs_that_disappeared() -> None:
    fanout, asked, _, _ = _fanout()
    viewer = fanout.new_tracks("v", with_audio=False)
    fanout.attach("v", viewer, "720p")
    fanout.publish(_video("720p", 0, True))
    fanout.remap(["480p", "240p"], lambda gone: "480p")
    assert fanout.rung_of("v") == "480p" and asked[-1] == "480p"
    fanout.publish(_video("480p", 3000, True))
    assert viewer.rung == "480p"


def test_switch_keyframe_for_a_frame_the_old_rung_already_sent_is_retimed_once() -> None:
    fanout, _, _, _ = _fanout()
    viewer = fanout.new_tracks("v", with_audio=False)
    fanout.attach("v", viewer, "720p")
    fanout.publish(_video("720p", 0, True))
    fanout.switch("v", "240p")
    fanout.publish(_video("720p", 3000, False))  # the old rung finished source frame 3000 first
    fanout.publish(_video("240p", 3000, True))  # the same source frame, as the new rung's IDR
    fanout.publish(_video("240p", 6000, False))
    pts = []
    while not viewer.video._queue.empty():
        pts.append(viewer.video._queue.get_nowait().pts)
    assert pts == [0, 3000, 3001, 6000]  # strictly increasing: the IDR moved one tick later
