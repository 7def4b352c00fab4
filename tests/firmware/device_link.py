"""Host side of the QEMU tests: read the firmware's stream through the Python codec, and
the model of what the QEMU port samples."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from steth.edge import protocol as p


def qemu_source(start: int, count: int, gain: int) -> np.ndarray:
    """The samples the QEMU port produces: ADC ramp (+7 per read from 0) through the
    digital PGA model ``2048 + (ramp - 2048) * gain / 32`` (C truncating division)."""
    index = np.arange(start, start + count, dtype=np.int64)
    ramp = (7 * (index + 1)) % 4096
    code = 2048 + np.trunc((ramp - 2048) * gain / 32).astype(np.int64)
    return ((code - 2048) * 16).astype(np.int16)


@dataclass
class DeviceLink:
    """Reads the pty through the codec and keeps every parser event."""

    fd: int
    parser: p.FrameParser = field(default_factory=p.FrameParser)
    events: list[p.ParserEvent] = field(default_factory=list)
    bytes_read: int = 0
    host_seq: int = 0

    @property
    def frames(self) -> list[p.Frame]:
        return [e for e in self.events if isinstance(e, p.Frame)]

    def read_until(self, done: Callable[[p.Frame], bool], timeout: float = 60.0,
                   after: p.Frame | None = None) -> p.Frame:
        """Read until a frame satisfies ``done``; returns that frame.

        Frames already received are not looked at, except those after ``after``: a reply
        that arrived in the same read as the frame before it is then not missed.
        """
        checked = len(self.frames)
        if after is not None:
            checked = next(i for i, f in enumerate(self.frames) if f is after) + 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.frames[checked:]:
                if done(frame):
                    return frame
            checked = len(self.frames)
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                data = os.read(self.fd, 65536)
                self.bytes_read += len(data)
                self.events += self.parser.feed(data)
        last = self.frames[-1] if self.frames else None
        raise AssertionError(
            f"device did not answer within {timeout} s: {self.bytes_read} bytes read, "
            f"{len(self.frames)} frames, last {last!r:.200}, parser pending "
            f"{self.parser.pending}, other events "
            f"{[e for e in self.events if not isinstance(e, p.Frame)]!r:.300}"
        )

    def command(self, command: p.Command) -> tuple[p.Frame, p.Ack]:
        """Send a command and wait for its ACK."""
        seq = self.host_seq
        self.host_seq += 1
        os.write(self.fd, p.encode_message(command, seq=seq))
        frame = self.read_until(
            lambda f: f.msg_type == p.MsgType.ACK and f.message().command_seq == seq
        )
        ack = frame.message()
        assert isinstance(ack, p.Ack) and ack.opcode == command.opcode
        assert ack.cookie == command.cookie
        return frame, ack

    def status_after(self, sample_index: int) -> p.Frame:
        """Wait for the first STATUS at or after ``sample_index``."""
        return self.read_until(
            lambda f: f.msg_type == p.MsgType.STATUS and f.sample_index >= sample_index
        )
