// Browser publisher: camera+mic or screen share, sent to the stream over WHIP.
import { endSession, negotiate, streamFromPath } from "/static/webrtc.js";
import { formatBitrate } from "/static/format.js";

const stream = streamFromPath();
document.getElementById("stream-name").textContent = stream;
const keyInput = document.getElementById("key");
keyInput.value = sessionStorage.getItem(`livecart-key-${stream}`) || "";
const stateEl = document.getElementById("state");
const errorEl = document.getElementById("error");
const startBtn = document.getElementById("start");
const stopBtn = document.getElementById("stop");
const preview = document.getElementById("preview");
let pc = null;
let media = null;
let resource = null;
let lastBytes = null;

function setState(text) {
  stateEl.textContent = text;
  document.body.dataset.state = text;
}

async function start(event) {
  event.preventDefault();
  errorEl.textContent = "";
  startBtn.disabled = true;
  try {
    const source = document.getElementById("source").value;
    media = source === "screen"
      ? await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true })
      : await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio: true });
    preview.srcObject = media;
    pc = new RTCPeerConnection();
    for (const track of media.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
    pc.onconnectionstatechange = () => setState(pc ? pc.connectionState : "idle");
    sessionStorage.setItem(`livecart-key-${stream}`, keyInput.value);
    setState("connecting");
    resource = await negotiate(pc, `/whip/${encodeURIComponent(stream)}`, keyInput.value);
    stopBtn.disabled = false;
  } catch (err) {
    errorEl.textContent = err.reason ? `The server said ${err.status}: ${err.reason}` : `${err}`;
    await stop();
  }
}

async function stop() {
  await endSession(resource);
  resource = null;
  if (pc) pc.close();
  pc = null;
  if (media) media.getTracks().forEach((t) => t.stop());
  media = null;
  preview.srcObject = null;
  startBtn.disabled = false;
  stopBtn.disabled = true;
  lastBytes = null;
  document.getElementById("bitrate").textContent = "–";
  setState("stopped");
}

async function updateBitrate() {
  if (!pc) return;
  let bytes = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp") bytes += s.bytesSent;
  });
  const now = performance.now();
  if (lastBytes) document.getElementById("bitrate").textContent = formatBitrate(((bytes - lastBytes.bytes) * 8000) / (now - lastBytes.at));
  lastBytes = { bytes, at: now };
}

document.getElementById("form").addEventListener("submit", start);
stopBtn.addEventListener("click", stop);
window.addEventListener("pagehide", () => endSession(resource, true));
setInterval(updateBitrate, 1000);
