"""Replay a WAV/FLAC recording as if a stethoscope were plugged in.

The file is framed in the real wire protocol by a writer thread and pushed through a
pseudo-terminal pair; the reading side is an ordinary :class:`SerialTransport` on the pty,
so a replay exercises exactly the serial path a real device uses.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import threading
import time
import tty
from pathlib import Path

import numpy as np
import soundfile
from scipy import signal

from steth.edge.features import float_to_pcm16
from steth.edge.protocol import NOMINAL_SAMPLE_RATE_HZ
from steth.edge.transports.base import (
    MessageSink,
    SourceError,
    Transport,
    TransportStatus,
    print_to_stderr,
)
from steth.edge.transports.framing import CommandResponder, PcmStreamFramer, host_device_info
from steth.edge.transports.serial_link import SerialTransport

REPLAY_DEVICE_ID = int.from_bytes(b"RPLY", "little")
WRITE_CHUNK_S = 0.02  # 20 ms of audio per pty write: smooth pacing, few syscalls


def load_replay_audio(path: str | Path, sample_rate: int = NOMINAL_SAMPLE_RATE_HZ) -> np.ndarray:
    """Read a WAV/FLAC file as mono int16 at ``sample_rate`` (the device's nominal rate).

    Parameters
    ----------
    path : str or Path
        Audio file.
    sample_rate : int
        Rate the stethoscope would deliver; other rates are resampled (polyphase).

    Returns
    -------
    numpy.ndarray
        int16 samples.

    Raises
    ------
    SourceError
        Missing, unreadable or empty file.
    """
    file = Path(path)
    if file.is_dir():
        raise SourceError(f"replay file {file} is a folder: pass one WAV or FLAC file in it")
    if not file.is_file():
        raise SourceError(f"replay file {file} not found: pass an existing WAV or FLAC file")
    try:
        audio, file_rate = soundfile.read(file, dtype="float64", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise SourceError(
            f"cannot read {file} as audio ({detail}): pass a WAV or FLAC file"
        ) from error
    if audio.size == 0:
        raise SourceError(f"replay file {file} holds no audio: pass a non-empty recording")
    mono = audio.mean(axis=1)
    if file_rate != sample_rate:
        divisor = math.gcd(int(file_rate), sample_rate)
        mono = signal.resample_poly(mono, sample_rate // divisor, int(file_rate) // divisor)
    return float_to_pcm16(mono)


class ReplayTransport(Transport):
    """A recording streamed through a pty as protocol bytes, at real time or faster.

    Parameters
    ----------
    path : str or Path
        WAV or FLAC file.
    speed : float
        1 = real time, 10 = ten times faster, ``math.inf`` = as fast as the pty takes it.
    on_message : callable
        One-line state messages (passed to the serial side).
    """

    def __init__(
        self, path: str | Path, speed: float = 1.0, *, on_message: MessageSink = print_to_stderr
    ) -> None:
        if not speed > 0:
            raise SourceError("--speed must be greater than 0")
        self.path = Path(path)
        self.speed = speed
        self.name = f"replay {self.path.name}"
        self.audio = load_replay_audio(self.path)
        self._master, slave = os.openpty()
        # Raw mode before any byte flows, so the line discipline never rewrites the stream.
        tty.setraw(slave)
        self._slave = slave
        self.pty_path = os.ttyname(slave)
        info = host_device_info(REPLAY_DEVICE_ID, NOMINAL_SAMPLE_RATE_HZ)
        self._framer = PcmStreamFramer(info)
        self._responder = CommandResponder(self._framer)
        self._stop = threading.Event()
        self._writer_done = threading.Event()
        self._ended = False
        self._writer = threading.Thread(target=self._write_file, name="replay-writer", daemon=True)
        self._serial = SerialTransport(self.pty_path, on_message=on_message)
        # Open before the first byte is written: opening flushes pending input.
        if not self._serial.connect():
            self.close()
            raise SourceError(f"cannot open the replay pseudo-terminal {self.pty_path}")
        self._writer.start()

    def read(self, timeout: float) -> bytes:
        """Bytes from the pty (what a device on a serial port would have sent)."""
        data = self._serial.read(timeout)
        if not data and self._writer_done.is_set():
            self._ended = True
        return data

    def write(self, data: bytes) -> None:
        """Commands to the replayed 'device' (answered by the writer thread)."""
        self._serial.write(data)

    def close(self) -> None:
        """Stop the writer thread and release both pty ends."""
        self._stop.set()
        if self._writer.is_alive():
            self._writer.join(timeout=5.0)
        self._serial.close()
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = -1

    def status(self) -> TransportStatus:
        """The serial side's state."""
        return self._serial.status()

    @property
    def ended(self) -> bool:
        """True once the whole file was sent and read."""
        return self._ended

    def _write_file(self) -> None:
        try:
            self._send(self._framer.start())
            chunk = max(1, int(WRITE_CHUNK_S * NOMINAL_SAMPLE_RATE_HZ))
            started = time.monotonic()
            for offset in range(0, self.audio.size, chunk):
                if self._stop.is_set():
                    return
                self._wait_until(started + offset / (NOMINAL_SAMPLE_RATE_HZ * self.speed))
                block = self.audio[offset : offset + chunk]
                if self._responder.streaming:
                    frames = self._framer.audio(block)
                else:  # Stopped: the device clock runs on, only Status is sent.
                    frames = self._framer.idle(block.size)
                for frame in frames:
                    self._send(frame)
            for frame in self._framer.flush():
                self._send(frame)
        except OSError:
            return  # The pty was closed under us: the transport is shutting down.
        finally:
            self._writer_done.set()

    def _wait_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` while answering any host commands that arrive."""
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if math.isinf(self.speed):
                remaining = 0.0
            readable, _, _ = select.select([self._master], [], [], max(0.0, remaining))
            if readable:
                self._send(self._responder.feed(os.read(self._master, 4096)))
            if remaining <= 0:
                return

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._stop.is_set():
            _, writable, _ = select.select([], [self._master], [], 0.1)
            if writable:
                view = view[os.write(self._master, view) :]
