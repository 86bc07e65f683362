// The watch page's side of the embed (embed.js): in `?embed=1` mode it tells the shop page that
// frames it `ready` (the first frame plays, and again after the stream was offline), `offline`
// and `buy`, as {type: "livecart", event, stream, detail} posted to window.parent.
//
// Only to the origin named by `?parent=`, never "*": postMessage then delivers only if the
// parent really is that origin, so a page that lies about it gets nothing. Where the browser
// says who the parent is (location.ancestorOrigins; the referrer elsewhere) a mismatch is
// refused here already. Which sites may frame the page at all is the server's
// Content-Security-Policy (relay/http/framing.py, [server] embed_origins).

function parentOrigin(params) {
  if (params.get("embed") !== "1" || window.parent === window) return null;
  const parent = params.get("parent");
  let origin;
  try {
    origin = new URL(parent).origin;
  } catch {
    return null;
  }
  if (origin === "null" || origin !== parent) return null; // an origin exactly, no path
  const ancestors = location.ancestorOrigins;
  if (ancestors && ancestors.length) return ancestors[0] === origin ? origin : null;
  if (document.referrer) return new URL(document.referrer).origin === origin ? origin : null;
  return origin; // no way to tell here: postMessage's own origin check still holds
}

export function createEmbedLink({ params, stream }) {
  const embedded = params.get("embed") === "1";
  const target = parentOrigin(params);
  if (embedded && !target) console.warn("livecart: embedded, but ?parent= is missing or not this page's parent: no events");
  let state = null; // "ready" or "offline": each is told once per change

  function post(event, detail = {}) {
    if (target) window.parent.postMessage({ type: "livecart", event, stream, detail }, target);
  }

  return {
    embedded,
    // Buy tells the shop page only and opens no link (`buy="event"` on the element).
    buyOpensLink: params.get("buy") !== "event",
    playing(transport) {
      if (state === "ready") return;
      state = "ready";
      post("ready", { transport });
    },
    offline() {
      if (state === "offline") return;
      state = "offline";
      post("offline");
    },
    buy(card) {
      post("buy", { id: card.id, title: card.title, price: card.price, currency: card.currency, url: card.buy_url });
    },
  };
}
