// The replay of a recorded session: /replay/{stream}/{recording}. The recording's VOD playlists
// (hls.js, through hlsplayer.js) carry the cards as EXT-X-DATERANGEs dated like the live ones,
// so each card pops up at the moment the host showed it; the card list is a list of chapters
// ("jump to when the host showed this"). The session's comments come back over the picture at
// the moments they were posted (deleted ones are left out by the server), as they did live.
import { HlsPlayback } from "/static/hlsplayer.js";
import { renderCard } from "/static/cardview.js";
import { formatPrice } from "/static/format.js";

const [, , stream, recording] = location.pathname.split("/").map(decodeURIComponent);
const token = new URLSearchParams(location.search).get("token"); // a protected stream's viewer token
const authorized = token ? { headers: { Authorization: `Bearer ${token}` } } : {};
const video = document.getElementById("video");
const statusEl = document.getElementById("status");
const cardsEl = document.getElementById("cards");
const chaptersEl = document.getElementById("chapters");
const commentsEl = document.getElementById("comments");
const COMMENTS_SHOWN = 8; // the most recent ones on screen, as the live player shows
const COMMENT_WINDOW_S = 20; // a comment stays this long after its moment
let comments = []; // {id, name, role, text, at_s}, oldest first
let commentsKey = ""; // which ones are on screen now
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
  const res = await fetch(`/api/streams/${encodeURIComponent(stream)}/recordings/${encodeURIComponent(recording)}`, authorized);
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

// The comments posted up to the playhead: the last few of the last COMMENT_WINDOW_S seconds.
function showComments() {
  const now = video.currentTime;
  let lo = 0;
  let hi = comments.length;
  while (lo < hi) { // the first comment after the playhead
    const mid = (lo + hi) >> 1;
    if (comments[mid].at_s <= now) lo = mid + 1; else hi = mid;
  }
  const visible = [];
  for (let i = lo - 1; i >= 0 && visible.length < COMMENTS_SHOWN; i--) {
    if (comments[i].at_s < now - COMMENT_WINDOW_S) break;
    visible.unshift(comments[i]);
  }
  const key = visible.map((c) => c.id).join(",");
  if (key === commentsKey) return;
  commentsKey = key;
  commentsEl.replaceChildren(...visible.map((comment) => {
    const li = document.createElement("li");
    li.className = `comment${comment.role !== "viewer" ? " staff" : ""}`;
    li.dataset.id = String(comment.id);
    li.append(
      Object.assign(document.createElement("b"), { textContent: comment.name }),
      " ",
      Object.assign(document.createElement("span"), { textContent: comment.text }),
    );
    return li;
  }));
}

async function loadComments() {
  const res = await fetch(`/api/streams/${encodeURIComponent(stream)}/recordings/${encodeURIComponent(recording)}/comments`, authorized);
  if (!res.ok) return;
  comments = (await res.json()).comments;
  showComments();
}

video.addEventListener("timeupdate", showComments);
video.addEventListener("seeked", showComments);

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
  get comments() { return comments.length; },
};

playback.start();
loadChapters();
loadComments();
