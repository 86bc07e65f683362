// WHIP/WHEP signalling shared by the pages: offer, wait for ICE candidates, POST, answer.
// RFC 9725 (WHIP) and the WHEP draft: the server answers 201 with a Location to DELETE later.

export async function waitForIceGathering(pc, timeoutMs = 2000) {
  if (pc.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

export class SignallingError extends Error {
  constructor(status, reason) {
    super(`${status}: ${reason}`);
    this.status = status;
    this.reason = reason;
  }
}

// Negotiates `pc` against a WHIP or WHEP endpoint; returns the session resource URL.
export async function negotiate(pc, url, token) {
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIceGathering(pc);
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
  const body = await res.text();
  if (res.status !== 201) throw new SignallingError(res.status, body.trim());
  await pc.setRemoteDescription({ type: "answer", sdp: body });
  // After a 307 to another node (a cluster's edge) the session lives there: resolve against the
  // URL that answered, not the page's.
  return new URL(res.headers.get("Location"), res.url || location.href).href;
}

export async function endSession(resource, keepalive = false) {
  if (!resource) return;
  try {
    await fetch(resource, { method: "DELETE", keepalive });
  } catch {
    // The server drops sessions that vanish; nothing more to do here.
  }
}

export function streamFromPath() {
  return decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "demo");
}
