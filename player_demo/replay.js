// The replay of a recorded session: /replay/{stream}/{recording}. The recording's VOD playlists
// (hls.js, through hlsplayer.js) carry the cards as EXT-X-DATERANGEs dated like the live ones,
// so each card pops up at the moment the host showed it; the card list is a list of chapters
// ("jump to when the host showed this"). The comments are not replayed yet.
import { HlsPlayback } from "/static/hlsplayer.js";
import { renderCard } from "/static/cardview.js";
import { formatPrice } from "/static/format.js";

const [, , stream, recording] = location.pathname.split("/").map(decodeURIComponent);
const video = document.getElementById("video");
const statusEl = document.getElementById("status");
const cardsEl = document.getElementById("cards");
const chaptersEl = document.getElementById("chapters");
const shown = new Map(); // card id -> {card, el}
const firstShown = {}; // card id -> video time when it first came on screen (for automation)
let startedAt = null; // video time when playback first started

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
  statusEl.hidden = state === "playing";
}

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function showCards(cards) {
  const ids = new Set(cards.map((c) => c.id));
  for (const [id, entry] of [...shown]) {
    if (!ids.has(id)) {
      entry.el.remove();
      shown.delete(id);
    }
  }
  for (const card of cards) {
    const entry = shown.get(card.id);
    if (entry && JSON.stringify(entry.card) === JSON.stringify(card)) continue;
    if (entry) entry.el.remove();
    const el = renderCard(card);
    cardsEl.append(el);
    requestAnimationFrame(() => el.classList.add("in"));
    shown.set(card.id, { card, el });
    if (!(card.id in firstShown)) firstShown[card.id] = video.currentTime;
  }
}

async function loadChapters() {
  const res = await fetch(`/api/streams/${encodeURIComponent(stream)}/recordings/${encodeURIComponent(recording)}`);
  if (!res.ok) return;
  const info = await res.json();
  document.getElementById("title").textContent = `${info.stream} · ${new Date(info.started_at * 1000).toLocaleString()} · ${clock(info.duration_s)}`;
  for (const chapter of info.chapters) {
    const item = document.createElement("li");
    const jump = Object.assign(document.createElement("button"), {
      type: "button",
      className: "chapter",
      textContent: `${clock(chapter.at_s)} ${chapter.card.title} · ${formatPrice(chapter.card.price, chapter.card.currency)}`,
    });
    jump.dataset.id = chapter.card.id;
    jump.addEventListener("click", () => {
      video.currentTime = chapter.at_s;
      video.play().catch(() => {});
    });
    item.append(jump);
    chaptersEl.append(item);
  }
}

const playback = new HlsPlayback(video, stream, {
  url: `/recordings/${encodeURIComponent(stream)}/${encodeURIComponent(recording)}/index.m3u8${location.search}`,
  vod: true,
  onCards: showCards,
  onStatus: setStatus,
});

video.addEventListener("playing", () => {
  if (startedAt === null) startedAt = video.currentTime;
  setStatus("playing", "");
});
video.addEventListener("waiting", () => setStatus("buffering", "Buffering…"));
video.addEventListener("ended", () => setStatus("offline", "The end of the session"));
document.getElementById("unmute").addEventListener("click", () => {
  video.muted = false;
  video.play();
});

// For automation and debugging.
window.livecartReplay = {
  get firstShown() { return { ...firstShown }; },
  get startedAt() { return startedAt; },
  get playingDate() { return playback.playingDate(); },
};

playback.start();
loadChapters();
