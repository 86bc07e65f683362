"""The ``livecart`` command: ``serve`` runs the server, ``token`` mints a viewer token, ``bench`` load-tests."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable, Sequence

from aiohttp import web

from ingest.logctx import SessionFilter
from ingest.peer import quiet_abandoned_connects
from relay.cluster.workers import follow_supervisor, plan_workers, supervise
from relay.config import Config, ConfigError, build_parser, load_config, obs_settings_text
from relay.http.app import build_app
from relay.http.cluster_api import CLUSTER
from relay.http.deadlines import DeadlineRunner, HeaderDeadlines
from relay.identity import mint as mint_viewer_token
from relay.media.udplink import NATIVE
from relay.sessions.nofile import raise_to_hard

log = logging.getLogger("livecart")

SHUTDOWN_DEADLINE_S = 10.0


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, session, message (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "session": getattr(record, "session", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def _setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SessionFilter())
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s [%(session)s] %(name)s: %(message)s")
    handler.setFormatter(formatter)
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])
    # aioice and aiortc log every candidate pair at INFO; keep their noise out of operator logs.
    for noisy in ("aioice", "aiortc", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


async def serve(config: Config) -> int:
    """Run the server until SIGINT/SIGTERM, then close every session within the deadline."""
    quiet_abandoned_connects(asyncio.get_running_loop())
    deadlines = HeaderDeadlines(config.limits.header_timeout_s)
    app = build_app(config, deadlines)
    runner = DeadlineRunner(app, deadlines, handle_signals=False, access_log=None)
    await runner.setup()
    ssl_context = None
    if config.server.tls_cert and config.server.tls_key:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(config.server.tls_cert, config.server.tls_key)
        except (OSError, ssl.SSLError) as exc:
            await runner.cleanup()
            print(f"livecart: cannot load the TLS certificate/key: {exc}", file=sys.stderr)
            return 2
    site = web.TCPSite(runner, config.server.host, config.server.port, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"livecart: cannot listen on {config.server.host}:{config.server.port}: {exc.strerror}", file=sys.stderr)
        return 1
    port = runner.addresses[0][1]
    shown = dataclasses.replace(config, server=dataclasses.replace(config.server, port=port))
    host = "127.0.0.1" if config.server.host in ("0.0.0.0", "::", "") else config.server.host
    scheme = "https" if ssl_context else "http"
    app[CLUSTER].start(f"{scheme}://{host}:{port}")  # in a cluster: heartbeat, routing, pulls
    print(f"LiveCart listening on {scheme}://{host}:{port}", flush=True)
    send_loop = "compiled (relay/media/_sendloop.c)" if NATIVE else "Python (not built or LIVECART_NATIVE=0)"
    log.info("send loop: %s", send_loop)
    for stream in shown.streams:
        if stream.name in shown.generated_keys:
            print(obs_settings_text(shown, stream), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    try:
        await asyncio.wait_for(runner.cleanup(), SHUTDOWN_DEADLINE_S)
    except TimeoutError:
        log.warning("shutdown took over %.0f s; exiting anyway", SHUTDOWN_DEADLINE_S)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        # The load-test client is a user of the server, not part of it: relay never imports it
        # statically (see the import contracts); it is loaded only when asked for.
        bench: Callable[[list[str]], int] = importlib.import_module("benchmarks.bench").cli
        return bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(args, os.environ)
    except ConfigError as exc:
        print(f"livecart: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        stream = config.stream(args.stream)
        if stream is None or stream.viewer_secret is None:
            print(f"livecart: stream {args.stream!r} has no viewer_secret in the configuration", file=sys.stderr)
            return 2
        expires = int(time.time()) + args.ttl
        secret = stream.viewer_secret
        print(mint_viewer_token(secret, stream.name, expires, sub=args.sub, name=args.name, role=args.role))
        return 0
    if args.command != "serve":
        parser.print_help()
        return 2
    _setup_logging(config.server.log_level, config.server.log_format)
    nofile = raise_to_hard()  # before anything opens sockets; what it allows is logged at start
    if nofile.error is not None:
        log.warning("cannot raise the open-files limit from %d to %d: %s", nofile.before, nofile.hard, nofile.error)
    elif nofile.soft != nofile.before:
        log.info("raised the open-files limit from %d to the hard limit %d", nofile.before, nofile.soft)
    if not follow_supervisor(dict(os.environ)):
        log.error("the --workers supervisor that started this worker is gone: not starting")
        return 1
    if config.cluster.workers > 1:  # a supervisor of one origin and N-1 edge processes
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        cluster = config.cluster
        specs = plan_workers(cluster.workers, config.server.port, cluster.node_id, cluster.advertise_url, cpus)
        return supervise(argv, specs)
    if config.server.loop == "uvloop":
        import uvloop

        return uvloop.run(serve(config))
    return asyncio.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
