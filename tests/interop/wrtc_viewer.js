// A WHEP viewer built on Google's libwebrtc (npm @roamhq/wrtc), which LiveCart did not write.
// Usage: node wrtc_viewer.js URL SECONDS
// If the server refuses the offer, prints {"status", "reason"} instead.
// Decodes the video with libwebrtc and reads the frame number drawn into each picture (the
// pattern of benchmarks/pattern.py), then prints one JSON line: frames decoded, the numbers
// read, picture sizes, data-channel message types, connection state and the DELETE status.
const { RTCPeerConnection, nonstandard } = require("@roamhq/wrtc");

function readCounter(frame) {
  const { width, height, data } = frame; // I420: the luma plane comes first
  const band = Math.max(2, Math.floor(height / 8));
  const block = Math.floor(width / 16);
  const top = Math.floor(band / 4), bottom = Math.max(top + 1, Math.floor((3 * band) / 4));
  let value = 0;
  for (let bit = 0; bit < 16; bit++) {
    const left = bit * block + Math.floor(block / 4);
    const right = Math.max(left + 1, (bit + 1) * block - Math.floor(block / 4));
    let sum = 0, count = 0;
    for (let y = top; y < bottom; y++) for (let x = left; x < right; x++) { sum += data[y * width + x]; count++; }
    value = (value << 1) | (sum / count > 128 ? 1 : 0);
  }
  return value;
}

async function main() {
  const [url, seconds] = [process.argv[2], Number(process.argv[3] || 5)];
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const messages = [];
  const channel = pc.createDataChannel("cards");
  channel.onmessage = (event) => {
    try { messages.push(JSON.parse(event.data).type); } catch { messages.push("not json"); }
  };
  const counters = [];
  const sizes = new Set();
  let sink = null;
  pc.ontrack = (event) => {
    if (event.track.kind !== "video") return;
    sink = new nonstandard.RTCVideoSink(event.track);
    sink.onframe = ({ frame }) => { counters.push(readCounter(frame)); sizes.add(`${frame.width}x${frame.height}`); };
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") resolve();
    else pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
  });
  const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp });
  const answer = await res.text();
  if (res.status !== 201) {
    // This libwebrtc build offers no H.264 (only VP8/VP9/AV1): report how the server refused it.
    console.log(JSON.stringify({ status: res.status, reason: answer.trim() }));
    pc.close();
    process.exit(0);
  }
  const location = new URL(res.headers.get("location"), url).toString();
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000)); // the viewing window
  const state = pc.connectionState;
  const deleted = await fetch(location, { method: "DELETE" });
  if (sink) sink.stop();
  console.log(JSON.stringify({ frames: counters.length, counters, sizes: [...sizes], messages, state, deleteStatus: deleted.status }));
  pc.close();
  process.exit(0);
}

main().catch((err) => { console.error(err); process.exit(1); });
