// Formatting helpers for the pages (pure functions).

export function formatPrice(price, currency, locale = navigator.language) {
  const value = Number(price);
  try {
    return new Intl.NumberFormat(locale, { style: "currency", currency }).format(value);
  } catch {
    return `${price} ${currency}`;
  }
}

export function formatBitrate(bitsPerSecond) {
  if (!Number.isFinite(bitsPerSecond)) return "–";
  if (bitsPerSecond >= 1e6) return `${(bitsPerSecond / 1e6).toFixed(2)} Mbit/s`;
  return `${Math.round(bitsPerSecond / 1e3)} kbit/s`;
}
