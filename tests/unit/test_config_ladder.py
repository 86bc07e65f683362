"""The ladder in the configuration: defaults, a global ladder, a per-stream ladder, bad rungs."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import DEFAULT_LADDER, ConfigError, build_parser, load_config
from relay.sessions.rungs import ladder_for

KEY = "a-key-long-enough-12345"


def _load(tmp_path: Path, toml: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "livecart.toml"
    path.write_text(toml)
    return load_config(build_parser().parse_args(["serve", "--config", str(path)]), {})


def test_default_ladder_is_720_480_240(tmp_path: Path) -> None:
    config = _load(tmp_path, f'[streams.a]\npublish_key = "{KEY}"\n')
    assert config.transcode.ladder == DEFAULT_LADDER
    assert [r.name for r in ladder_for(config.streams[0], config.transcode)] == ["720p", "480p", "240p"]


def test_global_and_per_stream_ladders(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        f"""
[[transcode.ladder]]
name = "low"
width = 640
height = 360
kbps = 600
[[transcode.ladder]]
name = "top"
width = 1920
height = 1080
kbps = 5000

[streams.a]
publish_key = "{KEY}"

[streams.b]
publish_key = "{KEY}"
[[streams.b.ladder]]
name = "only"
width = 854
height = 480
kbps = 900
""",
    )
    a, b = config.stream("a"), config.stream("b")
    assert a is not None and b is not None
    assert [r.name for r in ladder_for(a, config.transcode)] == ["top", "low"]  # sorted high first
    assert [(r.name, r.video_kbps) for r in ladder_for(b, config.transcode)] == [("only", 900)]


@pytest.mark.parametrize(
    ("rung", "message"),
    [
        ('name = "x"\nwidth = 641\nheight = 360\nkbps = 500', "even"),
        ('name = "x"\nwidth = 640\nheight = 360\nkbps = 10', "kbps"),
        ('name = "bad name"\nwidth = 640\nheight = 360\nkbps = 500', "name"),
        ('name = "x"\nwidth = 640\nheight = 360', "exactly"),
        ('name = "x"\nwidth = 640\nheight = 360\nkbps = 500\nfps = 60', "exactly"),
    ],
)
def test_bad_rungs_are_named(tmp_path: Path, rung: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, f'[[transcode.ladder]]\n{rung}\n[streams.a]\npublish_key = "{KEY}"\n')


def test_duplicate_rung_names_are_refused(tmp_path: Path) -> None:
    rung = '[[transcode.ladder]]\nname = "x"\nwidth = 640\nheight = 360\nkbps = 500\n'
    with pytest.raises(ConfigError, match="unique"):
        _load(tmp_path, rung * 2 + f'[streams.a]\npublish_key = "{KEY}"\n')


def test_rungs_are_ordered_and_capped_by_their_short_side_in_either_orientation(tmp_path: Path) -> None:
    rungs = [("wide", 1920, 800, 3000), ("upright", 720, 1280, 2500), ("square", 1080, 1080, 4000)]
    toml = "".join(
        f'[[transcode.ladder]]\nname = "{n}"\nwidth = {w}\nheight = {h}\nkbps = {k}\n' for n, w, h, k in rungs
    )
    config = _load(
        tmp_path, toml + f'[transcode]\nmax_width = 1920\nmax_height = 1080\n[streams.a]\npublish_key = "{KEY}"\n'
    )
    assert [r[0] for r in config.transcode.ladder] == ["square", "wide", "upright"]  # short 1080, 800, 720
    # An upright 720x1280 rung is no bigger than 1280x720: it fits a 1920x1080 cap; 1080x1080 does too.
    assert [r.name for r in ladder_for(config.streams[0], config.transcode)] == ["square", "wide", "upright"]
