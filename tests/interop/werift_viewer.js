// A WHEP viewer built on werift (a TypeScript WebRTC stack LiveCart did not write).
// Usage: node werift_viewer.js URL SECONDS
// Prints one JSON line: RTP packets per kind, whether the first video packet starts a keyframe,
// the data-channel messages' types, and the connection state reached.
const { RTCPeerConnection, RTCRtpCodecParameters } = require("werift");

// werift offers VP8 unless told otherwise; LiveCart sends H.264 (packetization-mode=1) and Opus.
const codecs = {
  video: [
    new RTCRtpCodecParameters({
      mimeType: "video/H264",
      clockRate: 90000,
      rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }, { type: "goog-remb" }],
      parameters: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    }),
  ],
  audio: [new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2 })],
};

async function main() {
  const [url, seconds] = [process.argv[2], Number(process.argv[3] || 5)];
  const pc = new RTCPeerConnection({ iceServers: [], codecs });
  const counts = { video: 0, audio: 0 };
  let firstVideo = null;
  const messages = [];
  for (const kind of ["video", "audio"]) {
    const transceiver = pc.addTransceiver(kind, { direction: "recvonly" });
    transceiver.onTrack.subscribe((track) => {
      track.onReceiveRtp.subscribe((rtp) => {
        counts[kind] += 1;
        if (kind === "video" && firstVideo === null) firstVideo = Buffer.from(rtp.payload);
      });
    });
  }
  const channel = pc.createDataChannel("cards");
  channel.onMessage.subscribe((data) => {
    try { messages.push(JSON.parse(data.toString()).type); } catch { messages.push("not json"); }
  });
  await pc.setLocalDescription(await pc.createOffer());
  const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp });
  const answer = await res.text();
  if (res.status !== 201) throw new Error(`POST ${url} -> ${res.status}: ${answer}`);
  const location = new URL(res.headers.get("location"), url).toString();
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000)); // the viewing window
  const type = firstVideo ? firstVideo[0] & 0x1f : null;
  const keyframeStart =
    firstVideo !== null &&
    (type === 5 || type === 7 || (type === 24 && [5, 7].includes(firstVideo[3] & 0x1f)) ||
      (type === 28 && (firstVideo[1] & 0x80) !== 0 && (firstVideo[1] & 0x1f) === 5));
  const deleted = await fetch(location, { method: "DELETE" });
  console.log(JSON.stringify({ counts, keyframeStart, messages, state: pc.connectionState, deleteStatus: deleted.status }));
  await pc.close();
  process.exit(0);
}

main().catch((err) => { console.error(err); process.exit(1); });
