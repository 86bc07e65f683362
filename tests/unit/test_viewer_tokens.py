from __future__ import annotations

import pytest

from relay.errors import Forbidden, Unauthorized
from relay.sessions.tokens import mint, verify

SECRET = "a-viewer-secret-0123456789"


def test_a_fresh_token_is_accepted() -> None:
    verify(SECRET, "shop", mint(SECRET, "shop", 1000), now=999.0)


@pytest.mark.parametrize(
    ("token", "error", "word"),
    [
        (None, Unauthorized, "needs"),
        ("", Unauthorized, "needs"),
        ("garbage", Forbidden, "malformed"),
        ("v2.1000.abc", Forbidden, "malformed"),
        ("v1.x.abc", Forbidden, "malformed"),
        (mint(SECRET, "other", 1000), Forbidden, "not valid"),  # another stream's token
        (mint("another-secret-000000000", "shop", 1000), Forbidden, "not valid"),
        (mint(SECRET, "shop", 1000).replace("v1.1000.", "v1.9999."), Forbidden, "not valid"),  # extended
        (mint(SECRET, "shop", 500), Forbidden, "expired"),
    ],
)
def test_bad_tokens_are_refused(token: str | None, error: type[Exception], word: str) -> None:
    with pytest.raises(error, match=word):
        verify(SECRET, "shop", token, now=999.0)
