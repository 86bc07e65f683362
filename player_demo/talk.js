// The conversation in the player: comments scrolling over the lower part of the video, a
// comment box, a like button with floating hearts and the live like count, the viewer count.
//
// Comments and likes go on the viewer's data channel when it is open (`send` returns false when
// it is not: then they are POSTed). Taps are batched, never one message per tap: the server
// counts them exactly and tells everyone the totals once a second.
const MAX_SHOWN = 6; // comments on screen at once; the oldest scrolls away
const SHOWN_MS = 20000; // a comment leaves the screen after this
const LIKE_BATCH_MS = 500;
const MAX_BATCH = 100; // the server refuses larger batches

export function createTalk({ stream, token, send }) {
  const api = `/api/streams/${encodeURIComponent(stream)}`;
  const list = document.getElementById("comments");
  const form = document.getElementById("comment-form");
  const input = document.getElementById("comment-text");
  const likeButton = document.getElementById("like");
  const likesEl = document.getElementById("likes");
  const hearts = document.getElementById("hearts");
  const errorEl = document.getElementById("talk-error");
  const viewersEl = document.getElementById("viewers");
  const pinnedEl = document.getElementById("pinned");
  const headers = { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) };
  let unsent = 0; // taps not yet sent
  let errorTimer = null;

  function showError(reason) {
    errorEl.textContent = reason;
    errorEl.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => { errorEl.hidden = true; }, 4000);
  }

  function addComment(comment) {
    if (list.querySelector(`[data-id="${comment.id}"]`)) return; // the echo and the display stream
    const li = document.createElement("li");
    li.className = `comment${comment.mine ? " mine" : ""}${comment.role !== "viewer" ? " staff" : ""}`;
    li.dataset.id = String(comment.id);
    li.append(
      Object.assign(document.createElement("b"), { textContent: comment.name }),
      " ",
      Object.assign(document.createElement("span"), { textContent: comment.text }),
    );
    list.append(li);
    while (list.children.length > MAX_SHOWN) list.firstElementChild.remove();
    setTimeout(() => li.remove(), SHOWN_MS);
  }

  // The host's pinned comment, above the others until it is unpinned (or deleted).
  function pin(comment) {
    pinnedEl.hidden = comment === null;
    if (comment === null) return pinnedEl.replaceChildren();
    pinnedEl.dataset.id = String(comment.id);
    pinnedEl.replaceChildren(
      Object.assign(document.createElement("span"), { className: "pin-mark", textContent: "Pinned · " }),
      Object.assign(document.createElement("b"), { textContent: comment.name }),
      " ",
      Object.assign(document.createElement("span"), { className: "pinned-text", textContent: comment.text }),
    );
  }

  // Social proof: "Ann just bought Silk scarf" (the server sends at most one every 2 s).
  function addOrder(order) {
    const li = document.createElement("li");
    li.className = "comment order";
    const what = order.quantity > 1 ? `${order.quantity} × ${order.title}` : order.title;
    li.append(
      Object.assign(document.createElement("b"), { textContent: order.buyer }),
      ` just bought ${what}`,
    );
    list.append(li);
    while (list.children.length > MAX_SHOWN) list.firstElementChild.remove();
    setTimeout(() => li.remove(), SHOWN_MS);
  }

  // Messages of the conversation; anything else is not ours (false).
  function onMessage(message) {
    if (message.type === "comment") addComment(message);
    else if (message.type === "comments") message.comments.forEach(addComment); // the display, batched
    else if (message.type === "order") addOrder(message);
    else if (message.type === "comment_removed") list.querySelector(`[data-id="${message.id}"]`)?.remove();
    else if (message.type === "comment_pinned") pin(message.comment);
    else if (message.type === "likes") likesEl.textContent = String(message.total);
    else if (message.type === "error" && message.status !== 404) showError(message.reason);
    else return false;
    return true;
  }

  async function post(path, body) {
    try {
      const res = await fetch(`${api}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
      if (!res.ok) showError((await res.text()).trim());
      else if (res.status === 201) addComment(await res.json());
    } catch {
      showError("not sent: no connection");
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    const message = { type: "comment", text };
    if (!send(message)) post("/comments", { text });
  });

  function floatHeart() {
    const heart = Object.assign(document.createElement("span"), { className: "heart", textContent: "♥" });
    heart.style.setProperty("--drift", `${Math.round(Math.random() * 60 - 30)}px`);
    heart.style.setProperty("--hue", `${Math.round(330 + Math.random() * 40)}`);
    hearts.append(heart);
    heart.addEventListener("animationend", () => heart.remove(), { once: true });
    setTimeout(() => heart.remove(), 3000);
  }

  likeButton.addEventListener("click", () => {
    unsent += 1;
    floatHeart();
  });

  setInterval(() => {
    if (!unsent) return;
    const count = Math.min(unsent, MAX_BATCH);
    unsent -= count;
    const message = { type: "like", count };
    if (!send(message)) post("/likes", { count });
  }, LIKE_BATCH_MS);

  return {
    onMessage,
    setViewers(n) { viewersEl.textContent = String(n); },
  };
}
