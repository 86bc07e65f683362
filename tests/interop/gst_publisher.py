"""A WHIP publisher built on GStreamer's webrtcbin (Debian 12's GStreamer 1.22 has no whipsink).

Run with the system Python (it needs python3-gst-1.0): python3 gst_publisher.py URL KEY SECONDS.
Publishes SMPTE colour bars (320x240, VP8) and a tone (Opus); prints {"published": true} once
the answer is applied, and {"state": ..., "deleteStatus": ...} at the end. GStreamer's DTLS
certificate is RSA: the server must accept RSA cipher suites for this to connect at all.
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

PIPELINE = (
    "webrtcbin name=send bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=240,framerate=30/1 ! "
    "vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay ! "
    "application/x-rtp,media=video,encoding-name=VP8,payload=96 ! send. "
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay ! "
    "application/x-rtp,media=audio,encoding-name=OPUS,payload=97 ! send. "
)


def main() -> None:
    url, key, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    Gst.init(None)
    pipeline = Gst.parse_launch(PIPELINE)
    webrtc = pipeline.get_by_name("send")
    loop = GLib.MainLoop()
    result: dict[str, object] = {}
    location: list[str] = []

    def post_offer() -> bool:
        offer = webrtc.get_property("local-description").sdp.as_text()
        request = urllib.request.Request(
            url,
            data=offer.encode(),
            method="POST",
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {key}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = response.read().decode()
            location.append(urllib.parse.urljoin(url, response.headers["Location"]))
        _, sdp = GstSdp.SDPMessage.new_from_text(answer)
        description = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        webrtc.emit("set-remote-description", description, Gst.Promise.new())
        print(json.dumps({"published": True}), flush=True)
        GLib.timeout_add(int(seconds * 1000), finish)
        return False

    def finish() -> bool:
        result["state"] = webrtc.get_property("connection-state").value_nick
        request = urllib.request.Request(location[0], method="DELETE")
        with urllib.request.urlopen(request, timeout=10) as response:
            result["deleteStatus"] = response.status
        loop.quit()
        return False

    def gathering_changed(element: Gst.Element, _spec: object) -> None:
        if element.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(post_offer)  # the whole offer, with every candidate (no trickle)

    def offer_created(promise: Gst.Promise, _data: object) -> None:
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply is not None else None
        if offer is None:
            print(json.dumps({"error": f"no offer: {reply and reply.to_string()}"}), flush=True)
            loop.quit()
            return
        webrtc.emit("set-local-description", offer, Gst.Promise.new())

    offered: list[bool] = []

    def negotiation_needed(element: Gst.Element) -> None:
        if offered:  # once for all the pads: one offer
            return
        offered.append(True)
        element.emit("create-offer", None, Gst.Promise.new_with_change_func(offer_created, None))

    webrtc.connect("on-negotiation-needed", negotiation_needed)
    webrtc.connect("notify::ice-gathering-state", gathering_changed)
    pipeline.set_state(Gst.State.PLAYING)
    watchdog = threading.Timer(seconds + 30, loop.quit)  # never hang the test
    watchdog.daemon = True
    watchdog.start()
    loop.run()
    watchdog.cancel()
    pipeline.set_state(Gst.State.NULL)
    print(json.dumps(result), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
