"""Signed, expiring viewer tokens for protected streams (pure: time is a parameter).

A token is ``v1.<expires_at>.<signature>`` where the signature is HMAC-SHA256 over
``v1.<stream>.<expires_at>`` with the stream's ``viewer_secret``, base64url without padding.
The shop's backend mints them (``livecart token`` does the same) and hands one to each buyer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from relay.errors import Forbidden, Unauthorized


def _signature(secret: str, stream: str, expires_at: int) -> str:
    digest = hmac.new(secret.encode(), f"v1.{stream}.{expires_at}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint(secret: str, stream: str, expires_at: int) -> str:
    """A token for ``stream`` valid until ``expires_at`` (unix seconds)."""
    return f"v1.{expires_at}.{_signature(secret, stream, expires_at)}"


def verify(secret: str, stream: str, token: str | None, now: float) -> None:
    """Raise Unauthorized (no token) or Forbidden (malformed, forged, expired) unless valid."""
    if not token:
        raise Unauthorized("this stream needs a viewer token: 'Authorization: Bearer <token>' or ?token=")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "v1" or not parts[1].isdigit():
        raise Forbidden("malformed viewer token")
    expires_at = int(parts[1])
    if not hmac.compare_digest(parts[2].encode(), _signature(secret, stream, expires_at).encode()):
        raise Forbidden("viewer token is not valid for this stream")
    if now >= expires_at:
        raise Forbidden("viewer token has expired; get a new one")
