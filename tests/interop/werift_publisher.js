// A WHIP publisher built on werift (a TypeScript WebRTC stack LiveCart did not write).
// Usage: node werift_publisher.js URL KEY SECONDS
// werift has no encoder: it forwards H.264 RTP packets that arrive on a local UDP port (the test
// encodes them), as werift's own examples do with FFmpeg. Prints {"rtpPort": N} first, then
// {"published": true} once answered, and at the end {"forwarded", "state", "deleteStatus"}.
const dgram = require("node:dgram");
const { RTCPeerConnection, RTCRtpCodecParameters, MediaStreamTrack } = require("werift");

async function main() {
  const [url, key, seconds] = [process.argv[2], process.argv[3], Number(process.argv[4] || 5)];
  const pc = new RTCPeerConnection({
    iceServers: [],
    codecs: {
      video: [
        new RTCRtpCodecParameters({
          mimeType: "video/H264",
          clockRate: 90000,
          rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }],
          parameters: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        }),
      ],
      audio: [],
    },
  });
  const track = new MediaStreamTrack({ kind: "video" });
  pc.addTransceiver(track, { direction: "sendonly" });
  let forwarded = 0;
  const udp = dgram.createSocket("udp4");
  udp.on("message", (packet) => { track.writeRtp(packet); forwarded++; });
  await new Promise((resolve) => udp.bind(0, "127.0.0.1", resolve));
  console.log(JSON.stringify({ rtpPort: udp.address().port }));
  await pc.setLocalDescription(await pc.createOffer());
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${key}` },
    body: pc.localDescription.sdp,
  });
  const answer = await res.text();
  if (res.status !== 201) throw new Error(`POST ${url} -> ${res.status}: ${answer}`);
  const location = new URL(res.headers.get("location"), url).toString();
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  console.log(JSON.stringify({ published: true }));
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000)); // the publishing window
  const state = pc.connectionState;
  const deleted = await fetch(location, { method: "DELETE" });
  console.log(JSON.stringify({ forwarded, state, deleteStatus: deleted.status }));
  udp.close();
  await pc.close();
  process.exit(0);
}

main().catch((err) => { console.error(err); process.exit(1); });
