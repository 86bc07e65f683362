// Minimal WHEP player: offers recvonly audio+video plus a "cards" data channel, plays the
// answer, and reconnects when the connection drops. The full player comes with issue 5.
const stream = decodeURIComponent(location.pathname.split("/").pop());
const video = document.getElementById("video");
const statusEl = document.getElementById("status");
const info = document.getElementById("info");
let resource = null;

function setStatus(text) {
  statusEl.hidden = !text;
  statusEl.textContent = text || "";
}

async function waitForIce(pc) {
  if (pc.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 2000);
  });
}

async function connect() {
  setStatus("Connecting…");
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const channel = pc.createDataChannel("cards");
  channel.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "stream") setStatus(msg.live ? "" : "Offline: waiting for the host…");
  };
  pc.ontrack = (event) => {
    if (!video.srcObject) video.srcObject = new MediaStream();
    video.srcObject.addTrack(event.track);
  };
  pc.onconnectionstatechange = () => {
    info.textContent = `connection: ${pc.connectionState}`;
    if (pc.connectionState === "failed" || pc.connectionState === "closed") {
      video.srcObject = null;
      setTimeout(connect, 2000);
    }
  };
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIce(pc);
  const res = await fetch(`/whep/${encodeURIComponent(stream)}`, {
    method: "POST",
    headers: { "Content-Type": "application/sdp" },
    body: pc.localDescription.sdp,
  });
  if (res.status !== 201) {
    setStatus(`Cannot watch: ${(await res.text()).trim()}`);
    pc.close();
    setTimeout(connect, 5000);
    return;
  }
  resource = res.headers.get("Location");
  await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
  video.addEventListener("playing", () => setStatus(""), { once: true });
}

document.getElementById("unmute").addEventListener("click", () => {
  video.muted = !video.muted;
  document.getElementById("unmute").textContent = video.muted ? "Unmute" : "Mute";
});
window.addEventListener("pagehide", () => {
  if (resource) fetch(resource, { method: "DELETE", keepalive: true });
});
connect().catch((err) => setStatus(`Error: ${err}`));
