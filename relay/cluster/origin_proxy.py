"""An edge answers the conversation's HTTP API by asking the stream's origin, which owns it.

A redirect would be simpler, but the conversation's requests carry credentials (a viewer's
token, the host key) in ``Authorization``, and clients drop that header when a redirect leads
to another origin (browsers' fetch does, as the Fetch standard says; so does aiohttp): a viewer
of a protected stream posting through its edge would get 401. So an edge relays these requests,
with their body (at most ``MAX_BODY``), ``Authorization`` and ``Content-Type``, and answers with
the origin's status, body and the headers a client acts on. The host's live feed
(``/comments/events``), a long-lived stream, is redirected instead: the host console runs on the
origin anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp

from relay.cluster.hls_relay import OriginUnavailable

log = logging.getLogger("livecart.cluster")

MAX_BODY = 16 * 1024
TIMEOUT_S = 10.0  # a comment under the shop's review waits for its verdict
REQUEST_HEADERS = ("Authorization", "Content-Type")
RESPONSE_HEADERS = ("Content-Type", "Retry-After", "WWW-Authenticate")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]


async def ask_origin(
    http: aiohttp.ClientSession, origin: str, method: str, path_qs: str, headers: dict[str, str], body: bytes
) -> Answer:
    """The origin's answer to this request; OriginUnavailable (502) when it gives none."""
    sent = {k: v for k, v in headers.items() if k in REQUEST_HEADERS}
    try:
        async with http.request(
            method,
            f"{origin.rstrip('/')}{path_qs}",
            data=body or None,
            headers=sent,
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
            allow_redirects=False,
        ) as res:
            data = await res.read()
            kept = {k: v for k in RESPONSE_HEADERS if (v := res.headers.get(k)) is not None}
            return Answer(res.status, data, kept)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        log.info("cluster: %s %s relayed to %s failed: %s", method, path_qs.split("?", 1)[0], origin, reason)
        raise OriginUnavailable(f"the stream's origin did not answer ({reason})") from None
