"""``[server] embed_origins`` and the frame-ancestors policies built from it (relay.http.framing)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.config import EMBED_ORIGIN, ConfigError, ServerConfig, build_parser, load_config
from relay.http.framing import CONSOLE_POLICY, player_policy


def _load(tmp_path: Path, toml: str, *flags: str, env: dict[str, str] | None = None) -> ServerConfig:
    path = tmp_path / "livecart.toml"
    path.write_text(toml)
    return load_config(build_parser().parse_args(["serve", "--config", str(path), *flags]), env or {}).server


def test_any_site_may_embed_the_player_by_default(tmp_path: Path) -> None:
    server = _load(tmp_path, "")
    assert server.embed_origins == ("*",)
    assert player_policy(server.embed_origins) == "frame-ancestors *"


def test_listed_shops_and_this_server_may_frame_the_player_and_no_one_else(tmp_path: Path) -> None:
    toml = '[server]\nembed_origins = ["https://shop.example", "http://127.0.0.1:8081", "https://*.brand.example"]\n'
    origins = _load(tmp_path, toml).embed_origins
    assert origins == ("https://shop.example", "http://127.0.0.1:8081", "https://*.brand.example")
    assert player_policy(origins) == (
        "frame-ancestors 'self' https://shop.example http://127.0.0.1:8081 https://*.brand.example"
    )


def test_an_empty_list_lets_only_this_servers_pages_frame_the_player(tmp_path: Path) -> None:
    origins = _load(tmp_path, "[server]\nembed_origins = []\n").embed_origins
    assert origins == ()
    assert player_policy(origins) == "frame-ancestors 'self'"


def test_the_flag_and_the_environment_take_comma_separated_origins_over_the_file(tmp_path: Path) -> None:
    toml = '[server]\nembed_origins = ["https://old.example"]\n'
    env = {"LIVECART_EMBED_ORIGINS": "https://a.example, https://b.example"}
    assert _load(tmp_path, toml, env=env).embed_origins == ("https://a.example", "https://b.example")
    flagged = _load(tmp_path, toml, "--embed-origins", "https://c.example", env=env)
    assert flagged.embed_origins == ("https://c.example",)
    assert _load(tmp_path, toml, "--embed-origins", "").embed_origins == ()


def test_the_console_pages_are_never_framed_by_another_site() -> None:
    assert CONSOLE_POLICY == "frame-ancestors 'self'"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('"https://shop.example"', "must be a list of origins"),
        ("[1]", "must be a list of origins"),
        ('["https://shop.example/"]', "'https://shop.example/' is not an origin"),
        ('["https://shop.example/cart"]', "is not an origin"),
        ('["shop.example"]', "is not an origin"),
        ('["ftp://shop.example"]', "is not an origin"),
        ('["https://Shop.Example"]', "in lower case"),
        ('["https://shop.example:0"]', "is not an origin"),
        ('["https://shop.example:70000"]', "is not an origin"),
        ('["https://shop.example; script-src *"]', "is not an origin"),
        ('["https://a.example,https://b.example"]', "is not an origin"),
        ('["*", "https://shop.example"]', "'\\*' \\(any site\\) stands alone"),
    ],
)
def test_what_is_not_an_origin_is_refused_with_what_to_write(tmp_path: Path, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        _load(tmp_path, f"[server]\nembed_origins = {value}\n")


def test_a_bad_origin_on_the_command_line_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("'https://shop.example/' is not an origin")):
        _load(tmp_path, "", "--embed-origins", "https://shop.example/")


_LABEL = st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True)
_ORIGIN = st.builds(
    lambda scheme, wild, labels, port: f"{scheme}://{wild}{'.'.join(labels)}{port}",
    st.sampled_from(["http", "https"]),
    st.sampled_from(["", "*."]),
    st.lists(_LABEL, min_size=1, max_size=4),
    st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")),
)


@given(st.lists(_ORIGIN, max_size=6, unique=True))
def test_a_policy_lists_exactly_the_origins_one_directive_no_separators(origins: list[str]) -> None:
    assert all(EMBED_ORIGIN.match(o) for o in origins)
    policy = player_policy(tuple(origins))
    assert ";" not in policy and "," not in policy, "one directive, nothing a shop could inject"
    assert policy.split() == ["frame-ancestors", "'self'", *origins]
