// The LiveCart viewer: WHEP playback, a "cards" data channel (SSE when it does not open),
// product cards shown on the video frame of their pts_ms, a rendition menu, stats, and
// automatic reconnection. The conversation (comments, likes, viewer count) is talk.js.
// `?mode=hls` plays LL-HLS instead (hlsplayer.js), and so does the page by itself when WebRTC
// has not connected within FALLBACK_MS (UDP blocked, say). `?embed=1&parent=ORIGIN` is the page
// inside a shop's <livecart-player> (embed.js): compact, and it tells the shop page `ready`,
// `offline` and `buy` (embedlink.js).
//
// Card sync: the server tells this session how its RTP timestamps map to the stream's media
// time (`clock` messages: a reference pair, sent again after every rung switch). Each frame the
// browser presents carries its own RTP timestamp (requestVideoFrameCallback), so its media time
// is computed, never guessed from which frame happened to be presented first (a join from the
// cached GOP is decoded whole but only partly presented).
import { endSession, negotiate, streamFromPath } from "/static/webrtc.js";
import { formatBitrate } from "/static/format.js";
import { renderCard } from "/static/cardview.js";
import { createTalk } from "/static/talk.js";
import { HlsPlayback } from "/static/hlsplayer.js";
import { createEmbedLink } from "/static/embedlink.js";

const stream = streamFromPath();
const params = new URLSearchParams(location.search);
const token = params.get("token"); // for protected streams
const video = document.getElementById("video");
const statusEl = document.getElementById("status");
const cardsEl = document.getElementById("cards");
const menu = document.getElementById("rendition");
const currentEl = document.getElementById("current");
const statsEl = document.getElementById("stats");
const embed = createEmbedLink({ params, stream });
if (embed.embedded) document.body.dataset.embed = ""; // the CSS hides the page's chrome
const FALLBACK_MS = 4000; // WebRTC not connected by then: play LL-HLS instead
let transport = params.get("mode") === "hls" ? "hls" : "webrtc";
let hlsPlayback = null;
let fallbackTimer = null;

let pc = null;
let channel = null;
let resource = null;
let retryMs = 1000;
let avoid = null; // HOST:PORT of the node this player just lost: a cluster sends it elsewhere
let stalled = null; // the timer that gives a "disconnected" connection up
const DISCONNECTED_MS = 1500; // a node that vanished (killed, unplugged) is left this soon
let lastSeq = 0;
let sse = null;
let noChannel = null; // the timer that falls back to SSE when the data channel does not open
let session = null; // this WHEP session's id: the SSE fallback asks for its clock with it
let mappings = []; // this session's clock messages, oldest first (RTP time is monotonic per session)
let videoMs = null; // media time of the newest presented frame whose mapping is known
const NO_CLOCK_MS = 10000; // a server that never sends a clock: show cards on arrival after this
const pending = []; // card events waiting for their video time
const shown = new Map(); // card id -> {card, el, timer}
const talk = createTalk({
  stream,
  token,
  send(message) {
    if (!channel || channel.readyState !== "open") return false;
    channel.send(JSON.stringify(message));
    return true;
  },
});

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
  statusEl.hidden = state === "playing";
  document.body.dataset.state = state;
  if (state === "playing") embed.playing(transport);
  else if (state === "offline") embed.offline();
}

// ---- cards ------------------------------------------------------------------------------------
function buildCard(card) {
  // The shop's click-through rate (GET /api/streams/{stream}/stats); the link opens anyway,
  // unless the page embedding us asked to handle Buy itself.
  const el = renderCard(card, (click) => {
    if (channel && channel.readyState === "open") channel.send(JSON.stringify({ type: "click", card: card.id }));
    embed.buy(card);
    if (!embed.buyOpensLink) click.preventDefault();
  });
  // Fetch and decode the picture now, while the event waits for its frame: decoding it as the
  // card goes on screen (an SVG above all) held up the page long enough for Chromium to skip
  // presenting the very frame the card was for.
  const img = el.querySelector("img");
  if (img) img.decode().catch(() => {});
  return el;
}

function showCard(card, el = buildCard(card)) {
  hideCard(card.id, true);
  cardsEl.append(el);
  requestAnimationFrame(() => el.classList.add("in"));
  const timer = card.ttl_s ? setTimeout(() => hideCard(card.id), card.ttl_s * 1000) : null;
  shown.set(card.id, { card, el, timer });
}

function hideCard(id, instant = false) {
  const entry = shown.get(id);
  if (!entry) return;
  shown.delete(id);
  clearTimeout(entry.timer);
  if (instant) return entry.el.remove();
  entry.el.classList.remove("in");
  entry.el.addEventListener("transitionend", () => entry.el.remove(), { once: true });
  setTimeout(() => entry.el.remove(), 600);
}

function applyEvent(event) {
  const { action, card } = event;
  if (action === "show") showCard(card, event.el);
  else if (action === "hide" || action === "delete") hideCard(card.id);
  else if (action === "update" && shown.has(card.id)) showCard(card, event.el);
}

const frameTimes = "requestVideoFrameCallback" in HTMLVideoElement.prototype;

function due(event) {
  if (!frameTimes) return true; // no per-frame RTP time in this browser: on arrival
  if (!mappings.length) return Date.now() - event.received > NO_CLOCK_MS;
  return videoMs !== null && event.pts_ms <= videoMs;
}

function signed32(delta) {
  const d = delta >>> 0;
  return d >= 2 ** 31 ? d - 2 ** 32 : d;
}

// The media time (ms) of the frame with RTP timestamp `rtp`: by the newest mapping that starts at
// or before it; null for a frame from before every mapping we know of (not judged).
function mediaMs(rtp) {
  for (let i = mappings.length - 1; i >= 0; i--) {
    const m = mappings[i];
    const d = signed32(rtp - m.rtp);
    if (d >= 0) return ((m.media_ts + d) * 1000) / m.rtp_clock_hz;
  }
  return null;
}

function addClock(clock) {
  if (mappings.some((m) => m.rtp === clock.rtp && m.media_ts === clock.media_ts)) return; // snapshot + clock
  mappings.push(clock);
  if (mappings.length > 8) mappings.shift();
  flushPending();
}

function flushPending() {
  while (pending.length && due(pending[0])) applyEvent(pending.shift());
}

function onMessage(message) {
  if (message.type === "batch") return message.messages.forEach(onMessage); // several due at once
  if (talk.onMessage(message)) return;
  if (message.type === "stream") {
    if (message.live) setStatus(video.readyState >= 2 ? "playing" : "connecting", "Starting…");
    else if (message.state === "connecting") setStatus("connecting", "The host is connecting…");
    else setStatus("offline", "The host is offline — waiting for them to come back…");
  } else if (message.type === "snapshot") {
    for (const id of [...shown.keys()]) hideCard(id, true);
    pending.length = 0;
    message.cards.forEach((card) => showCard(card));
    lastSeq = message.seq;
    if (message.clock) addClock(message.clock);
  } else if (message.type === "card") {
    if (message.seq <= lastSeq) return;
    lastSeq = message.seq;
    const el = message.action === "show" || message.action === "update" ? buildCard(message.card) : undefined;
    pending.push({ ...message, el, received: Date.now() });
    flushPending();
  } else if (message.type === "clock") {
    addClock(message);
  } else if (message.type === "rendition") {
    const size = message.width ? ` · ${message.width}×${message.height}` : "";
    currentEl.textContent = `${message.auto ? "Auto: " : ""}${message.name}${size}`;
    currentEl.dataset.rung = message.name;
    currentEl.dataset.mode = message.auto ? "auto" : "fixed";
  } else if (message.type === "bye") {
    lost(); // the node is going away (or dropping us): in a cluster, go to another one
  }
}

function watchFrames() {
  if (!frameTimes) return;
  const onFrame = (_now, metadata) => {
    if (metadata.rtpTimestamp !== undefined) {
      const ms = mediaMs(metadata.rtpTimestamp);
      if (ms !== null) {
        videoMs = ms;
        flushPending();
      }
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

// Cards (and this session's clock, with `viewer=`) over Server-Sent Events, when the data
// channel does not open (e.g. a proxy that blocks SCTP).
function startSse() {
  if (sse || !session) return;
  const query = new URLSearchParams({ viewer: session });
  if (token) query.set("token", token);
  // From the node that holds the session (in a cluster, the edge the player was sent to).
  const url = new URL(`/api/streams/${encodeURIComponent(stream)}/events?${query}`, resource || location.href);
  sse = new EventSource(url.href);
  const handle = (e) => onMessage(JSON.parse(e.data));
  sse.addEventListener("snapshot", handle);
  sse.addEventListener("message", handle);
}

function stopSse() {
  if (sse) sse.close();
  sse = null;
}

// ---- LL-HLS -------------------------------------------------------------------------------------
function startHls(why) {
  transport = "hls";
  document.body.dataset.transport = "hls";
  if (why) console.info(`livecart: playing LL-HLS (${why})`);
  setStatus("connecting", "Connecting (HLS)…");
  hlsPlayback = new HlsPlayback(video, stream, {
    token,
    onCards: (cards) => {
      const ids = new Set(cards.map((c) => c.id));
      for (const id of [...shown.keys()]) if (!ids.has(id)) hideCard(id);
      for (const card of cards) {
        const entry = shown.get(card.id);
        if (!entry || JSON.stringify(entry.card) !== JSON.stringify(card)) showCard(card);
      }
    },
    onStatus: setStatus,
    onLevels: (names) => {
      const known = [...menu.options].map((o) => o.value);
      for (const name of names) if (!known.includes(name)) menu.append(new Option(name, name));
    },
  });
  hlsPlayback.start();
}

// WebRTC that has not connected within FALLBACK_MS gives way to LL-HLS, for good on this page.
function fallBackToHls() {
  if (transport !== "webrtc" || (pc && pc.connectionState === "connected")) return;
  const old = pc;
  pc = null;
  clearTimeout(noChannel);
  if (old) old.close();
  endSession(resource);
  resource = null;
  session = null;
  stopSse();
  video.srcObject = null;
  startHls(`WebRTC did not connect within ${FALLBACK_MS / 1000} s`);
}

// ---- connection -------------------------------------------------------------------------------
async function connect() {
  if (transport !== "webrtc") return;
  setStatus("connecting", "Connecting…");
  clearTimeout(fallbackTimer);
  fallbackTimer = setTimeout(fallBackToHls, FALLBACK_MS);
  pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  clearTimeout(noChannel);
  try {
    channel = pc.createDataChannel("cards");
    channel.onmessage = (e) => onMessage(JSON.parse(e.data));
    noChannel = setTimeout(startSse, 5000); // e.g. a proxy that blocks SCTP
    channel.onopen = () => clearTimeout(noChannel);
  } catch {
    channel = null; // no SCTP in this browser: SSE as soon as the session exists
  }
  pc.ontrack = (event) => {
    if (!video.srcObject) video.srcObject = new MediaStream();
    video.srcObject.addTrack(event.track);
  };
  pc.onconnectionstatechange = () => {
    if (!pc) return;
    clearTimeout(stalled);
    if (pc.connectionState === "connected") clearTimeout(fallbackTimer);
    if (pc.connectionState === "failed" || pc.connectionState === "closed") {
      lost();
    } else if (pc.connectionState === "disconnected") {
      // A server that vanished never says so; ICE would call it failed only much later.
      stalled = setTimeout(() => pc && pc.connectionState === "disconnected" && lost(), DISCONNECTED_MS);
    }
  };
  mappings = [];
  videoMs = null;
  try {
    const query = new URLSearchParams();
    if (menu.value !== "auto") query.set("rendition", menu.value);
    if (token) query.set("token", token);
    if (avoid) query.set("avoid", avoid);
    resource = await negotiate(pc, `/whep/${encodeURIComponent(stream)}${query.size ? `?${query}` : ""}`);
    avoid = null;
    session = new URL(resource).pathname.split("/").pop();
    retryMs = 1000;
    if (!channel) startSse();
  } catch (err) {
    setStatus("error", err.status === 404 ? `No stream called “${stream}”.` : `Cannot connect (${err.reason || err}). Retrying…`);
    reconnect();
  }
}

// The connection to the node serving us broke: reconnect, asking the cluster for another node.
function lost() {
  if (resource) avoid = new URL(resource).host;
  retryMs = Math.min(retryMs, 250); // the first retry at once: a cluster has other nodes
  reconnect();
}

let reconnecting = false;
function reconnect() {
  if (reconnecting || transport !== "webrtc") return;
  reconnecting = true;
  const old = pc;
  pc = null;
  if (old) old.close();
  endSession(resource);
  resource = null;
  session = null;
  stopSse(); // it follows the old session's clock
  video.srcObject = null;
  setTimeout(() => {
    reconnecting = false;
    connect();
  }, retryMs);
  retryMs = Math.min(retryMs * 2, 15000);
  if (statusEl.dataset.state !== "offline") setStatus("connecting", "Reconnecting…");
}

video.addEventListener("playing", () => setStatus("playing", ""));
// Upright phone video (the norm in live shopping) fills a phone screen: the CSS keys off this.
video.addEventListener("resize", () => {
  video.parentElement.dataset.orientation = video.videoHeight > video.videoWidth ? "portrait" : "landscape";
});
video.addEventListener("waiting", () => {
  if (statusEl.dataset.state === "playing") setStatus("buffering", "Buffering…");
});

// ---- controls -----------------------------------------------------------------------------------
async function loadRenditions() {
  try {
    const res = await fetch(`/api/streams/${encodeURIComponent(stream)}`);
    const info = await res.json();
    talk.setViewers(info.viewers);
    // HLS has no `stream` messages: the stream's state says when its host has gone.
    if (transport === "hls" && info.state === "offline") setStatus("offline", "The host is offline — waiting for them to come back…");
    else if (transport === "hls" && info.live && statusEl.dataset.state === "offline") {
      setStatus(video.readyState >= 3 && !video.paused ? "playing" : "connecting", "Starting…");
    }
    const names = info.rungs.map((r) => r.name);
    const known = [...menu.options].map((o) => o.value);
    for (const name of names) if (!known.includes(name)) menu.append(new Option(name, name));
  } catch {
    // The menu keeps what it has; it is refreshed while playing.
  }
}

menu.addEventListener("change", () => {
  if (hlsPlayback) hlsPlayback.setLevel(menu.value);
  if (channel && channel.readyState === "open") channel.send(JSON.stringify({ type: "rendition", name: menu.value }));
});

// `?rendition=240p` starts on that rung (the menu shows it; the rung list fills in later).
const startRung = params.get("rendition");
if (startRung && startRung !== "auto") {
  if (![...menu.options].some((o) => o.value === startRung)) menu.append(new Option(startRung, startRung));
  menu.value = startRung;
}

const unmute = document.getElementById("unmute");
unmute.addEventListener("click", () => {
  video.muted = false;
  video.play();
  unmute.hidden = true;
});

document.getElementById("stats-toggle").addEventListener("click", () => {
  statsEl.hidden = !statsEl.hidden;
});

function showStats(rows) {
  statsEl.replaceChildren(...Object.entries(rows).flatMap(([k, v]) => [
    Object.assign(document.createElement("dt"), { textContent: k }),
    Object.assign(document.createElement("dd"), { textContent: String(v) }),
  ]));
}

function updateHlsStats() {
  const s = hlsPlayback.stats();
  if (!s) return;
  showStats({
    Transport: "LL-HLS (hls.js)",
    Resolution: `${video.videoWidth}×${video.videoHeight}`,
    Bitrate: formatBitrate(s.bitrate),
    Rendition: `${s.auto ? "Auto: " : ""}${s.level}`,
    "Latency (PDT)": s.glassToGlass === null ? "–" : `${Math.round(s.glassToGlass * 1000)} ms`,
    "Behind live edge": Number.isFinite(s.latency) ? `${s.latency.toFixed(2)} s` : "–",
    "Frames decoded": video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality().totalVideoFrames : "–",
  });
  currentEl.textContent = `${s.auto ? "Auto: " : ""}${s.level}`;
  currentEl.dataset.rung = s.level;
}

let lastBytes = null;
async function updateStats() {
  if (hlsPlayback) return updateHlsStats();
  if (!pc) return;
  const report = await pc.getStats();
  let inbound = null;
  let pair = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") inbound = s;
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
  });
  if (!inbound) return;
  const now = performance.now();
  const bitrate = lastBytes ? ((inbound.bytesReceived - lastBytes.bytes) * 8000) / (now - lastBytes.at) : NaN;
  lastBytes = { bytes: inbound.bytesReceived, at: now };
  const loss = inbound.packetsLost / Math.max(1, inbound.packetsLost + inbound.packetsReceived);
  const rtt = pair?.currentRoundTripTime;
  const buffer = inbound.jitterBufferEmittedCount ? inbound.jitterBufferDelay / inbound.jitterBufferEmittedCount : 0;
  const rows = {
    Transport: "WebRTC (WHEP)",
    Resolution: `${video.videoWidth}×${video.videoHeight}`,
    Bitrate: formatBitrate(bitrate),
    Rendition: currentEl.dataset.rung || "–",
    "Packet loss": `${(loss * 100).toFixed(1)} %`,
    RTT: rtt !== undefined ? `${Math.round(rtt * 1000)} ms` : "–",
    "Latency (est.)": `${Math.round((buffer + (rtt || 0) / 2) * 1000)} ms`,
    "Frames decoded": inbound.framesDecoded,
  };
  showStats(rows);
}

// For automation and debugging: the current peer connection (read-only).
window.livecartPlayer = {
  get transport() { return transport; },
  get hls() { return hlsPlayback ? hlsPlayback.stats() : null; },
  get pc() { return pc; },
  get session() { return session; },
  get resource() { return resource; },
  get mappings() { return mappings.map((m) => ({ ...m })); },
};

// Paint one invisible card while the video starts: the first card a page paints (its fonts,
// their glyphs, the shadow's raster) held Chromium up long enough to skip presenting the frame
// it was for, which later cards did not.
function warmCards() {
  const el = buildCard({ id: "", title: "Warm-up", subtitle: "·", price: "0", currency: "EUR", image_url: "", buy_url: "#", stock: 3, sold: 1, badge: "·" });
  el.classList.add("in", "warm");
  // In a box of its own after the cards' (same place, same styles): never taken for a card.
  const box = Object.assign(document.createElement("div"), { className: "cards" });
  box.setAttribute("aria-hidden", "true");
  box.append(el);
  cardsEl.after(box);
  const drop = () => box.remove();
  video.addEventListener("playing", () => requestAnimationFrame(() => requestAnimationFrame(drop)), { once: true });
  setTimeout(drop, 15000);
}

window.addEventListener("pagehide", () => endSession(resource, true));
warmCards();
setInterval(updateStats, 1000);
setInterval(loadRenditions, 3000); // also the viewer count
loadRenditions();
watchFrames();
document.body.dataset.transport = transport;
if (transport === "hls") startHls("?mode=hls");
else connect();
