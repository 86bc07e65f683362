// A WHIP publisher built on Google's libwebrtc (npm @roamhq/wrtc), which LiveCart did not write.
// Usage: node wrtc_publisher.js URL KEY SECONDS
// Sends 640x360 frames at 30 fps, each with its number drawn as 16 blocks in the top band (the
// same pattern as benchmarks/pattern.py), prints {"published": true} once answered, and at the
// end {"frames", "state", "deleteStatus"}.
const { RTCPeerConnection, nonstandard } = require("@roamhq/wrtc");
const { RTCVideoSource, RTCAudioSource } = nonstandard;
async function main() {
  const [url, key, seconds] = [process.argv[2], process.argv[3], Number(process.argv[4] || 5)];
  const pc = new RTCPeerConnection({ iceServers: [] });
  const source = new RTCVideoSource();
  const track = source.createTrack();
  pc.addTransceiver(track, { direction: "sendonly" });
  const width = 640, height = 360;
  const data = new Uint8ClampedArray(width * height * 1.5);
  let n = 0;
  const timer = setInterval(() => {
    data.fill(128); data.fill(60, 0, width * height);
    const band = Math.floor(height / 8), block = Math.floor(width / 16);
    for (let bit = 0; bit < 16; bit++) {
      const on = (n >> (15 - bit)) & 1;
      for (let y = 0; y < band; y++) data.fill(on ? 235 : 16, y * width + bit * block, y * width + (bit + 1) * block);
    }
    source.onFrame({ width, height, data });
    n++;
  }, 1000 / 30);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => { if (pc.iceGatheringState === "complete") r(); else pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); });
  const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${key}` }, body: pc.localDescription.sdp });
  const answer = await res.text();
  if (res.status !== 201) throw new Error(`POST -> ${res.status}: ${answer}`);
  const location = new URL(res.headers.get("location"), url).toString();
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  console.log(JSON.stringify({ published: true }));
  await new Promise((r) => setTimeout(r, seconds * 1000));
  clearInterval(timer);
  const del = await fetch(location, { method: "DELETE" });
  console.log(JSON.stringify({ frames: n, state: pc.connectionState, deleteStatus: del.status }));
  track.stop(); pc.close(); process.exit(0);
}
main().catch((e) => { console.error(e); process.exit(1); });
