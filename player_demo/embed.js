// The one-tag embed for a shop's own page (served at /player/embed.js):
//
//   <script src="https://live.example.com/player/embed.js" async></script>
//   <livecart-player stream="demo"></livecart-player>
//
// The element holds an iframe of this server's watch page in embed mode
// (/watch/{stream}?embed=1&parent={the shop's origin}) and re-dispatches what that page posts as
// DOM events on itself: `ready` (the first frame plays), `offline` (the stream ended or is not
// live) and `buy` (a viewer clicked Buy; detail: {id, title, price, currency, url}). They bubble
// and are composed, so a listener on the element, on document or above a shadow root gets them.
//
// Attributes: stream (required); server (default: the origin this script was loaded from);
// mode="hls" (LL-HLS instead of WebRTC); token (a viewer token of a protected stream);
// buy="event" (Buy only tells the page, for its own cart; default "link": the card's buy link
// opens too); width/height (CSS lengths, bare numbers are px) or aspect="9:16" (default 16:9).
//
// A classic script, not a module: document.currentScript (where it was loaded from) is only
// known to classic scripts, and only while they first run.
(() => {
  if (customElements.get("livecart-player")) return; // the snippet pasted twice
  const loadedFrom = document.currentScript ? new URL(document.currentScript.src).origin : location.origin;
  const FRAME_ATTRIBUTES = ["stream", "server", "mode", "token", "buy"];
  const EVENTS = new Set(["ready", "offline", "buy"]);

  function cssLength(value) {
    return /^\d+(\.\d+)?$/.test(value) ? `${value}px` : value;
  }

  class LiveCartPlayer extends HTMLElement {
    static get observedAttributes() {
      return [...FRAME_ATTRIBUTES, "width", "height", "aspect"];
    }

    constructor() {
      super();
      this.attachShadow({ mode: "open" }).innerHTML =
        "<style>:host{display:block;position:relative;max-width:100%;background:#000}" +
        "iframe{position:absolute;inset:0;width:100%;height:100%;border:0}</style>";
      this.frame = null;
      this.connected = false; // attribute callbacks of an upgrade come first: the frame waits for this
      this.origin = null; // the server's origin: the only sender whose messages count
      this.onMessage = (event) => this.receive(event);
    }

    connectedCallback() {
      this.connected = true;
      window.addEventListener("message", this.onMessage);
      this.size();
      this.load();
    }

    disconnectedCallback() {
      this.connected = false;
      window.removeEventListener("message", this.onMessage);
      if (this.frame) this.frame.remove(); // leaves the stream (the watch page ends its session)
      this.frame = null;
    }

    attributeChangedCallback(name, before, after) {
      if (!this.connected || before === after) return;
      if (FRAME_ATTRIBUTES.includes(name)) this.load();
      else this.size();
    }

    size() {
      const width = this.getAttribute("width");
      const height = this.getAttribute("height");
      const [w, h] = (this.getAttribute("aspect") || "16:9").split(":").map(Number);
      this.style.width = width ? cssLength(width) : "";
      this.style.height = height ? cssLength(height) : "";
      // One given side and the aspect make the other; both given: exactly that box.
      this.style.aspectRatio = width && height ? "auto" : w > 0 && h > 0 ? `${w} / ${h}` : "16 / 9";
    }

    load() {
      const stream = this.getAttribute("stream");
      if (this.frame) this.frame.remove();
      this.frame = null;
      if (!stream) return console.error("<livecart-player>: the stream attribute is missing");
      let server;
      try {
        server = new URL(this.getAttribute("server") || loadedFrom);
      } catch {
        return console.error(`<livecart-player>: server="${this.getAttribute("server")}" is not a URL`);
      }
      this.origin = server.origin;
      const query = new URLSearchParams({ embed: "1", parent: location.origin });
      for (const name of ["mode", "token", "buy"]) if (this.hasAttribute(name)) query.set(name, this.getAttribute(name));
      const frame = document.createElement("iframe");
      frame.src = `${this.origin}/watch/${encodeURIComponent(stream)}?${query}`;
      frame.allow = "autoplay; fullscreen; picture-in-picture";
      frame.allowFullscreen = true;
      frame.title = `Live stream ${stream}`;
      this.shadowRoot.append(frame);
      this.frame = frame;
    }

    receive(event) {
      // Only our own frame, showing the server's page: not another player's, nor another site's.
      if (!this.frame || event.source !== this.frame.contentWindow || event.origin !== this.origin) return;
      const data = event.data;
      if (!data || data.type !== "livecart" || !EVENTS.has(data.event)) return;
      this.dispatchEvent(new CustomEvent(data.event, { detail: data.detail || {}, bubbles: true, composed: true }));
    }
  }

  customElements.define("livecart-player", LiveCartPlayer);
})();
