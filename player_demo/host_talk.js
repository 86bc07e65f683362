// The host console's conversation: every accepted comment as it arrives (the SSE feed at
// /comments/events, read with fetch because EventSource cannot send the key), the like total,
// and per comment the moderation controls: delete it (gone for every viewer), mute its author
// for 5 minutes, ban its author, pin it above the viewers' comments; and every order the shop reports, as it comes in.
const KEEP = 300; // comments listed; the oldest go first

export function startHostTalk({ api, key, onError }) {
  const list = document.getElementById("comment-feed");
  const likesEl = document.getElementById("host-likes");
  const stateEl = document.getElementById("feed-state");
  const ordersEl = document.getElementById("order-feed");
  const subs = new Map(); // comment id -> author's sub (from the listing; the feed adds it too)
  let reader = null;
  let retry = null;

  const auth = () => ({ Authorization: `Bearer ${key()}`, "Content-Type": "application/json" });

  async function act(method, path, body) {
    const res = await fetch(`${api}${path}`, { method, headers: auth(), body: body ? JSON.stringify(body) : undefined });
    if (!res.ok) onError(`${res.status}: ${(await res.text()).trim()}`);
    return res.ok;
  }

  function button(text, className, onClick) {
    const b = Object.assign(document.createElement("button"), { type: "button", textContent: text, className });
    b.addEventListener("click", onClick);
    return b;
  }

  function add(comment) {
    if (list.querySelector(`[data-id="${comment.id}"]`)) return;
    if (comment.sub) subs.set(comment.id, comment.sub);
    const li = document.createElement("li");
    li.className = "feed-comment";
    li.dataset.id = String(comment.id);
    const sub = comment.sub ?? subs.get(comment.id);
    const when = new Date(comment.sent_at * 1000).toLocaleTimeString();
    li.append(
      Object.assign(document.createElement("span"), { className: "muted", textContent: `${when} ` }),
      Object.assign(document.createElement("b"), { textContent: comment.name }),
      " ",
      Object.assign(document.createElement("span"), { className: "feed-text", textContent: comment.text }),
      " ",
      button("Delete", "danger delete", () => act("DELETE", `/comments/${comment.id}`)),
      " ",
      button("Pin", "secondary pin", () => act(li.classList.contains("pinned") ? "DELETE" : "POST", `/comments/${comment.id}/pin`)),
    );
    if (sub && comment.role === "viewer") {
      li.append(
        " ",
        button("Mute 5 min", "secondary mute", () => act("POST", "/moderation", { action: "mute", sub, seconds: 300 })),
        " ",
        button("Ban", "secondary ban", async () => {
          if (await act("POST", "/moderation", { action: "ban", sub })) li.classList.add("banned");
        }),
      );
    }
    list.prepend(li); // newest on top
    while (list.children.length > KEEP) list.lastElementChild.remove();
  }

  function onEvent(message) {
    if (message.type === "comment") add(message);
    else if (message.type === "comment_removed") list.querySelector(`[data-id="${message.id}"]`)?.remove();
    else if (message.type === "likes") likesEl.textContent = String(message.total);
    else if (message.type === "order") addOrder(message);
    else if (message.type === "comment_pinned") {
      for (const li of list.querySelectorAll("li.pinned")) {
        li.classList.remove("pinned");
        li.querySelector("button.pin").textContent = "Pin";
      }
      const li = message.comment && list.querySelector(`[data-id="${message.comment.id}"]`);
      if (li) {
        li.classList.add("pinned");
        li.querySelector("button.pin").textContent = "Unpin";
      }
    }
  }

  function addOrder(order) {
    ordersEl.querySelector(".empty")?.remove();
    const li = document.createElement("li");
    li.className = "feed-order";
    li.dataset.card = order.card;
    const left = order.stock === null ? "" : order.stock === 0 ? " · sold out" : ` · ${order.stock} left`;
    li.append(
      Object.assign(document.createElement("span"), { className: "muted", textContent: `${new Date().toLocaleTimeString()} ` }),
      Object.assign(document.createElement("b"), { textContent: order.buyer }),
      ` bought ${order.quantity} × ${order.title}${left}`,
    );
    ordersEl.prepend(li);
    while (ordersEl.children.length > KEEP) ordersEl.lastElementChild.remove();
  }

  async function follow() {
    clearTimeout(retry);
    if (reader) reader.cancel().catch(() => {});
    reader = null;
    if (!key()) return;
    try {
      const listing = await fetch(`${api}/comments`, { headers: auth() });
      if (!listing.ok) throw new Error(`${listing.status}: ${(await listing.text()).trim()}`);
      const recent = await listing.json();
      list.replaceChildren();
      for (const c of recent.comments) add(c);
      onEvent({ type: "comment_pinned", comment: recent.comments.find((c) => c.id === recent.pinned) ?? null });
      likesEl.textContent = String(recent.likes.total);
      const res = await fetch(`${api}/comments/events`, { headers: auth() });
      if (!res.ok) throw new Error(`${res.status}: ${(await res.text()).trim()}`);
      stateEl.textContent = "live";
      reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of block.split("\n")) if (line.startsWith("data: ")) onEvent(JSON.parse(line.slice(6)));
        }
      }
    } catch (err) {
      onError(String(err.message || err));
    }
    stateEl.textContent = "reconnecting";
    retry = setTimeout(follow, 2000);
  }

  return { follow };
}
