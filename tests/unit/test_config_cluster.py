"""The [cluster] configuration: the all-in-one default, flags over TOML, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import ConfigError, build_parser, load_config

TOKEN = "a-cluster-token-0123456789"


def _load(tmp_path: Path, toml: str, *flags: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "livecart.toml"
    path.write_text(toml)
    return load_config(build_parser().parse_args(["serve", "--config", str(path), *flags]), env or {})


def test_without_a_role_a_node_is_the_all_in_one_server_and_needs_no_redis(tmp_path: Path) -> None:
    cluster = _load(tmp_path, "").cluster
    assert (cluster.role, cluster.url, cluster.heartbeat_s, cluster.dead_after_s) == ("all", None, 1.0, 5.0)


def test_flags_override_the_toml_and_the_environment(tmp_path: Path) -> None:
    toml = f'[cluster]\nrole = "origin"\nurl = "redis://10.0.0.5:6379/0"\ntoken = "{TOKEN}"\npull_grace_s = 3\n'
    env = {"LIVECART_NODE_ID": "from-env"}
    cluster = _load(tmp_path, toml, "--role", "edge", "--cluster", "redis://127.0.0.1:7000/1", env=env).cluster
    assert (cluster.role, cluster.url, cluster.node_id, cluster.pull_grace_s) == (
        "edge", "redis://127.0.0.1:7000/1", "from-env", 3.0
    )  # fmt: skip


def test_a_relay_takes_its_level_from_the_flag_or_the_toml(tmp_path: Path) -> None:
    toml = f'[cluster]\nrole = "relay"\nurl = "redis://h:1/0"\ntoken = "{TOKEN}"\nrelay_level = 3\n'
    assert _load(tmp_path, toml).cluster.relay_level == 3
    assert _load(tmp_path, toml, "--relay-level", "2").cluster.relay_level == 2
    assert _load(tmp_path, "").cluster.relay_level == 1


@pytest.mark.parametrize(
    ("toml", "flags", "says"),
    [
        ("", ["--role", "edge"], "needs the cluster directory"),
        ("", ["--role", "origin", "--cluster", "redis://h:1/0"], "token of >= 16"),
        ("", ["--role", "origin", "--cluster", "http://h:1", "--cluster-token", TOKEN], "redis://"),
        ("[cluster]\nrole = 'boss'\n", [], "role must be all, origin, edge or relay"),
        ("", ["--workers", "2"], "--workers needs the cluster directory"),
        ("", ["--workers", "2", "--cluster", "redis://h:1/0"], "--workers needs a cluster token"),
        ("", ["--workers", "2", "--role", "edge", "--cluster", "redis://h:1/0", "--cluster-token", TOKEN], "leave out"),
        ("", ["--workers", "0"], "workers must be at least 1"),
        ("", ["--role", "relay", "--cluster", "redis://h:1/0", "--cluster-token", TOKEN, "--relay-level", "5"],
         "1..4"),
        ("[cluster]\nrelay_level = 0\n", [], "relay_level must be 1..4"),
        ("", ["--role", "edge", "--cluster", "redis://h:1/0", "--cluster-token", TOKEN, "--relay-level", "2"],
         "for --role relay"),
        ("[cluster]\nheartbeat_s = 3\ndead_after_s = 5\n", [], "at least twice heartbeat_s"),
        ("[cluster]\nlease = 3\n", [], "unknown key 'lease'"),
    ],
)
def test_a_cluster_setting_that_cannot_work_is_refused_naming_it(
    tmp_path: Path, toml: str, flags: list[str], says: str
) -> None:
    with pytest.raises(ConfigError, match=says):
        _load(tmp_path, toml, *flags)
