"""LiveCart's configuration: one frozen dataclass tree, loaded once at start.

Precedence: command-line flags > environment (``LIVECART_*``) > TOML file > defaults.
Every value is validated here, with an error that names the flag, variable or key.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import re
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transcode.rendition import DEFAULT_LADDER, Ladder

STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RUNG_NAME = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
# A web origin as browsers serialise it (lower case, no path, no default-port games), with CSP's
# optional "*." for every subdomain: what frame-ancestors matches and a shop can copy from its
# address bar. Nothing else gets into the Content-Security-Policy header built from it.
EMBED_ORIGIN = re.compile(r"^https?://(\*\.)?([a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$")



class ConfigError(Exception):
    """A configuration value is wrong; the message names it and says what is expected."""


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """One stream a publisher may go live on."""

    name: str
    publish_key: str
    takeover: bool = True
    max_viewers: int | None = None
    ladder: Ladder | None = None  # None: the [transcode] ladder
    host_key: str | None = None  # a second bearer token for the card API only (a host's console)
    viewer_secret: str | None = None  # set: viewers need a signed token (see relay.identity)
    chat_words: tuple[str, ...] = ()  # comments with any of these words are refused
    chat_anonymous: bool = True  # guests (viewers of a stream without viewer_secret) may comment
    chat_review: str | None = None  # URL of the shop's comment review endpoint (relay.talk.review)
    chat_review_timeout_s: float = 0.2  # deadline of one review; past it the fail mode decides
    chat_review_fail_open: bool = True  # review down or late: show the comment (True) or refuse it with 503
    # "auto": an H.264 publisher without B-frames is forwarded as it is on the "source" rung (no
    # re-encode); "off": every rung is transcoded.
    passthrough: str = "off"
    # The shop's analytics count session by session: offline this long ends a session, and the
    # next go-live starts a new one (a publisher back sooner continues it; relay.sessions.analytics).
    session_gap_s: float = 300.0


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Capacity limits and deadlines."""

    max_publishers: int = 16
    max_viewers_per_stream: int = 200
    max_viewers_total: int = 2000  # viewers of all streams together
    max_connecting: int = 200  # sessions negotiating or not yet connected (each is dropped after setup_timeout_s)
    max_body_bytes: int = 32768
    max_media_sections: int = 8
    setup_timeout_s: float = 15.0
    media_timeout_s: float = 10.0
    header_timeout_s: float = 10.0  # a connection must send its request headers within this
    body_timeout_s: float = 10.0  # and a request its body
    posts_per_s_per_ip: float = 10.0  # WHIP/WHEP POSTs one client address may make (token bucket)
    posts_burst: int = 30


@dataclass(frozen=True, slots=True)
class TranscodeConfig:
    """How streams are encoded: the rendition ladder and the encoder settings."""

    max_width: int = 1920  # rungs larger than this (in either orientation) are left out of every ladder
    max_height: int = 1080
    fps: int = 30
    ladder: Ladder = DEFAULT_LADDER
    audio_kbps: int = 64
    gop_s: float = 2.0
    keyframe_min_interval_ms: int = 500
    encoder_threads: int = 1


@dataclass(frozen=True, slots=True)
class HlsConfig:
    """LL-HLS out of the encoded rungs (``/hls/{stream}/...``): parts, segments, window, audio."""

    enabled: bool = True
    part_s: float = 0.333  # a part closes at the first frame 85 % of this after its start; PART-TARGET is 1.5x
    segment_s: float = 2.0  # segments end on a keyframe once at least half of this long
    window_segments: int = 6  # complete segments a live playlist keeps
    audio_kbps: int = 96  # AAC, encoded once per stream for HLS (WebRTC keeps Opus)
    max_blocking: int = 2000  # blocking playlist/part requests held at once (503 past it)


@dataclass(frozen=True, slots=True)
class RecordingConfig:
    """Recording of every publishing session from its HLS segments, and its retention."""

    enabled: bool = True
    rungs: tuple[str, ...] = ()  # the HLS rungs recorded (the AAC audio always is); empty: every one
    directory: str | None = None  # default: <data_dir>/recordings
    max_age_days: float = 30.0  # finished recordings older than this are deleted
    max_total_gb: float = 10.0  # past this, the oldest finished recordings are deleted


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Where and how the server runs."""

    host: str = "127.0.0.1"
    port: int = 8080
    loop: str = "uvloop"
    demo: bool = False
    log_level: str = "info"
    log_format: str = "text"  # "text" or "json" (one object per line)
    public_url: str | None = None
    data_dir: str = "livecart-data"  # SQLite database of product cards lives here
    tls_cert: str | None = None  # PEM certificate chain: serve HTTPS (browsers capture only there)
    tls_key: str | None = None
    public_ip: str | None = None  # 1:1 NAT: the address put in answers' host candidates
    ice_servers: tuple[str, ...] = ()  # STUN/TURN URLs handed to clients in Link headers
    turn_username: str | None = None
    turn_credential: str | None = None
    on_publish: str | None = None  # webhook URL: may refuse a publisher (non-2xx -> 403)
    on_unpublish: str | None = None  # webhook URL: told when a publisher ends
    on_viewer: str | None = None  # webhook URL: may refuse a viewer
    webhook_timeout_s: float = 2.0
    webhook_fail_open: bool = False  # a hook that is down: admit (True) or answer 503 (False)
    publisher_start_kbps: int = 1500  # asked of browser publishers' encoders at start; 0: not asked
    # Sites whose pages may frame the player (/watch, the embed): ("*",) any site, () none but
    # this server's own pages, or a list of origins (relay/http/framing.py).
    embed_origins: tuple[str, ...] = ("*",)


MAX_RELAY_LEVEL = 4  # four levels of ~100 pulls each already reach 10^8 edges


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """This node's part in a cluster: ``all`` (one process, no Redis), ``origin``, ``edge`` or
    ``relay`` (an edge that edges pull from)."""

    role: str = "all"
    url: str | None = None  # redis://HOST:PORT/DB: the directory of nodes and stream origins
    node_id: str | None = None  # default: HOST:PORT of this node
    advertise_url: str | None = None  # how viewers and other nodes reach this node (default: its listen URL)
    token: str | None = None  # shared secret an edge shows an origin to pull a stream (>= 16 characters)
    heartbeat_s: float = 1.0  # how often a node writes its load
    dead_after_s: float = 5.0  # a node silent this long is dead (its Redis entry expires too)
    pull_grace_s: float = 10.0  # an edge keeps pulling a stream this long after its last viewer left
    workers: int = 1  # > 1: this machine runs one origin and workers-1 edges, one per core (relay/cluster/workers.py)
    relay_level: int = 1  # a relay at level n pulls from a relay at level n-1 (level 1: from the origin)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, passed down explicitly."""

    server: ServerConfig
    limits: LimitsConfig
    transcode: TranscodeConfig
    streams: tuple[StreamConfig, ...]
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    hls: HlsConfig = field(default_factory=HlsConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    generated_keys: frozenset[str] = field(default_factory=frozenset)

    def stream(self, name: str) -> StreamConfig | None:
        return next((s for s in self.streams if s.name == name), None)


# (section, key, flag, env, converter, help)
_Option = tuple[str, str, str, str, Callable[[str], Any], str]
_OPTIONS: tuple[_Option, ...] = (
    ("server", "host", "--host", "LIVECART_HOST", str, "address to listen on"),
    ("server", "port", "--port", "LIVECART_PORT", int, "TCP port (0 picks a free one)"),
    ("server", "loop", "--loop", "LIVECART_LOOP", str, "event loop: uvloop or asyncio"),
    ("server", "log_level", "--log-level", "LIVECART_LOG_LEVEL", str, "debug, info, warning or error"),
    ("server", "log_format", "--log-format", "LIVECART_LOG_FORMAT", str, "text or json"),
    ("server", "public_url", "--public-url", "LIVECART_PUBLIC_URL", str, "base URL printed for OBS"),
    ("server", "data_dir", "--data-dir", "LIVECART_DATA_DIR", str, "directory of the card database"),
    ("server", "tls_cert", "--tls-cert", "LIVECART_TLS_CERT", str, "PEM certificate chain for HTTPS"),
    ("server", "tls_key", "--tls-key", "LIVECART_TLS_KEY", str, "PEM private key for HTTPS"),
    ("server", "public_ip", "--public-ip", "LIVECART_PUBLIC_IP", str, "public address behind 1:1 NAT"),
    (
        "server",
        "embed_origins",
        "--embed-origins",
        "LIVECART_EMBED_ORIGINS",
        lambda text: _origins(text),
        "comma-separated origins whose pages may embed the player; * any, '' none",
    ),
    ("limits", "max_publishers", "--max-publishers", "LIVECART_MAX_PUBLISHERS", int, "live publishers at once"),
    ("limits", "max_viewers_total", "--max-viewers-total", "LIVECART_MAX_VIEWERS_TOTAL", int, "viewers of all streams"),
    (
        "limits",
        "max_connecting",
        "--max-connecting",
        "LIVECART_MAX_CONNECTING",
        int,
        "sessions negotiating or not yet connected",
    ),
    (
        "limits",
        "header_timeout_s",
        "--header-timeout",
        "LIVECART_HEADER_TIMEOUT",
        float,
        "seconds a connection has to send its request headers",
    ),
    ("limits", "body_timeout_s", "--body-timeout", "LIVECART_BODY_TIMEOUT", float, "seconds a request has for a body"),
    (
        "limits",
        "max_viewers_per_stream",
        "--max-viewers-per-stream",
        "LIVECART_MAX_VIEWERS_PER_STREAM",
        int,
        "viewers of one stream",
    ),
    (
        "limits",
        "setup_timeout_s",
        "--setup-timeout",
        "LIVECART_SETUP_TIMEOUT",
        float,
        "seconds a session may take to connect",
    ),
    (
        "limits",
        "media_timeout_s",
        "--media-timeout",
        "LIVECART_MEDIA_TIMEOUT",
        float,
        "seconds without media before a publisher is ended",
    ),
    ("transcode", "max_width", "--max-width", "LIVECART_MAX_WIDTH", int, "largest rendition width"),
    ("transcode", "max_height", "--max-height", "LIVECART_MAX_HEIGHT", int, "largest rendition height"),
    ("transcode", "fps", "--fps", "LIVECART_FPS", int, "encoded frame rate"),
    (
        "cluster",
        "role",
        "--role",
        "LIVECART_ROLE",
        str,
        "all (one process), origin (ingest), edge (viewers) or relay (what edges pull from)",
    ),
    ("cluster", "url", "--cluster", "LIVECART_CLUSTER", str, "Redis URL of the cluster directory, redis://HOST:PORT/DB"),
    ("cluster", "node_id", "--node-id", "LIVECART_NODE_ID", str, "this node's name in the cluster"),
    ("cluster", "advertise_url", "--advertise-url", "LIVECART_ADVERTISE_URL", str, "URL others reach this node at"),
    ("cluster", "token", "--cluster-token", "LIVECART_CLUSTER_TOKEN", str, "secret edges show origins to pull"),
    (
        "cluster",
        "workers",
        "--workers",
        "LIVECART_WORKERS",
        int,
        "processes on this machine: one origin and N-1 edges, one per core (needs --cluster)",
    ),
    (
        "cluster",
        "relay_level",
        "--relay-level",
        "LIVECART_RELAY_LEVEL",
        int,
        f"a relay's level, 1..{MAX_RELAY_LEVEL}: level n pulls from level n-1, level 1 from the origin",
    ),
    ("hls", "enabled", "--hls", "LIVECART_HLS", lambda text: _truthy(text), "serve LL-HLS at /hls/{stream}/ (1 or 0)"),
    ("recording", "enabled", "--record", "LIVECART_RECORD", lambda text: _truthy(text), "record each session (1 or 0)"),
)
_SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "limits": LimitsConfig,
    "transcode": TranscodeConfig,
    "cluster": ClusterConfig,
    "hls": HlsConfig,
    "recording": RecordingConfig,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livecart", description="LiveCart media server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the LiveCart server. Precedence: flags > LIVECART_* environment > TOML > defaults.",
    )
    serve.add_argument(
        "--config", metavar="PATH", default=None, help="TOML configuration file (env LIVECART_CONFIG; default: none)"
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        default=None,
        help="publish a built-in test pattern and tone on stream 'demo' (env LIVECART_DEMO=1)",
    )
    token = commands.add_parser(
        "token",
        help="mint a viewer token for a protected stream",
        description="Print a viewer token (a JWT, HS256 with the stream's viewer_secret) for a protected stream.",
    )
    token.add_argument("--config", metavar="PATH", default=None, help="TOML configuration file (env LIVECART_CONFIG)")
    token.add_argument("--stream", required=True, help="the protected stream")
    token.add_argument("--ttl", type=int, default=3600, help="seconds the token stays valid (default 3600)")
    token.add_argument("--sub", default="viewer", help="the shop's user id (JWT sub; default 'viewer')")
    token.add_argument("--name", default=None, help="the name others see (default: the sub)")
    token.add_argument("--role", choices=["viewer", "moderator", "host"], default="viewer", help="default viewer")
    # `livecart bench ...` is handed to the benchmarks package before this parser runs (relay.cli);
    # it is listed here so that `livecart --help` shows it.
    commands.add_parser("bench", help="load-test a server: a publisher and many WHEP viewers (livecart bench -h)")
    for section, key, flag, env, conv, text in _OPTIONS:
        default = getattr(_SECTIONS[section](), key)
        if isinstance(default, tuple):
            default = ",".join(default) or "none"
        help_text = f"{text} (env {env}; default {default})"
        kwargs: dict[str, Any] = {"default": None, "metavar": key.upper(), "help": help_text}
        if key == "loop":
            kwargs["choices"] = ["uvloop", "asyncio"]
        elif key == "role":
            kwargs["choices"] = ["all", "origin", "edge", "relay"]
        elif key == "log_level":
            kwargs["choices"] = ["debug", "info", "warning", "error"]
        elif key == "log_format":
            kwargs["choices"] = ["text", "json"]
        else:
            kwargs["type"] = conv
        serve.add_argument(flag, dest=f"{section}.{key}", **kwargs)
    return parser


def _check_type(where: str, value: Any, expected: Any) -> Any:
    kinds = {"int": int, "float": float, "str": str, "bool": bool}
    wanted = kinds.get(str(expected).replace("| None", "").strip(), None)
    if wanted is None:
        return value
    if wanted is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {wanted.__name__}, got {value!r}")
    return value


def _ladder(where: str, value: Any) -> Ladder:
    """``[[...ladder]]`` tables of name/width/height/kbps -> a ladder, highest rung first."""
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: ladder must be a non-empty array of {{name, width, height, kbps}} tables")
    rungs = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"name", "width", "height", "kbps"}:
            raise ConfigError(f"{where}: each ladder rung needs exactly name, width, height and kbps")
        name, width, height, kbps = item["name"], item["width"], item["height"], item["kbps"]
        if not isinstance(name, str) or not RUNG_NAME.match(name):
            raise ConfigError(f"{where}: ladder rung name {name!r} must match [A-Za-z0-9_-]{{1,16}}")
        for key, number, low in (("width", width, 16), ("height", height, 16), ("kbps", kbps, 50)):
            if not isinstance(number, int) or isinstance(number, bool) or number < low:
                raise ConfigError(f"{where}: ladder rung {name}: {key} must be an integer >= {low}")
        if width % 2 or height % 2:
            raise ConfigError(f"{where}: ladder rung {name}: width and height must be even")
        rungs.append((name, width, height, kbps))
    if len({r[0] for r in rungs}) != len(rungs):
        raise ConfigError(f"{where}: ladder rung names must be unique")
    # Highest first by the short side, which names a rung (then area, for equal short sides).
    return tuple(sorted(rungs, key=lambda r: (min(r[1], r[2]), r[1] * r[2]), reverse=True))


def _section_values(path: str, table: Any, cls: type[Any]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"config {path}: [{cls.__name__}] must be a table")
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields or key == "demo":
            raise ConfigError(f"config {path}: unknown key {key!r}; known: {', '.join(sorted(fields))}")
        if key == "ladder":
            out[key] = _ladder(f"config {path}", value)
            continue
        if key == "chat_words":
            if not isinstance(value, list) or not all(isinstance(w, str) and 0 < len(w) <= 64 for w in value):
                raise ConfigError(f"config {path}: chat_words must be a list of words (1-64 characters each)")
            out[key] = tuple(value)
            continue
        if key == "rungs":
            if not isinstance(value, list) or not all(isinstance(r, str) and RUNG_NAME.match(r) for r in value):
                raise ConfigError(f"config {path}: rungs must be a list of rung names")
            out[key] = tuple(value)
            continue
        if key == "embed_origins":
            if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
                raise ConfigError(f'config {path}: embed_origins must be a list of origins, e.g. ["https://shop.example"]')
            out[key] = tuple(value)
            continue
        if key == "ice_servers":
            if not isinstance(value, list) or not all(
                isinstance(u, str) and u.split(":", 1)[0] in ("stun", "stuns", "turn", "turns") for u in value
            ):
                raise ConfigError(f"config {path}: ice_servers must be a list of stun:/turn: URLs")
            out[key] = tuple(value)
            continue
        out[key] = _check_type(f"config {path}: {key}", value, fields[key])
    return out


def _load_toml(path_text: str) -> dict[str, Any]:
    path = Path(path_text)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path_text} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path_text} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path_text} is not valid TOML: {exc}") from None
    unknown = set(data) - {"server", "limits", "transcode", "cluster", "hls", "recording", "streams"}
    if unknown:
        raise ConfigError(f"config {path_text}: unknown table(s) {', '.join(sorted(unknown))}")
    return data


def _streams(path: str, table: Any) -> list[StreamConfig]:
    if not isinstance(table, dict):
        raise ConfigError(f"config {path}: [streams] must hold [streams.NAME] tables")
    streams = []
    for name, values in table.items():
        if not STREAM_NAME.match(name):
            raise ConfigError(f"config {path}: stream name {name!r} must match [A-Za-z0-9_-]{{1,64}}")
        fields = _section_values(f"{path} [streams.{name}]", values, StreamConfig)
        if "name" in fields:
            raise ConfigError(f"config {path}: [streams.{name}] must not set name")
        if "publish_key" not in fields:
            raise ConfigError(f"config {path}: [streams.{name}] needs a publish_key")
        streams.append(StreamConfig(name=name, **fields))
    return streams


def _validate(config: Config) -> None:
    s, lim, t = config.server, config.limits, config.transcode
    problems = [
        (not 0 <= s.port <= 65535, f"port must be 0..65535, got {s.port}"),
        (s.loop not in ("uvloop", "asyncio"), f"loop must be uvloop or asyncio, got {s.loop!r}"),
        (s.log_level not in ("debug", "info", "warning", "error"), f"log_level is {s.log_level!r}"),
        (s.log_format not in ("text", "json"), f"log_format must be text or json, got {s.log_format!r}"),
        (lim.max_publishers < 1, f"max_publishers must be positive, got {lim.max_publishers}"),
        (lim.max_viewers_per_stream < 1, f"max_viewers_per_stream must be positive, got {lim.max_viewers_per_stream}"),
        (lim.max_viewers_total < 1, f"max_viewers_total must be positive, got {lim.max_viewers_total}"),
        (lim.max_connecting < 1, f"max_connecting must be positive, got {lim.max_connecting}"),
        (lim.max_body_bytes < 1024, f"max_body_bytes must be at least 1024, got {lim.max_body_bytes}"),
        (lim.max_media_sections < 1, f"max_media_sections must be positive, got {lim.max_media_sections}"),
        (lim.setup_timeout_s <= 0, f"setup_timeout_s must be positive, got {lim.setup_timeout_s}"),
        (lim.media_timeout_s <= 0, f"media_timeout_s must be positive, got {lim.media_timeout_s}"),
        (lim.header_timeout_s <= 0, f"header_timeout_s must be positive, got {lim.header_timeout_s}"),
        (lim.body_timeout_s <= 0, f"body_timeout_s must be positive, got {lim.body_timeout_s}"),
        (lim.posts_per_s_per_ip <= 0, f"posts_per_s_per_ip must be positive, got {lim.posts_per_s_per_ip}"),
        (lim.posts_burst < 1, f"posts_burst must be at least 1, got {lim.posts_burst}"),
        ((s.tls_cert is None) != (s.tls_key is None), "tls_cert and tls_key go together: give both or neither"),
        (s.publisher_start_kbps < 0, f"publisher_start_kbps must be 0 or more, got {s.publisher_start_kbps}"),
        (s.public_ip is not None and not _is_ip(s.public_ip), f"public_ip must be an IP address, got {s.public_ip!r}"),
        (not 1 <= t.fps <= 60, f"fps must be 1..60, got {t.fps}"),
        (t.max_width < 16 or t.max_width % 2, f"max_width must be even and >= 16, got {t.max_width}"),
        (t.max_height < 16 or t.max_height % 2, f"max_height must be even and >= 16, got {t.max_height}"),
        (t.gop_s <= 0, f"gop_s must be positive, got {t.gop_s}"),
        *_embed_problems(s.embed_origins),
        *_cluster_problems(config.cluster),
        (not 0.1 <= config.hls.part_s <= 2.0, f"hls part_s must be 0.1..2.0, got {config.hls.part_s}"),
        (config.hls.segment_s < 3 * config.hls.part_s, "hls segment_s must be at least 3 parts"),
        (not 3 <= config.hls.window_segments <= 100, "hls window_segments must be 3..100"),
        (not 32 <= config.hls.audio_kbps <= 320, f"hls audio_kbps must be 32..320, got {config.hls.audio_kbps}"),
        (config.hls.max_blocking < 1, "hls max_blocking must be positive"),
        (config.recording.max_age_days <= 0, "recording max_age_days must be positive"),
        (config.recording.max_total_gb <= 0, "recording max_total_gb must be positive"),
    ]
    for stream in config.streams:
        problems.append((len(stream.publish_key) < 16, f"stream {stream.name}: publish_key needs >= 16 characters"))
        if stream.passthrough not in ("auto", "off"):
            problems.append((True, f"stream {stream.name}: passthrough is auto or off, not {stream.passthrough!r}"))
        if stream.viewer_secret is not None:
            short = len(stream.viewer_secret) < 32
            problems.append((short, f"stream {stream.name}: viewer_secret needs >= 32 characters (an HS256 key)"))
        if stream.host_key is not None:
            problems.append((len(stream.host_key) < 16, f"stream {stream.name}: host_key needs >= 16 characters"))
        if stream.max_viewers is not None:
            problems.append((stream.max_viewers < 1, f"stream {stream.name}: max_viewers must be positive"))
        if stream.chat_review is not None:
            bad_url = not stream.chat_review.startswith(("http://", "https://"))
            problems.append((bad_url, f"stream {stream.name}: chat_review must be an http:// or https:// URL"))
        if not 0.01 <= stream.chat_review_timeout_s <= 10:
            problems.append((True, f"stream {stream.name}: chat_review_timeout_s must be 0.01..10 seconds"))
        if stream.session_gap_s < 0:
            problems.append((True, f"stream {stream.name}: session_gap_s must be 0 or more"))
    for bad, message in problems:
        if bad:
            raise ConfigError(message)


def _cluster_problems(c: ClusterConfig) -> list[tuple[bool, str]]:
    clustered = c.role != "all"
    return [
        (
            c.role not in ("all", "origin", "edge", "relay"),
            f"cluster role must be all, origin, edge or relay, got {c.role!r}",
        ),
        (clustered and not c.url, f"role {c.role} needs the cluster directory: --cluster redis://HOST:PORT/DB"),
        (c.url is not None and not c.url.startswith(("redis://", "rediss://", "unix://")), "cluster url is redis://"),
        (clustered and (c.token is None or len(c.token) < 16), "a cluster needs a token of >= 16 characters"),
        (not 0.1 <= c.heartbeat_s <= 10, f"cluster heartbeat_s must be 0.1..10, got {c.heartbeat_s}"),
        (c.dead_after_s < 2 * c.heartbeat_s, "cluster dead_after_s must be at least twice heartbeat_s"),
        (c.pull_grace_s < 0, f"cluster pull_grace_s must be >= 0, got {c.pull_grace_s}"),
        (c.workers < 1, f"workers must be at least 1, got {c.workers}"),
        (
            not 1 <= c.relay_level <= MAX_RELAY_LEVEL,
            f"relay_level must be 1..{MAX_RELAY_LEVEL}, got {c.relay_level}",
        ),
        (c.relay_level > 1 and c.role != "relay", "relay_level is for --role relay"),
        (c.workers > 1 and not c.url, "--workers needs the cluster directory the workers meet in: --cluster redis://..."),
        (c.workers > 1 and clustered, "--workers runs its own origin and edges: leave out --role"),
        (
            c.workers > 1 and (c.token is None or len(c.token) < 16),
            "--workers needs a cluster token of >= 16 characters (--cluster-token)",
        ),
    ]


def _embed_problems(origins: tuple[str, ...]) -> list[tuple[bool, str]]:
    problems = [("*" in origins and len(origins) > 1, "embed_origins: '*' (any site) stands alone")]
    for origin in origins:
        if origin == "*":
            continue
        match = EMBED_ORIGIN.match(origin)
        bad = match is None or (match.group(4) is not None and not 1 <= int(match.group(4)[1:]) <= 65535)
        problems.append(
            (
                bad,
                f"embed_origins: {origin!r} is not an origin: write scheme://host[:port] in lower case, "
                "without a path or a trailing slash (e.g. 'https://shop.example'), or '*'",
            )
        )
    return problems


def _origins(text: str) -> tuple[str, ...]:
    """``--embed-origins`` and LIVECART_EMBED_ORIGINS: comma- or space-separated; '' is none."""
    return tuple(text.replace(",", " ").split())


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def load_config(
    args: argparse.Namespace,
    env: Mapping[str, str],
    *,
    token_factory: Callable[[], str] = lambda: secrets.token_urlsafe(24),
) -> Config:
    """Merge flags, environment, TOML and defaults into one validated Config."""
    values: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    path = getattr(args, "config", None) or env.get("LIVECART_CONFIG") or None
    data = _load_toml(path) if path else {}
    for name, cls in _SECTIONS.items():
        if name in data:
            values[name].update(_section_values(f"{path} [{name}]", data[name], cls))
    streams = _streams(str(path), data["streams"]) if "streams" in data else []
    for section, key, _flag, env_name, conv, _text in _OPTIONS:
        if env_name in env and env[env_name] != "":
            try:
                values[section][key] = conv(env[env_name])
            except ValueError:
                raise ConfigError(f"environment {env_name}={env[env_name]!r} is not a valid {conv.__name__}") from None
        flag_value = getattr(args, f"{section}.{key}", None)
        if flag_value is not None:
            values[section][key] = flag_value
    demo = bool(getattr(args, "demo", None)) or _truthy(env.get("LIVECART_DEMO", ""))
    values["server"]["demo"] = demo
    generated: set[str] = set()
    demo_key = env.get("LIVECART_DEMO_KEY") or None
    if not streams or (demo and not any(s.name == "demo" for s in streams)):
        key = demo_key or token_factory()
        if demo_key is None:
            generated.add("demo")
        streams.append(StreamConfig(name="demo", publish_key=key))
    elif demo_key is not None:
        streams = [dataclasses.replace(s, publish_key=demo_key) if s.name == "demo" else s for s in streams]
    config = Config(
        server=ServerConfig(**values["server"]),
        limits=LimitsConfig(**values["limits"]),
        transcode=TranscodeConfig(**values["transcode"]),
        streams=tuple(streams),
        cluster=ClusterConfig(**values["cluster"]),
        hls=HlsConfig(**values["hls"]),
        recording=RecordingConfig(**values["recording"]),
        generated_keys=frozenset(generated),
    )
    _validate(config)
    return config


def obs_settings_text(config: Config, stream: StreamConfig) -> str:
    """What the server prints so a host can point OBS (or a browser) at ``stream``."""
    server = config.server
    if server.public_url:
        base = server.public_url.rstrip("/")
    else:
        host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
        scheme = "https" if server.tls_cert else "http"
        base = f"{scheme}://{host}:{server.port}"
    return (
        "OBS: Settings -> Stream -> Service: WHIP\n"
        f"     Server:       {base}/whip/{stream.name}\n"
        f"     Bearer Token: {stream.publish_key}\n"
        f"Watch: {base}/watch/{stream.name}"
    )
