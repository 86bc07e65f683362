// LL-HLS playback for the watch page: hls.js (vendored, loaded only when needed) on
// /hls/{stream}/index.m3u8, and the product cards from the playlists' EXT-X-DATERANGE tags.
// With `{ url, vod: true }` it plays a recording (the replay page) the same way: its VOD
// playlists carry the same program dates and card date ranges as the live ones did.
//
// Card sync: every segment carries EXT-X-PROGRAM-DATE-TIME on the stream's media clock and each
// card's range starts (and ends) at the date of the video frame it was shown on, so a card is on
// screen exactly while the playhead's date (hls.playingDate) is inside its range. A viewer who
// joins late gets the ranges still open, however long ago they began.

const CARD_CLASS = "com.livecart.card";

// A level's rung name: the directory of its playlist (/hls/demo/720p/index.m3u8 -> 720p).
function rungOf(level) {
  const url = String(level.url || level.uri || "");
  return url.split("?")[0].split("/").slice(-2, -1)[0] || `${Math.min(level.width, level.height)}p`;
}

function decodeCard(b64url) {
  const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(b64 + "===".slice((b64.length + 3) % 4)), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

export class HlsPlayback {
  // `onCards(cards)` gets the cards on screen (by the playhead's date) whenever that set changes.
  // `token`: a protected stream's viewer token (the server adds it to every URI its playlists name).
  constructor(video, stream, { onCards, onStatus, onLevels, url = null, vod = false, token = null }) {
    this.video = video;
    this.token = token;
    this.stream = stream;
    this.url = url;
    this.vod = vod;
    this.onCards = onCards;
    this.onStatus = onStatus;
    this.onLevels = onLevels;
    this.hls = null;
    this.ranges = new Map(); // range id -> {start, end, card}
    this.onScreen = "";
    this.timer = null;
    this.stopped = false;
  }

  async start() {
    const { default: Hls } = await import("/static/vendor/hls.min.mjs");
    if (this.stopped) return;
    const query = this.token ? `?token=${encodeURIComponent(this.token)}` : "";
    const url = this.url || `/hls/${encodeURIComponent(this.stream)}/index.m3u8${query}`;
    if (!Hls.isSupported()) {
      // Safari plays LL-HLS natively (cards then come from the metadata text track, not wired here).
      this.video.src = url;
      return;
    }
    const live = {
      lowLatencyMode: true, // aims at PART-HOLD-BACK behind the live edge
      maxLiveSyncPlaybackRate: 1.25, // fall behind (a stall, a slow start) and play slightly faster to catch up
      backBufferLength: 30,
      manifestLoadingMaxRetry: 1000, // an offline stream has no playlist yet: keep asking
      manifestLoadingRetryDelay: 1000,
      manifestLoadingMaxRetryTimeout: 4000,
    };
    const hls = new Hls(this.vod ? { lowLatencyMode: false, startPosition: 0 } : live);
    this.hls = hls;
    hls.on(Hls.Events.LEVEL_UPDATED, (_e, data) => this.readRanges(data.details.dateRanges));
    hls.on(Hls.Events.LEVEL_LOADED, (_e, data) => this.readRanges(data.details.dateRanges));
    hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
      if (this.onLevels) this.onLevels(data.levels.map(rungOf));
      this.video.play().catch(() => {});
    });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      this.onStatus("connecting", "Reconnecting (HLS)…");
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else setTimeout(() => !this.stopped && hls.loadSource(url), 1000);
    });
    hls.loadSource(url);
    hls.attachMedia(this.video);
    this.timer = setInterval(() => this.updateCards(), 100);
    if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
      // On every presented frame too: a card comes on screen with the frame it was shown on.
      const onFrame = () => {
        if (this.stopped) return;
        this.updateCards();
        this.video.requestVideoFrameCallback(onFrame);
      };
      this.video.requestVideoFrameCallback(onFrame);
    }
  }

  readRanges(dateRanges) {
    for (const [id, range] of Object.entries(dateRanges || {})) {
      if (range.class !== CARD_CLASS) continue;
      const attr = range.attr || {};
      const payload = attr["X-CARD"];
      if (!payload) continue;
      try {
        this.ranges.set(id, {
          start: range.startDate.getTime(),
          end: range.endDate ? range.endDate.getTime() : Infinity,
          card: decodeCard(payload),
        });
      } catch {
        // A range we cannot read is skipped; the others still show.
      }
    }
    this.updateCards();
  }

  playingDate() {
    const date = this.hls && this.hls.playingDate;
    return date ? date.getTime() : null;
  }

  updateCards() {
    const now = this.playingDate();
    if (now === null) return;
    const cards = [...this.ranges.values()].filter((r) => r.start <= now && now < r.end).sort((a, b) => a.start - b.start);
    const key = cards.map((r) => `${r.card.id}@${r.start}`).join(",");
    if (key === this.onScreen) return;
    this.onScreen = key;
    this.onCards(cards.map((r) => r.card));
  }

  setLevel(name) {
    if (!this.hls) return;
    if (name === "auto") this.hls.currentLevel = -1;
    else this.hls.currentLevel = this.hls.levels.findIndex((l) => rungOf(l) === name);
  }

  stats() {
    const hls = this.hls;
    if (!hls) return null;
    const level = hls.levels[hls.currentLevel];
    const date = this.playingDate();
    return {
      level: level ? rungOf(level) : "–",
      auto: hls.autoLevelEnabled,
      bitrate: level ? level.bitrate : NaN,
      latency: hls.latency, // seconds behind the live edge, by hls.js
      glassToGlass: date === null ? null : (Date.now() - date) / 1000, // by program-date-time
      bandwidth: hls.bandwidthEstimate,
    };
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.hls) this.hls.destroy();
    this.hls = null;
  }
}
