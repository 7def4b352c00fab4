"""The transport interface every byte source implements, plus shared helpers.

A transport moves raw bytes only; framing and decoding live in ``edge/protocol.py`` and
``edge/decode.py`` so that every source (serial, BLE, replay, sound card, simulation) runs
through the very same decoder.
"""

from __future__ import annotations

import abc
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MessageSink = Callable[[str], None]


class SourceError(Exception):
    """A user-facing, one-line problem with the chosen input source.

    The CLI prints ``str(error)`` and exits non-zero; the message always says what to do.
    """


def print_to_stderr(message: str) -> None:
    """Default sink for transport messages: one line on stderr."""
    print(f"edge-run: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class TransportStatus:
    """Connection health as the transport sees it (the decoder sees the bytes).

    Attributes
    ----------
    connected : bool
        True while the underlying link is open.
    last_error : str or None
        The latest one-line error, or None once the link is healthy again.
    reconnects : int
        Successful re-opens after a lost link (the first open does not count).
    disconnects : int
        Times an open link was lost (unplug, EIO, BLE disconnect).
    dropped_bytes : int
        Bytes the transport itself knows it lost (e.g. a full queue), not counting the
        losses only the decoder can see.
    """

    connected: bool
    last_error: str | None = None
    reconnects: int = 0
    disconnects: int = 0
    dropped_bytes: int = 0


class Transport(abc.ABC):
    """A bidirectional byte link to one stethoscope (or a marked simulation of one).

    Attributes
    ----------
    name : str
        Human-readable source description, e.g. ``"serial /dev/ttyUSB0"``.
    simulated : bool
        True only for the simulated patient; everything fed by it must say SIMULATED.
    """

    name: str = "transport"
    simulated: bool = False

    @abc.abstractmethod
    def read(self, timeout: float) -> bytes:
        """Return the bytes that arrived, waiting at most ``timeout`` s; ``b""`` on timeout."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Send bytes to the device (commands); silently dropped while disconnected."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the link and any helper thread; idempotent."""

    def status(self) -> TransportStatus:
        """Connection health; sources that cannot lose their link are always connected."""
        return TransportStatus(connected=True)

    @property
    def ended(self) -> bool:
        """True once a finite source (a replayed file) has delivered its last byte."""
        return False

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Backoff:
    """Exponential retry delay: ``initial``, doubling, capped at ``maximum``.

    Parameters
    ----------
    initial : float
        First delay in seconds.
    maximum : float
        Ceiling of the delay in seconds.
    clock : callable
        Monotonic clock, injectable for tests.
    """

    def __init__(
        self,
        initial: float = 0.25,
        maximum: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self._clock = clock
        self._delay = initial
        self._next_attempt = 0.0

    def ready(self) -> bool:
        """True when the next attempt is due."""
        return self._clock() >= self._next_attempt

    def seconds_until_ready(self) -> float:
        """Time left before the next attempt is due (0 when due)."""
        return max(0.0, self._next_attempt - self._clock())

    def failed(self) -> float:
        """Record a failed attempt; return the delay until the next one."""
        delay = self._delay
        self._next_attempt = self._clock() + delay
        self._delay = min(self.maximum, self._delay * 2)
        return delay

    def succeeded(self) -> None:
        """Reset the delay after a successful attempt."""
        self._delay = self.initial
        self._next_attempt = 0.0


class ByteQueue:
    """A thread-safe byte FIFO with a bounded size, fed by callbacks, drained by ``read``.

    Sources that push bytes from another thread (BLE notifications, sound-card callbacks,
    emulator threads) share this so ``read(timeout)`` behaves the same everywhere.

    Parameters
    ----------
    limit : int
        Maximum buffered bytes; beyond it the oldest bytes are discarded and counted, because
        a stalled consumer must not grow memory without bound on the Pi.
    """

    def __init__(self, limit: int = 4 * 1024 * 1024) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._cond = threading.Condition()
        self.dropped_bytes = 0

    def put(self, data: bytes) -> None:
        """Append bytes, discarding the oldest ones past the limit."""
        with self._cond:
            self._buffer += data
            overflow = len(self._buffer) - self._limit
            if overflow > 0:
                del self._buffer[:overflow]
                self.dropped_bytes += overflow
            self._cond.notify_all()

    def get(self, timeout: float) -> bytes:
        """Return everything buffered, waiting up to ``timeout`` s for something to arrive."""
        with self._cond:
            if not self._buffer and timeout > 0:
                self._cond.wait(timeout)
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
