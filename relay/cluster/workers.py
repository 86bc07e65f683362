"""``livecart serve --workers N``: one origin and N-1 edges on this machine, each on its own core.

The plan (``plan_workers``: roles, ports, node ids, cores) is pure; ``supervise`` starts each
worker as its own ``livecart serve`` process with that plan's flags (``--role``, ``--port``,
``--node-id``, ``--workers 1``), pinned to its core, forwards their output, restarts one that
dies, and on SIGTERM/SIGINT stops the edges, then the origin. The workers find each other
through the cluster directory (``--cluster redis://...``), exactly as nodes on separate
machines do; viewers POST to the origin and are redirected (307) to the least-loaded edge.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger("livecart.workers")

START_TIMEOUT_S = 60.0  # a worker that has not printed its "listening" line by then failed
STOP_TIMEOUT_S = 15.0  # each worker's own shutdown deadline is 10 s
RESTART_BACKOFF_S = 2.0  # a worker that dies is started again after this, not in a tight loop


SUPERVISOR_ENV = "LIVECART_SUPERVISOR_PID"
PR_SET_PDEATHSIG = 1


def follow_supervisor(env: dict[str, str]) -> bool:
    """In a worker: die with the supervisor, even one that was SIGKILLed (Linux's parent-death
    signal). False when the supervisor is already gone (the worker should not start)."""
    supervisor = env.get(SUPERVISOR_ENV)
    if not supervisor:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the supervisor's own stop has to do
        pass
    return os.getppid() == int(supervisor)


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """One worker process: its role, port (0: a free one), cluster node id, core and URL."""

    index: int
    role: str  # "origin" or "edge"
    port: int
    node_id: str | None
    cpu: int | None
    advertise_url: str | None

    @property
    def name(self) -> str:
        return "origin" if self.role == "origin" else f"edge{self.index}"

    def flags(self) -> list[str]:
        """What this worker's ``livecart serve`` gets on top of the supervisor's own flags."""
        out = ["--workers", "1", "--role", self.role, "--port", str(self.port)]
        if self.node_id is not None:
            out += ["--node-id", self.node_id]
        if self.advertise_url is not None:
            out += ["--advertise-url", self.advertise_url]
        return out


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, parts.query, parts.fragment))


def plan_workers(
    workers: int, port: int, node_id: str | None, advertise_url: str | None, cpus: Sequence[int]
) -> list[WorkerSpec]:
    """Worker 0 is the origin, the others edges; with a fixed ``port`` worker i listens on
    ``port + i`` (and advertises that port), with port 0 each picks a free one; worker i runs
    on ``cpus[i % len(cpus)]`` (no pinning when ``cpus`` is empty)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    specs = []
    for index in range(workers):
        role = "origin" if index == 0 else "edge"
        own_port = port + index if port else 0
        name = "origin" if index == 0 else f"edge{index}"
        specs.append(
            WorkerSpec(
                index=index,
                role=role,
                port=own_port,
                node_id=f"{node_id}-{name}" if node_id else None,
                cpu=cpus[index % len(cpus)] if cpus else None,
                advertise_url=_with_port(advertise_url, own_port) if advertise_url and own_port else None,
            )
        )
    return specs


class _Worker:
    def __init__(self, spec: WorkerSpec, argv: Sequence[str]) -> None:
        self.spec = spec
        self.argv = list(argv)
        self.proc: subprocess.Popen[str] | None = None
        self.url: str | None = None
        self.started_at = 0.0
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        env = {**os.environ, "LIVECART_WORKERS": "1", SUPERVISOR_ENV: str(os.getpid())}
        self._listening.clear()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay.cli", *self.argv, *self.spec.flags()],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.started_at = time.monotonic()
        if self.spec.cpu is not None and hasattr(os, "sched_setaffinity"):
            # Right away, while the worker still imports: the threads it starts later inherit it.
            try:
                os.sched_setaffinity(self.proc.pid, {self.spec.cpu})
            except OSError as exc:
                log.warning("worker %s: cannot pin to CPU %d: %s", self.spec.name, self.spec.cpu, exc.strerror)
        self._reader = threading.Thread(target=self._forward, name=f"worker-{self.spec.name}-out", daemon=True)
        self._reader.start()

    def _forward(self) -> None:
        """Pass the worker's output on, noting its URL from its "listening on" line."""
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            if not self._listening.is_set() and line.startswith("LiveCart listening on "):
                self.url = line.split()[-1]
                self._listening.set()
                line = f"worker {self.spec.name} (pid {proc.pid}) is up at {self.url}\n"
            sys.stdout.write(line)
            sys.stdout.flush()
        self._listening.set()  # EOF: it exited (start() sees that through poll)

    def wait_listening(self, timeout_s: float) -> bool:
        return self._listening.wait(timeout_s) and self.url is not None and self.alive

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("worker %s did not stop in %.0f s: killed", self.spec.name, STOP_TIMEOUT_S)
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        if proc.returncode == -signal.SIGTERM:  # stopped while still starting, before its handler
            return 0
        return proc.returncode or 0


def supervise(argv: Sequence[str], specs: Sequence[WorkerSpec]) -> int:
    """Run the workers until SIGTERM/SIGINT; 0 when every worker stopped cleanly."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    workers = [_Worker(spec, argv) for spec in specs]
    try:
        for worker in workers:  # the origin first: edges find it through the directory
            worker.start()
            if not worker.wait_listening(START_TIMEOUT_S):
                code = worker.proc.poll() if worker.proc is not None else None
                log.error("worker %s did not start (exit code %s)", worker.spec.name, code)
                return 1
            pinned = f" on CPU {worker.spec.cpu}" if worker.spec.cpu is not None else ""
            log.info("worker %s (%s%s) at %s", worker.spec.name, worker.spec.role, pinned, worker.url)
        origin = workers[0]
        print(f"LiveCart listening on {origin.url} (origin; {len(workers) - 1} edge workers)", flush=True)
        while not stop.wait(0.5):
            for worker in workers:
                if worker.alive or stop.is_set():
                    continue
                code = worker.proc.returncode if worker.proc is not None else None
                if time.monotonic() - worker.started_at < RESTART_BACKOFF_S:
                    continue
                log.warning("worker %s exited with code %s: starting it again", worker.spec.name, code)
                worker.start()
        log.info("stopping %d workers", len(workers))
        codes = [worker.stop() for worker in reversed(workers)]  # edges first, the origin last
        return 0 if all(code == 0 for code in codes) else 1
    finally:
        for worker in workers:
            if worker.alive:
                worker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
