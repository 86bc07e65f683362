"""The [recording] configuration: on by default, rungs and retention from TOML, the flag, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import ConfigError, RecordingConfig, build_parser, load_config


def _load(tmp_path: Path, toml: str, *flags: str, env: dict[str, str] | None = None) -> RecordingConfig:
    path = tmp_path / "livecart.toml"
    path.write_text(toml)
    return load_config(build_parser().parse_args(["serve", "--config", str(path), *flags]), env or {}).recording


def test_every_session_is_recorded_by_default_with_a_bounded_retention(tmp_path: Path) -> None:
    recording = _load(tmp_path, "")
    assert recording.enabled and recording.rungs == () and recording.directory is None
    assert (recording.max_age_days, recording.max_total_gb) == (30.0, 10.0)


def test_toml_picks_rungs_and_retention_and_the_flag_turns_it_off(tmp_path: Path) -> None:
    toml = '[recording]\nrungs = ["720p", "240p"]\nmax_age_days = 7\nmax_total_gb = 0.5\ndirectory = "/srv/rec"\n'
    recording = _load(tmp_path, toml)
    assert recording.rungs == ("720p", "240p") and recording.max_age_days == 7.0 and recording.directory == "/srv/rec"
    assert not _load(tmp_path, toml, "--record", "0").enabled
    assert not _load(tmp_path, toml, env={"LIVECART_RECORD": "false"}).enabled


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("[recording]\nrungs = \"720p\"\n", "rungs must be a list"),
        ("[recording]\nrungs = [\"bad name\"]\n", "rungs must be a list"),
        ("[recording]\nmax_age_days = 0\n", "max_age_days must be positive"),
        ("[recording]\nmax_total_gb = -1\n", "max_total_gb must be positive"),
        ("[recording]\nkeep = true\n", "unknown key 'keep'"),
    ],
)
def test_bad_recording_settings_are_refused_with_what_is_wrong(tmp_path: Path, toml: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        _load(tmp_path, toml)
