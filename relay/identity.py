"""Viewer identity: standard JWTs for protected streams, guests elsewhere (pure: time is a parameter).

A shop's backend mints a token with any stock JWT library (``livecart token`` does the same):
HS256 signed with the stream's ``viewer_secret``, ``aud`` the stream's name (so a token for one
stream opens no other), ``exp`` required, ``sub`` the shop's user id, ``name`` what others see,
and an optional ``role`` (``viewer``, ``moderator`` or ``host``). Nothing but HS256 is accepted:
``alg: none`` and algorithm swaps fail like a forged signature. The custom ``v1.`` tokens of
earlier releases are refused with an error saying what to mint instead.

Streams without a secret admit anyone; each viewer gets a guest identity with a server-made name.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal, cast

import jwt

from relay.errors import Forbidden, Unauthorized

Role = Literal["viewer", "moderator", "host"]
ROLES: tuple[Role, ...] = ("viewer", "moderator", "host")
ALGORITHM = "HS256"
MAX_NAME = 40
LEEWAY_S = 5.0  # clocks of the shop's backend and this server may differ a little


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a viewer is: the shop's user id (``sub``), the name others see, and its role."""

    sub: str
    name: str
    role: Role = "viewer"
    guest: bool = False


def guest() -> Identity:
    """An anonymous viewer of an open stream: a fresh id and a readable name."""
    tag = secrets.token_hex(3)
    return Identity(sub=f"guest-{tag}", name=f"Guest {tag[:4]}", guest=True)


def mint(
    secret: str, stream: str, expires_at: int, *, sub: str = "viewer", name: str | None = None, role: Role = "viewer"
) -> str:
    """A token for ``stream`` valid until ``expires_at`` (unix seconds)."""
    claims: dict[str, object] = {"aud": stream, "exp": expires_at, "sub": sub, "name": name or sub, "role": role}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: str, stream: str, token: str | None, now: float) -> Identity:
    """The identity in ``token``; Unauthorized (none sent) or Forbidden (anything wrong with it)."""
    if not token:
        raise Unauthorized("this stream needs a viewer token: 'Authorization: Bearer <token>' or ?token=")
    if token.startswith("v1."):
        raise Forbidden("old-format viewer token: mint a JWT (HS256, aud = the stream, exp, sub, name)")
    try:
        claims = _decode(token, secret, stream, now)
    except jwt.ExpiredSignatureError:
        raise Forbidden("viewer token has expired; get a new one") from None
    except jwt.InvalidAudienceError:
        raise Forbidden("viewer token is for another stream") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Forbidden(f"viewer token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidTokenError:
        raise Forbidden("viewer token is not valid for this stream") from None
    return _identity(claims)


def _decode(token: str, secret: str, stream: str, now: float) -> dict[str, object]:
    """Signature, algorithm, audience and required claims by PyJWT; expiry against ``now`` here,
    so that the caller (and the tests) decide what the time is."""
    claims = cast(
        dict[str, object],
        jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=stream,
            options={"require": ["exp", "aud", "sub"], "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        ),
    )
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise jwt.InvalidTokenError("exp is not a number")
    if now >= exp + LEEWAY_S:
        raise jwt.ExpiredSignatureError("expired")
    return claims


def _identity(claims: dict[str, object]) -> Identity:
    sub, name, role = claims.get("sub"), claims.get("name", claims.get("sub")), claims.get("role", "viewer")
    if not isinstance(sub, str) or not sub or len(sub) > 128:
        raise Forbidden("viewer token's sub must be a non-empty string")
    if not isinstance(name, str) or not name.strip():
        raise Forbidden("viewer token's name must be a non-empty string")
    if role not in ROLES:
        raise Forbidden(f"viewer token's role must be one of {', '.join(ROLES)}")
    return Identity(sub=sub, name=name.strip()[:MAX_NAME], role=role)
