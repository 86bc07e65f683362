"""The fan-out's rung routing and RTP rewriting, through a recording link (no sockets, no SRTP)."""

from __future__ import annotations

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtcpPacket, RtcpSrPacket, RtpPacket

from relay.media.bwe import SendSideEstimator
from relay.media.fanout import Fanout, ViewerTracks
from relay.media.rtp import MAX_PAYLOAD
from transcode.frames import EncodedFrame

EXTENSIONS = HeaderExtensionsMap()
EXTENSIONS.configure(
    RTCRtpParameters(
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
            RTCRtpHeaderExtensionParameters(id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
        ]
    )
)


class RecordingLink:
    """Keeps every packet "sent"; protect is the identity so packets parse as plain RTP."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.batches: list[list[bytes]] = []
        self.rtcp: list[bytes] = []
        self.sent = 0
        self.dropped = 0
        self.closed = False
        self.native = None

    def protect(self, packet: bytes) -> bytes:
        return packet

    def send_runs(self, packets: list[bytes], runs: list[tuple[int, int]]) -> None:
        for start, end in runs:
            self.batches.append(packets[start:end])
        self.packets.extend(packets)

    def send_one(self, packet: bytes) -> None:
        self.packets.append(packet)

    def send_rtcp(self, compound: bytes) -> None:
        self.rtcp.append(compound)

    def close(self) -> None:
        self.closed = True

    def parsed(self) -> list[RtpPacket]:
        return [RtpPacket.parse(p, EXTENSIONS) for p in self.packets]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fanout() -> tuple[Fanout, list[str], list[tuple[str, str]], Clock]:
    asked: list[str] = []
    switched: list[tuple[str, str]] = []
    clock = Clock()
    fanout = Fanout(
        asked.append,
        lambda v, r: switched.append((v, r)),
        keyframe_min_interval_s=0.5,
        clock=clock,
        wall_clock=lambda: 1_700_000_000.0,
    )
    return fanout, asked, switched, clock


def _video(rung: str, pts: int, key: bool, size: int = 100) -> EncodedFrame:
    nal = bytes([0x65 if key else 0x41]) + bytes(range(256)) * (size // 256) + b"\x01" * (size % 256)
    return EncodedFrame("video", rung, b"\x00\x00\x00\x01" + nal, pts, key)


def _viewer(
    fanout: Fanout, name: str, rung: str, *, audio: bool = False, ssrc: int = 1111
) -> tuple[ViewerTracks, RecordingLink]:
    tracks = fanout.new_tracks(name, with_audio=audio)
    tracks.video.configure(ssrc, 102, "0", 3, 1, "cname")
    if tracks.audio is not None:
        tracks.audio.configure(ssrc + 1, 111, "1", None, None, "cname")
    fanout.attach(name, tracks, rung)
    link = RecordingLink()
    fanout.activate(name, "video", link)
    if audio:
        fanout.activate(name, "audio", link)
    return tracks, link


def _video_packets(link: RecordingLink, ssrc: int = 1111) -> list[RtpPacket]:
    return [p for p in link.parsed() if p.ssrc == ssrc]


def test_join_waits_for_a_keyframe_of_its_rung_and_gets_its_own_headers_on_shared_payloads() -> None:
    fanout, asked, switched, _ = _fanout()
    _, la = _viewer(fanout, "a", "480p", audio=True, ssrc=1000)
    _, lb = _viewer(fanout, "b", "480p", ssrc=2000)
    assert asked == ["480p", "480p"]  # the transcoder's KeyframeGate coalesces these
    fanout.publish(_video("480p", 0, False))
    assert la.packets == []  # not before the keyframe
    fanout.publish(_video("720p", 3000, True))  # another rung's keyframe: not theirs
    fanout.publish(_video("480p", 3000, True, size=3000))
    assert switched == [("a", "480p"), ("b", "480p")]
    pa, pb = _video_packets(la, 1000), _video_packets(lb, 2000)
    assert len(pa) == len(pb) == 3  # 3000 bytes: three FU-A fragments
    assert [p.payload for p in pa] == [p.payload for p in pb]
    assert [p.marker for p in pa] == [0, 0, 1] and {p.payload_type for p in pa} == {102}
    assert [(p.sequence_number - pa[0].sequence_number) & 0xFFFF for p in pa] == [0, 1, 2]
    assert len({p.timestamp for p in pa}) == 1
    assert pa[0].extensions.mid == "0" and pa[0].extensions.abs_send_time is not None
    fanout.publish(EncodedFrame("audio", "audio", b"opus", 960, True))
    audio = [p for p in la.parsed() if p.ssrc == 1001]
    assert len(audio) == 1 and audio[0].payload == b"opus" and audio[0].payload_type == 111
    assert not [p for p in lb.parsed() if p.ssrc == 2001]  # b has no audio
    fanout.detach("a")
    assert len(fanout) == 1 and la.closed


def test_packets_of_a_frame_go_out_as_gso_batches_of_equal_size() -> None:
    fanout, _, _, _ = _fanout()
    _, link = _viewer(fanout, "a", "720p")
    fanout.publish(_video("720p", 0, True, size=10 * MAX_PAYLOAD))
    assert len(link.batches) == 1  # eleven packets, one sendmsg
    sizes = [len(p) for p in link.batches[0]]
    assert len(set(sizes[:-1])) == 1 and sizes[-1] <= sizes[0]


def test_join_right_after_a_keyframe_starts_from_the_cache_without_a_new_one() -> None:
    fanout, asked, _, clock = _fanout()
    _viewer(fanout, "first", "240p")
    fanout.publish(_video("240p", 0, True))
    fanout.publish(_video("240p", 3000, False))
    clock.now = 0.1  # second viewer 100 ms later
    second_tracks, second = _viewer(fanout, "second", "240p")
    assert asked == ["240p"]  # one forced keyframe for two joins
    got = _video_packets(second)
    assert [p.timestamp - got[0].timestamp for p in got] == [0, 3000]
    assert second_tracks.video.rewriter.anchor == (0, got[0].timestamp)  # its clock: the first cached frame
    clock.now = 0.7  # too long after the keyframe: the cache would mean a long burst
    _viewer(fanout, "third", "240p")
    assert asked == ["240p", "240p"]


def test_switch_happens_on_the_target_keyframe_and_the_rtp_stream_stays_continuous() -> None:
    fanout, asked, switched, _ = _fanout()
    viewer, link = _viewer(fanout, "v", "720p")
    fanout.publish(_video("720p", 0, True, size=2000))
    fanout.switch("v", "240p")
    assert asked[-1] == "240p"
    fanout.publish(_video("720p", 3000, False, size=2000))  # still on 720p until 240p's IDR
    fanout.publish(_video("240p", 3000, False))
    assert fanout.rung_of("v") == "240p" and viewer.rung == "720p"
    fanout.publish(_video("240p", 6000, True))
    fanout.publish(_video("720p", 6000, False))
    fanout.publish(_video("240p", 9000, False))
    assert viewer.rung == "240p" and switched[-1] == ("v", "240p")
    got = _video_packets(link)
    seqs = [(p.sequence_number - got[0].sequence_number) & 0xFFFF for p in got]
    assert seqs == list(range(len(got)))  # no gap, no repeat across the switch
    stamps = sorted({p.timestamp - got[0].timestamp for p in got})
    assert stamps == [0, 3000, 6000, 9000]


def test_switching_back_before_the_keyframe_cancels_the_switch() -> None:
    fanout, _, switched, _ = _fanout()
    viewer, _ = _viewer(fanout, "v", "720p")
    fanout.publish(_video("720p", 0, True))
    fanout.switch("v", "240p")
    fanout.switch("v", "720p")
    fanout.publish(_video("240p", 3000, True))
    assert viewer.rung == "720p" and switched == [("v", "720p")]


def test_a_held_switch_down_sends_nothing_of_the_old_rung_and_continues_its_numbers_exactly() -> None:
    fanout, asked, switched, _ = _fanout()
    viewer, link = _viewer(fanout, "v", "720p")
    fanout.publish(_video("720p", 0, True, size=2000))
    sent_before = len(link.packets)
    fanout.switch("v", "240p", hold=True)
    assert asked[-1] == "240p"
    fanout.publish(_video("720p", 3000, False, size=2000))  # held: not for this viewer any more
    fanout.publish(_video("720p", 6000, False, size=2000))
    assert len(link.packets) == sent_before and fanout.viewers_on("720p") == 0
    last = _video_packets(link)[-1].sequence_number
    assert fanout.retransmit("v", "video", [last]) == 0 and fanout.repairs_held == 1  # the keyframe supersedes it
    fanout.publish(_video("240p", 6000, True))
    fanout.publish(_video("240p", 9000, False))
    assert viewer.rung == "240p" and viewer.held is None and switched[-1] == ("v", "240p")
    got = _video_packets(link)
    seqs = [(p.sequence_number - got[0].sequence_number) & 0xFFFF for p in got]
    assert seqs == list(range(len(got)))  # no gap where the held frames were: nothing to NACK
    assert sorted({p.timestamp - got[0].timestamp for p in got}) == [0, 6000, 9000]
    assert fanout.retransmit("v", "video", [got[-1].sequence_number]) == 1  # repairs again
    assert fanout.retransmit("v", "video", [last]) == 0  # but not of the frames it gave up


def test_a_held_viewer_switched_back_resumes_its_rung_at_that_rungs_next_keyframe() -> None:
    fanout, asked, _, _ = _fanout()
    viewer, link = _viewer(fanout, "v", "720p")
    fanout.publish(_video("720p", 0, True))
    fanout.switch("v", "240p", hold=True)
    fanout.switch("v", "720p")  # the ABR changed its mind: the picture still needs a keyframe
    assert asked[-1] == "720p" and fanout.is_switching("v")
    fanout.publish(_video("720p", 3000, False))
    fanout.publish(_video("720p", 6000, True))
    assert viewer.rung == "720p" and viewer.held is None
    got = _video_packets(link)
    assert [(p.sequence_number - got[0].sequence_number) & 0xFFFF for p in got] == [0, 1]
    assert [p.timestamp - got[0].timestamp for p in got] == [0, 6000]


def test_remap_moves_viewers_off_rungs_that_disappeared() -> None:
    fanout, asked, _, _ = _fanout()
    viewer, link = _viewer(fanout, "v", "720p")
    fanout.publish(_video("720p", 0, True))
    fanout.remap(["480p", "240p"], lambda gone: "480p")
    assert fanout.rung_of("v") == "480p" and asked[-1] == "480p"
    fanout.publish(_video("480p", 3000, True))
    assert viewer.rung == "480p"
    got = _video_packets(link)
    assert (got[1].sequence_number - got[0].sequence_number) & 0xFFFF == 1


def test_switch_keyframe_for_a_frame_the_old_rung_already_sent_is_retimed() -> None:
    fanout, _, _, _ = _fanout()
    _, link = _viewer(fanout, "v", "720p")
    fanout.publish(_video("720p", 0, True))
    fanout.switch("v", "240p")
    fanout.publish(_video("720p", 3000, False))  # the old rung finished source frame 3000 first
    fanout.publish(_video("240p", 3000, True))  # the same source frame, as the new rung's IDR
    fanout.publish(_video("240p", 6000, False))
    got = _video_packets(link)
    assert [p.timestamp - got[0].timestamp for p in got] == [0, 3000, 3001, 6001]  # strictly increasing


def test_a_nack_is_answered_with_the_very_packet_the_viewer_missed_even_across_a_switch() -> None:
    fanout, _, _, _ = _fanout()
    _, link = _viewer(fanout, "v", "720p")
    fanout.publish(_video("720p", 0, True, size=3000))
    fanout.switch("v", "240p")
    fanout.publish(_video("240p", 3000, True, size=2000))
    sent = list(link.packets)
    wanted = [RtpPacket.parse(sent[1]).sequence_number, RtpPacket.parse(sent[4]).sequence_number]
    link.packets.clear()
    assert fanout.retransmit("v", "video", [*wanted, (wanted[1] + 1000) & 0xFFFF]) == 2
    resent = link.parsed()
    originals = [RtpPacket.parse(sent[1]), RtpPacket.parse(sent[4])]
    for again, original in zip(resent, originals, strict=True):
        assert (again.sequence_number, again.timestamp, again.marker, again.payload) == (
            original.sequence_number,
            original.timestamp,
            original.marker,
            original.payload,
        )


def test_sender_reports_carry_the_viewers_ssrc_and_counts() -> None:
    fanout, _, _, _ = _fanout()
    viewer, link = _viewer(fanout, "v", "720p")
    assert fanout.send_reports(1.0) == 0  # nothing sent yet: nothing to report
    fanout.publish(_video("720p", 90_000, True, size=2000))
    assert fanout.send_reports(1.0) == 1
    sr = RtcpPacket.parse(link.rtcp[0])[0]
    assert isinstance(sr, RtcpSrPacket) and sr.ssrc == 1111
    assert sr.sender_info.packet_count == 2
    first = _video_packets(link)[0]
    assert sr.sender_info.rtp_timestamp == first.timestamp  # media time 1.0 s == pts 90000
    assert viewer.video.packets == 2


class FailingLink(RecordingLink):
    def protect(self, packet: bytes) -> bytes:
        raise RuntimeError("srtp refused")


def test_a_viewer_whose_send_fails_is_dropped_and_reported_while_the_others_get_the_frame() -> None:
    broken: list[tuple[str, str]] = []
    fanout = Fanout(
        lambda rung: None,
        lambda v, r: None,
        clock=Clock(),
        wall_clock=lambda: 0.0,
        on_broken=lambda viewer, reason: broken.append((viewer, reason)),
    )
    good = fanout.new_tracks("good", with_audio=False)
    good.video.configure(1, 102, "0", None, None, "c")
    bad = fanout.new_tracks("bad", with_audio=False)
    bad.video.configure(2, 102, "0", None, None, "c")
    fanout.attach("bad", bad, "720p")
    fanout.attach("good", good, "720p")
    good_link, bad_link = RecordingLink(), FailingLink()
    fanout.activate("bad", "video", bad_link)
    fanout.activate("good", "video", good_link)
    fanout.publish(_video("720p", 0, True))
    fanout.publish(_video("720p", 3000, False))
    assert broken == [("bad", "RuntimeError: srtp refused")]
    assert len(fanout) == 1 and bad_link.closed and fanout.send_errors == 1
    assert len(good_link.packets) == 2  # both frames reached the healthy viewer


TCC = HeaderExtensionsMap()
TCC.configure(
    RTCRtpParameters(
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
            RTCRtpHeaderExtensionParameters(id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
            RTCRtpHeaderExtensionParameters(
                id=5, uri="http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
            ),
        ]
    )
)


def test_transport_cc_viewers_get_consecutive_transport_numbers_on_media_repairs_and_probes() -> None:
    fanout, _, _, clock = _fanout()
    tracks = fanout.new_tracks("t", with_audio=False)
    tracks.video.configure(3000, 102, "0", 3, 1, "cname", tcc_id=5, rtx=(103, 3001))
    fanout.attach("t", tracks, "480p")
    link = RecordingLink()
    fanout.activate("t", "video", link)
    _, plain = _viewer(fanout, "p", "480p", ssrc=4000)  # a viewer without transport-cc beside it
    fanout.publish(_video("480p", 0, True, size=3000))
    fanout.publish(_video("480p", 3000, False, size=2000))
    media = [RtpPacket.parse(p, TCC) for p in link.packets]
    assert {p.ssrc for p in media} == {3000} and len(media) == 5
    first = media[0].extensions.transport_sequence_number
    assert [p.extensions.transport_sequence_number for p in media] == [(first + i) & 0xFFFF for i in range(5)]
    assert all(p.extensions.mid == "0" and p.extensions.abs_send_time is not None for p in media)
    assert all(RtpPacket.parse(p, TCC).extensions.transport_sequence_number is None for p in plain.packets)
    # A repair goes on RTX (original number in front of the payload), with the next transport number.
    clock.now = 0.05
    assert fanout.retransmit("t", "video", [media[1].sequence_number]) == 1
    rtx = RtpPacket.parse(link.packets[-1], TCC)
    assert (rtx.ssrc, rtx.payload_type) == (3001, 103)
    assert int.from_bytes(rtx.payload[:2], "big") == media[1].sequence_number and rtx.payload[2:] == media[1].payload
    assert rtx.extensions.transport_sequence_number == (first + 5) & 0xFFFF
    # The same packet again within a round trip is refused, and counted.
    assert fanout.retransmit("t", "video", [media[1].sequence_number]) == 0
    assert tracks.video.repair.refused_recent == 1
    # A probe: RTX copies of packets the viewer has, on the following numbers.
    assert tracks.video.bwe is not None
    tracks.video.bwe.start_probe(9, 2_000_000, 0.05)
    assert fanout.probe("t", 2000, 9) >= 2000
    probes = [RtpPacket.parse(p, TCC) for p in link.packets[6:]]
    assert probes and {p.ssrc for p in probes} == {3001}
    assert [p.extensions.transport_sequence_number for p in probes] == [
        (first + 6 + i) & 0xFFFF for i in range(len(probes))
    ]
    # The estimator knows every number sent, with its cluster.
    assert tracks.video.bwe.logged(first + 6) is not None and tracks.video.bwe.logged(first + 6)[2] == 9


def test_repairs_beyond_the_budget_are_refused_and_counted() -> None:
    fanout, _, _, _ = _fanout()
    tracks, link = _viewer(fanout, "a", "480p")
    tracks.video.bwe = SendSideEstimator()  # a transport-cc viewer: REMB-only viewers get no budget
    tracks.video.repair.set_rate(50_000, 0.0)  # 7.5 kbit/s: the 2,400-byte minimum bucket
    fanout.publish(_video("480p", 0, True, size=8000))
    lost = [p.sequence_number for p in _video_packets(link)]
    sent = fanout.retransmit("a", "video", lost)
    assert sent == 2 and tracks.video.repair.refused_budget == len(lost) - 2
