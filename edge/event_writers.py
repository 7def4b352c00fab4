"""Writers of the event stream: JSON lines to stdout or to a private file, and a fan-out.

:func:`dumps` is the one serialisation of an event (compact, UTF-8, no NaN); every writer,
the TCP server of :mod:`edge.event_server` included, sends exactly those lines. A writer
checks each event against :mod:`edge.event_schema` before writing it when asked to.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from steth.edge.event_schema import check


def dumps(event: Mapping[str, Any]) -> str:
    """One compact JSON line (no newline)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class EventWriter(Protocol):
    """Anything that accepts events: stdout, a file, the TCP server, the dashboard queue."""

    def write(self, event: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class StreamWriter:
    """Write events as JSON lines to a text stream (stdout by default), flushing each line.

    When the reader closes the stream (``edge-run | head -1``) the writer stops writing and
    calls ``on_closed`` (set by the caller) once; the caller decides whether the run goes on.
    """

    label = "stdout"

    def __init__(self, stream: IO[str] | None = None, validate_events: bool = False) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._validate = validate_events
        self._lock = threading.Lock()
        self.on_closed: Callable[[], None] | None = None
        self.closed_by_reader = False

    def write(self, event: Mapping[str, Any]) -> None:
        if self._validate:
            check(dict(event))
        line = dumps(event) + "\n"
        with self._lock:
            if self.closed_by_reader:
                return
            try:
                self._stream.write(line)
                self._stream.flush()
                return
            except BrokenPipeError:
                self._reader_left()
        if self.on_closed is not None:
            self.on_closed()  # outside the lock: it may write a notice to the other sinks

    def _reader_left(self) -> None:
        self.closed_by_reader = True
        with contextlib.suppress(OSError, ValueError):
            # The interpreter flushes stdout at exit; with nobody reading, that flush would
            # print a BrokenPipeError of its own, so the descriptor now points at /dev/null.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def close(self) -> None:
        with self._lock:
            if not self.closed_by_reader:
                with contextlib.suppress(BrokenPipeError):
                    self._stream.flush()


class FileWriter:
    """Append events to a JSON-lines file created 0600 (parent folders 0700)."""

    label = "events file"

    def __init__(self, path: str | Path, validate_events: bool = False) -> None:
        self.path = Path(path)
        make_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        self._handle = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        self._validate = validate_events
        self._lock = threading.Lock()

    def write(self, event: Mapping[str, Any]) -> None:
        if self._validate:
            check(dict(event))
        with self._lock:
            self._handle.write(dumps(event) + "\n")

    def close(self) -> None:
        with self._lock:
            if not self._handle.closed:
                self._handle.flush()
                os.fsync(self._handle.fileno())
                self._handle.close()


class MultiWriter:
    """Fan one event out to several writers, one event at a time.

    The pipeline's worker thread and the I/O thread both emit; the lock keeps every writer
    seeing the events in the same order. It is re-entrant because a writer (the recorder)
    may emit a warning while it handles an event.
    """

    def __init__(self, writers: Iterable[EventWriter] = ()) -> None:
        self.writers = list(writers)
        self._lock = threading.RLock()

    def add(self, writer: EventWriter) -> None:
        with self._lock:
            self.writers.append(writer)

    def write(self, event: Mapping[str, Any]) -> None:
        with self._lock:
            for writer in self.writers:
                writer.write(event)

    def close(self) -> None:
        with self._lock:
            writers, self.writers = self.writers, []
        for writer in writers:
            writer.close()


def make_private_dir(path: str | Path) -> Path:
    """Create ``path`` and its missing parents with mode 0700.

    Folders that already exist are left alone (the user may point at a shared parent).
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    return path
