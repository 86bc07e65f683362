"""The server's recordings on disk: where each lives, reading their indexes, deleting, retention.

Layout: ``<root>/<stream>/<recording id>/index.jsonl`` beside one directory per track
(``480p/``, ``audio/``) of init segments and segment files (``recording.py`` says what the
index holds). Every method here does file I/O and runs in a worker thread: the HTTP handlers
call the ``a``-prefixed wrappers (``asyncio.to_thread``), the recorders call ``sweep`` from
their own writing thread. Parsed indexes are cached by file size (an index only grows); one
that grows is parsed again at most every ``REPARSE_S``, however many players ask.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from pathlib import Path

from relay.config import RecordingConfig
from relay.errors import MediaNotFound
from relay.hls.recording import INDEX, Recording, Stored, expired, parse_index

log = logging.getLogger(__name__)

RECORDING_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$")
CACHED = 64  # parsed indexes kept
REPARSE_S = 0.5  # a growing index is parsed at most this often (its playlists live for 1 s anyway)


class RecordingLibrary:
    """Owns the recordings directory: ids, paths, the parse cache, deletion and retention.

    ``active`` holds the (stream, id) of recordings being written now (recorders add and
    remove theirs); retention never touches those, and their playlists are not final."""

    def __init__(self, root: Path, config: RecordingConfig) -> None:
        self.root = root
        self.config = config
        self.active: set[tuple[str, str]] = set()
        self._cache: OrderedDict[Path, tuple[int, float, Recording]] = OrderedDict()  # size, parsed at
        self._lock = threading.Lock()  # the cache, from the HTTP handlers' threads and the recorders'

    def new_id(self, now: float) -> str:
        """A recording's id: its UTC start (so names sort by time) and 16 random bits."""
        return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + secrets.token_hex(2)

    def path(self, stream: str, recording_id: str) -> Path:
        if not RECORDING_ID.match(recording_id):
            raise MediaNotFound(f"no recording {recording_id[:40]!r} of stream {stream!r}")
        return self.root / stream / recording_id

    def is_active(self, stream: str, recording_id: str) -> bool:
        return (stream, recording_id) in self.active

    # ---- in a worker thread ---------------------------------------------------------------------
    def load(self, stream: str, recording_id: str) -> Recording:
        """The recording's index, parsed; MediaNotFound if there is none (or it holds no header)."""
        index = self.path(stream, recording_id) / INDEX
        try:
            size = index.stat().st_size
            now = time.monotonic()
            with self._lock:
                cached = self._cache.get(index)
                fresh = (stream, recording_id) in self.active and now - cached[1] < REPARSE_S if cached else False
                if cached is not None and (cached[0] == size or fresh):
                    self._cache.move_to_end(index)
                    return cached[2]
            data = index.read_bytes()[:size]
        except (FileNotFoundError, NotADirectoryError):
            raise MediaNotFound(f"no recording {recording_id!r} of stream {stream!r}") from None
        recording = parse_index(data.decode(errors="replace").splitlines())
        if recording is None or recording.stream != stream or recording.id != recording_id:
            raise MediaNotFound(f"recording {recording_id!r} of stream {stream!r} has no readable index")
        with self._lock:
            self._cache[index] = (size, now, recording)
            while len(self._cache) > CACHED:
                self._cache.popitem(last=False)
        return recording

    def recordings(self, stream: str) -> list[Recording]:
        """Every readable recording of ``stream``, oldest first."""
        folder = self.root / stream
        if not folder.is_dir():
            return []
        out = []
        for entry in sorted(folder.iterdir()):
            if entry.is_dir() and RECORDING_ID.match(entry.name):
                try:
                    out.append(self.load(stream, entry.name))
                except MediaNotFound:
                    continue  # a directory whose header never reached the disk
        return out

    def media_file(self, stream: str, recording_id: str, track: str, name: str) -> Path:
        """The path of one init segment or segment file; MediaNotFound if it is not there."""
        path = self.path(stream, recording_id) / track / name
        if not path.is_file():
            raise MediaNotFound(f"recording {recording_id} has no {track}/{name}")
        return path

    def delete(self, stream: str, recording_id: str) -> None:
        folder = self.path(stream, recording_id)
        if not (folder / INDEX).exists():
            raise MediaNotFound(f"no recording {recording_id!r} of stream {stream!r}")
        shutil.rmtree(folder, ignore_errors=True)
        with self._lock:
            self._cache.pop(folder / INDEX, None)

    def sweep(self, now: float) -> list[str]:
        """Apply retention (``max_age_days``, ``max_total_gb``) to every stream's finished recordings."""
        if not self.root.is_dir():
            return []
        stored: list[Stored] = []
        for stream_dir in self.root.iterdir():
            if not stream_dir.is_dir():
                continue
            for folder in stream_dir.iterdir():
                if not RECORDING_ID.match(folder.name) or (stream_dir.name, folder.name) in self.active:
                    continue
                files = [f for f in folder.rglob("*") if f.is_file()]
                size = sum(f.stat().st_size for f in files)
                last = max((f.stat().st_mtime for f in files), default=0.0)
                stored.append(Stored(f"{stream_dir.name}/{folder.name}", last, size))
        doomed = expired(
            stored,
            now=now,
            max_age_s=self.config.max_age_days * 86400,
            max_bytes=int(self.config.max_total_gb * 1e9),
        )
        for key in doomed:
            log.info("recording %s deleted by retention", key)
            shutil.rmtree(self.root / key, ignore_errors=True)
        return doomed

    # ---- from the event loop --------------------------------------------------------------------
    async def aload(self, stream: str, recording_id: str) -> Recording:
        return await asyncio.to_thread(self.load, stream, recording_id)

    async def arecordings(self, stream: str) -> list[Recording]:
        return await asyncio.to_thread(self.recordings, stream)

    async def amedia_file(self, stream: str, recording_id: str, track: str, name: str) -> Path:
        return await asyncio.to_thread(self.media_file, stream, recording_id, track, name)

    async def adelete(self, stream: str, recording_id: str) -> None:
        await asyncio.to_thread(self.delete, stream, recording_id)
