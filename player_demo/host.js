// Host console: the stream's catalogue, one click to show or hide a card, viewers per rung, and
// the full comment feed with its moderation controls (host_talk.js), and the session's numbers
// with a small chart (host_stats.js).
import { streamFromPath } from "/static/webrtc.js";
import { formatPrice } from "/static/format.js";
import { startHostTalk } from "/static/host_talk.js";
import { startHostStats } from "/static/host_stats.js";

const stream = streamFromPath();
const api = `/api/streams/${encodeURIComponent(stream)}`;
document.getElementById("stream-name").textContent = stream;
// The watch page itself (it starts muted), on the lowest rung: the video and the cards as viewers get them
// (it is a viewer, and counts as one).
document.getElementById("preview").src = `/watch/${encodeURIComponent(stream)}?rendition=240p`;
const keyInput = document.getElementById("key");
keyInput.value = sessionStorage.getItem(`livecart-key-${stream}`) || "";
const errorEl = document.getElementById("error");
const talk = startHostTalk({ api, key: () => keyInput.value, onError: (text) => { errorEl.textContent = text; } });
const stats = startHostStats({
  api,
  key: () => keyInput.value,
  parts: {
    summary: document.getElementById("stats-summary"),
    chart: document.getElementById("stats-chart"),
    cards: document.getElementById("card-stats"),
  },
  onError: (text) => { errorEl.textContent = text; },
});
keyInput.addEventListener("change", () => {
  sessionStorage.setItem(`livecart-key-${stream}`, keyInput.value);
  talk.follow();
stats.poll();
  stats.poll();
});
const form = document.getElementById("card-form");

// The one-tag embed of this stream (player_demo/embed.js), for the shop's own page.
const snippet = `<script src="${location.origin}/player/embed.js" async></script>\n<livecart-player stream="${stream}"></livecart-player>`;
const snippetEl = document.getElementById("embed-snippet");
snippetEl.textContent = snippet;
document.getElementById("copy-embed").addEventListener("click", async () => {
  const state = document.getElementById("copy-state");
  try {
    await navigator.clipboard.writeText(snippet); // secure contexts only (HTTPS, localhost)
  } catch {
    getSelection().selectAllChildren(snippetEl); // plain HTTP: selected, for Ctrl+C
    state.textContent = "Selected: press Ctrl+C (or ⌘C)";
    return;
  }
  state.textContent = "Copied";
});

async function call(method, path, body) {
  errorEl.textContent = "";
  const res = await fetch(`${api}${path}`, {
    method,
    headers: { Authorization: `Bearer ${keyInput.value}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) {
    errorEl.textContent = `${res.status}: ${(await res.text()).trim()}`;
    return null;
  }
  refresh();
  return res.json();
}

function item(card, onScreen) {
  const li = document.createElement("li");
  li.dataset.id = card.id;
  li.append(Object.assign(document.createElement("span"), { textContent: `${card.title} · ${formatPrice(card.price, card.currency)}` }));
  const toggle = Object.assign(document.createElement("button"), { type: "button", textContent: onScreen ? "Hide" : "Show" });
  toggle.className = onScreen ? "secondary hide" : "show";
  toggle.addEventListener("click", () => call("POST", `/cards/${encodeURIComponent(card.id)}/${onScreen ? "hide" : "show"}`));
  const edit = Object.assign(document.createElement("button"), { type: "button", textContent: "Edit", className: "secondary" });
  edit.addEventListener("click", () => {
    for (const [k, v] of Object.entries(card)) if (form.elements[k]) form.elements[k].value = v;
  });
  const del = Object.assign(document.createElement("button"), { type: "button", textContent: "Delete", className: "danger" });
  del.addEventListener("click", () => call("DELETE", `/cards/${encodeURIComponent(card.id)}`));
  li.append(" ", toggle, " ", edit, " ", del);
  return li;
}

async function refresh() {
  const [cards, info] = await Promise.all([fetch(`${api}/cards`).then((r) => r.json()), fetch(api).then((r) => r.json())]);
  const onScreenIds = new Set(cards.on_screen.map((c) => c.id));
  document.getElementById("on-screen").replaceChildren(
    ...(cards.on_screen.length ? cards.on_screen.map((c) => item(c, true)) : [Object.assign(document.createElement("li"), { className: "muted", textContent: "nothing" })]),
  );
  document.getElementById("catalogue").replaceChildren(...cards.catalogue.map((c) => item(c, onScreenIds.has(c.id))));
  document.getElementById("viewers").textContent = info.viewers;
  document.getElementById("rungs").textContent = info.rungs.map((r) => `${r.name}: ${r.viewers}`).join(" · ");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const card = {};
  for (const [k, v] of new FormData(form).entries()) {
    if (v === "") continue;
    card[k] = k === "stock" ? Number.parseInt(v, 10) : k === "ttl_s" ? Number(v) : v;
  }
  if (await call("POST", "/cards", card)) form.reset();
});

refresh();
setInterval(refresh, 2000);
talk.follow();
stats.poll();
