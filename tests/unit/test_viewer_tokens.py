"""Viewer tokens are standard JWTs: what a shop's backend mints with PyJWT is accepted, the rest refused."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.errors import Forbidden, Unauthorized
from relay.identity import Identity, guest, mint, verify

SECRET = "a-viewer-secret-0123456789-abcdefghij"


def shop_token(claims: dict[str, object], secret: str = SECRET, algorithm: str = "HS256") -> str:
    """What a shop's backend does: a stock JWT library, nothing of ours."""
    return jwt.encode(claims, secret, algorithm=algorithm)


def test_a_token_minted_by_a_stock_jwt_library_names_the_viewer() -> None:
    token = shop_token({"aud": "shop", "exp": 1000, "sub": "u-42", "name": "Ann", "role": "moderator"})
    assert verify(SECRET, "shop", token, now=999.0) == Identity("u-42", "Ann", "moderator")


def test_livecart_token_mints_what_verify_accepts() -> None:
    assert verify(SECRET, "shop", mint(SECRET, "shop", 1000, sub="u-1", name="Bo"), now=999.0) == Identity("u-1", "Bo")


def _none_token() -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'aud': 'shop', 'exp': 1000, 'sub': 'x'})}."


@pytest.mark.parametrize(
    ("token", "error", "word"),
    [
        (None, Unauthorized, "needs"),
        ("", Unauthorized, "needs"),
        ("garbage", Forbidden, "not valid"),
        ("v1.1000.abc", Forbidden, "old-format"),  # the custom tokens of earlier releases
        (mint(SECRET, "other", 1000), Forbidden, "another stream"),
        (mint("another-secret-000000000-0123456789", "shop", 1000), Forbidden, "not valid"),
        (mint(SECRET, "shop", 500), Forbidden, "expired"),
        (_none_token(), Forbidden, "not valid"),
        (shop_token({"aud": "shop", "exp": 1000, "sub": "x"}, algorithm="HS512"), Forbidden, "not valid"),
        (shop_token({"aud": "shop", "sub": "x"}), Forbidden, "exp"),
        (shop_token({"exp": 1000, "sub": "x"}), Forbidden, "aud"),
        (shop_token({"aud": "shop", "exp": 1000, "sub": "x", "role": "admin"}), Forbidden, "role"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token: str | None, error: type[Exception], word: str) -> None:
    with pytest.raises(error, match=word):
        verify(SECRET, "shop", token, now=999.0)


@given(st.text(max_size=300))
def test_any_text_as_a_token_is_refused_cleanly(text: str) -> None:
    try:
        verify(SECRET, "shop", text, now=0.0)
    except (Unauthorized, Forbidden):
        pass


def test_guests_get_distinct_ids_and_readable_names() -> None:
    a, b = guest(), guest()
    assert a.guest and a.sub != b.sub and a.name.startswith("Guest ")
