// One product card as the players show it over the video (the watch page and the replay).
import { formatPrice } from "/static/format.js";

// `onBuy(click)`: called when the viewer clicks Buy; the link opens the shop unless it calls
// click.preventDefault() (an embedding shop page that handles Buy itself).
export function renderCard(card, onBuy = null) {
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
  const soldOut = card.stock === 0;
  if (card.stock !== undefined || card.sold) {
    // Orders the shop reports count the stock down live ("Only 3 left"); sold out hides Buy.
    const left = card.stock === undefined ? "" : soldOut ? "Sold out" : card.stock <= 10 ? `Only ${card.stock} left` : `${card.stock} left`;
    const sold = card.sold ? `${card.sold} sold` : "";
    body.append(Object.assign(document.createElement("p"), { className: "card-stock", textContent: [left, sold].filter(Boolean).join(" · ") }));
  }
  if (card.badge) el.append(Object.assign(document.createElement("span"), { className: "badge-tag", textContent: card.badge }));
  if (soldOut) el.classList.add("sold-out");
  else {
    const buy = Object.assign(document.createElement("a"), { className: "buy", textContent: "Buy", href: card.buy_url, target: "_blank", rel: "noopener" });
    if (onBuy) buy.addEventListener("click", onBuy);
    body.append(buy);
  }
  el.append(img, body);
  return el;
}
