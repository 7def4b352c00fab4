"""Test doubles shared by the edge I/O tests: a device on a real pseudo-terminal, stream
builders and a decode loop."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import select
import threading
import time
import tty
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

import numpy as np

from steth.edge.decode import AudioChunk, DecodedItem, Gap, LinkStats, StreamDecoder
from steth.edge.transport import Transport
from steth.edge.transports.framing import PcmStreamFramer, host_device_info

RATE = 8000
REPO_ROOT = Path(__file__).resolve().parents[2]


def load_by_path(name: str, path: Path) -> ModuleType:
    """Import a helper file of another test folder (several folders own a conftest.py, so
    plain imports would be ambiguous)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_tool(name: str) -> str:
    """tests/conftest.py's require_tool: skip locally, fail under CI=true."""
    root = load_by_path("_edge_io_root_conftest", REPO_ROOT / "tests" / "conftest.py")
    return str(root.require_tool(name))


def ramp_audio(count: int, start: int = 0) -> np.ndarray:
    """Samples whose value encodes their own index, so misplaced audio is detectable."""
    return (((np.arange(start, start + count) * 7) % 65536) - 32768).astype(np.int16)


def device_framer(sample_rate: int = RATE, device_id: int = 0x1234) -> PcmStreamFramer:
    """A framer announcing a plain (non-simulated) test device."""
    return PcmStreamFramer(host_device_info(device_id, sample_rate))


def audio_of(items: Iterable[DecodedItem]) -> list[AudioChunk]:
    return [item for item in items if isinstance(item, AudioChunk)]


def gaps_of(items: Iterable[DecodedItem]) -> list[Gap]:
    return [item for item in items if isinstance(item, Gap)]


def assert_accounted(stats: LinkStats) -> None:
    """The byte accounting invariant of edge/decode.py."""
    assert stats.bytes == (
        stats.decoded_bytes + stats.dropped_bytes + stats.skipped_bytes + stats.pending_bytes
    ), stats


def assert_timeline_consistent(items: Iterable[DecodedItem]) -> None:
    """Chunks and gaps tile the stream index without overlap or unexplained holes."""
    position: int | None = None
    for item in items:
        if isinstance(item, Gap):
            assert position is None or item.expected_index == position
            assert item.received_index - item.expected_index == item.lost_samples >= 0
            position = item.received_index
        elif isinstance(item, AudioChunk):
            assert position is None or item.start_index == position, (item.start_index, position)
            position = item.end_index


def pump_until(
    transport: Transport,
    decoder: StreamDecoder,
    done: Callable[[list[DecodedItem]], bool],
    timeout: float = 5.0,
) -> list[DecodedItem]:
    """Read and decode until ``done(items)`` or ``timeout``; return the items."""
    items: list[DecodedItem] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = transport.read(0.02)
        if data:
            items += decoder.feed(data, time.monotonic())
        if done(items):
            return items
    raise AssertionError(f"condition not met within {timeout} s; stats {decoder.stats()}")


class PtyDevice:
    """The device side of a real pseudo-terminal, behind a stable symlink.

    ``unplug`` closes the pty (the host sees EIO, as when a USB adapter disappears) and
    removes the link; ``plug`` makes a new pty and points the link at it, as udev would.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / "ttySTETH"
        self._master = -1
        self._slave = -1
        self._lock = threading.Lock()
        self.plug()

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        with self._lock:
            self._master, self._slave = master, slave
        temporary = self.path.with_suffix(".new")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        temporary.symlink_to(os.ttyname(slave))
        temporary.replace(self.path)

    def unplug(self) -> None:
        with self._lock:
            fds, self._master, self._slave = (self._master, self._slave), -1, -1
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def write(self, data: bytes, timeout: float = 5.0) -> None:
        """Write everything (the host must be reading for large amounts)."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            if time.monotonic() > deadline:
                raise AssertionError("host did not drain the pty")
            with self._lock:
                master = self._master
            if master < 0:
                return  # Unplugged: the bytes go nowhere, like on a real cable.
            _, writable, _ = select.select([], [master], [], 0.05)
            if writable:
                view = view[os.write(master, view[:4096]) :]

    def read_host(self, timeout: float = 1.0) -> bytes:
        """Bytes the host wrote to the device (commands)."""
        with self._lock:
            master = self._master
        readable, _, _ = select.select([master], [], [], timeout)
        return os.read(master, 4096) if readable else b""

    def close(self) -> None:
        self.unplug()


class BackgroundWriter:
    """Writes a list of byte chunks to a PtyDevice from a thread (optionally paced)."""

    def __init__(self, device: PtyDevice, chunks: list[bytes], pause_s: float = 0.0) -> None:
        self._device = device
        self._chunks = chunks
        self._pause = pause_s
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for chunk in self._chunks:
            self._device.write(chunk)
            if self._pause:
                time.sleep(self._pause)

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "writer did not finish"
