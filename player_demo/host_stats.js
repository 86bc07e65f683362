// Host console: the session's numbers from GET /api/streams/{stream}/stats (with the key), every
// 5 s: a summary line, a small chart of comments and likes per minute with the peak viewers of
// each minute as a line, and each card's impressions, Buy clicks and click-through rate.
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 120;
const MINUTES = 30; // the chart shows the last half hour

function el(name, attrs) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function minutes(seconds) {
  return seconds < 60 ? `${Math.round(seconds)} s` : `${Math.round(seconds / 60)} min`;
}

export function renderStats(stats, { summary, chart, cards }) {
  const v = stats.viewers;
  summary.textContent =
    `Session ${stats.session}${stats.live ? "" : " (offline)"} · ${minutes(stats.elapsed_s)} · viewers ${v.now} now, ${v.peak} peak, ${v.average} average, ` +
    `${v.joins} joins · ${minutes(v.watch_time_s)} watched · ${stats.comments} comments · ` +
    `${stats.likes} likes · ${stats.orders} orders`;

  // One slot per minute of the last MINUTES; comments and likes bars side by side, each scaled
  // to its own maximum (likes outnumber comments by far), the viewers' peak a line over them.
  const last = stats.timeline.length ? stats.timeline[stats.timeline.length - 1].minute : 0;
  const first = Math.max(0, last - MINUTES + 1);
  const shown = stats.timeline.filter((m) => m.minute >= first);
  const slot = WIDTH / MINUTES;
  const top = (key) => Math.max(1, ...shown.map((m) => m[key]));
  const scale = { comments: top("comments"), likes: top("likes"), viewers_peak: top("viewers_peak") };
  const nodes = [el("line", { x1: 0, y1: HEIGHT, x2: WIDTH, y2: HEIGHT, class: "axis" })];
  const points = [];
  for (const m of shown) {
    const x = (m.minute - first) * slot;
    for (const [i, key] of ["comments", "likes"].entries()) {
      const h = (m[key] / scale[key]) * (HEIGHT - 10);
      const bar = el("rect", { x: x + 1 + i * (slot / 2 - 1), y: HEIGHT - h, width: slot / 2 - 2, height: h, class: `bar-${key}` });
      bar.dataset.series = key;
      bar.dataset.minute = m.minute;
      bar.dataset.value = m[key];
      bar.append(el("title", {}));
      bar.lastChild.textContent = `minute ${m.minute}: ${m[key]} ${key}`;
      nodes.push(bar);
    }
    const y = HEIGHT - (m.viewers_peak / scale.viewers_peak) * (HEIGHT - 10);
    points.push(`${x + slot / 2},${y}`);
    nodes.push(el("circle", { cx: x + slot / 2, cy: y, r: 2.5, class: "dot-viewers" }));
  }
  if (points.length) nodes.push(el("polyline", { points: points.join(" "), class: "line-viewers" }));
  chart.replaceChildren(...nodes);

  cards.replaceChildren(
    ...stats.cards.map((c) => {
      const row = document.createElement("tr");
      row.dataset.id = c.id;
      for (const text of [c.title, c.impressions, c.clicks, `${(c.ctr * 100).toFixed(1)} %`, minutes(c.on_screen_s)]) {
        row.append(Object.assign(document.createElement("td"), { textContent: String(text) }));
      }
      return row;
    }),
  );
}

export function startHostStats({ api, key, parts, onError }) {
  let timer = null;
  async function poll() {
    clearTimeout(timer);
    if (key()) {
      try {
        const res = await fetch(`${api}/stats`, { headers: { Authorization: `Bearer ${key()}` } });
        if (!res.ok) throw new Error(`stats: ${res.status}: ${(await res.text()).trim()}`);
        renderStats(await res.json(), parts);
      } catch (err) {
        onError(String(err.message || err));
      }
    }
    timer = setTimeout(poll, 5000);
  }
  return { poll };
}
