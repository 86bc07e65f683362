// One product card as the players show it over the video (the watch page and the replay).
import { formatPrice } from "/static/format.js";

export function renderCard(card) {
  const el = document.createElement("article");
  el.className = "card";
  el.dataset.id = card.id;
  const img = document.createElement("img");
  img.src = card.image_url;
  img.alt = "";
  img.onerror = () => img.remove();
  const body = document.createElement("div");
  body.className = "card-body";
  const title = document.createElement("h2");
  title.className = "card-title";
  title.textContent = card.title;
  body.append(title);
  if (card.subtitle) body.append(Object.assign(document.createElement("p"), { className: "card-sub", textContent: card.subtitle }));
  const price = Object.assign(document.createElement("p"), { className: "card-price", textContent: formatPrice(card.price, card.currency) });
  body.append(price);
  if (card.badge) el.append(Object.assign(document.createElement("span"), { className: "badge-tag", textContent: card.badge }));
  const buy = Object.assign(document.createElement("a"), { className: "buy", textContent: "Buy", href: card.buy_url, target: "_blank", rel: "noopener" });
  body.append(buy);
  el.append(img, body);
  return el;
}
