"""Wired link: a UART-to-USB serial port that survives unplug/replug.

A missing or unusable port is reported as one line naming the fix and retried with
exponential backoff. This transport never substitutes simulated data for a missing device.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable
from typing import Any

import serial

from steth.edge.transports.base import (
    Backoff,
    MessageSink,
    SourceError,
    Transport,
    TransportStatus,
    print_to_stderr,
)

DEFAULT_BAUD = 921600

SerialFactory = Callable[..., Any]


def describe_open_error(port: str, error: BaseException) -> str:
    """One line saying why ``port`` could not be opened and what to do about it.

    Parameters
    ----------
    port : str
        The device path the user asked for.
    error : BaseException
        What pyserial (or the OS) raised.

    Returns
    -------
    str
        A single line without a trailing newline.
    """
    code = getattr(error, "errno", None)
    if code == errno.ENOENT:
        return (
            f"serial port {port} not found: plug in the stethoscope or pass the right "
            "--port (e.g. /dev/ttyUSB0); retrying"
        )
    if code in (errno.EACCES, errno.EPERM):
        return (
            f"permission denied on {port}: add your user to the dialout group "
            "(sudo usermod -aG dialout $USER, then log out and in); retrying"
        )
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
        return f"serial port {port} is in use by another program: close it; retrying"
    if code == errno.ENOTTY:
        return f"{port} is not a serial device: pass the stethoscope's port to --port; retrying"
    detail = " ".join(str(error).split()) or type(error).__name__
    return f"cannot open serial port {port} ({detail}); retrying"


def check_serial_device(port: str) -> None:
    """Refuse a path that exists but is not a terminal device (a file, /dev/null, a folder).

    Retrying helps a port that is missing, busy or not yet permitted, and those are left to
    :class:`SerialTransport`, which reports and retries them; no retry turns a file into a
    serial port, so that is an error at start.

    Raises
    ------
    SourceError
        One line naming the path and what to pass instead.
    """
    try:
        mode = os.stat(port).st_mode
    except OSError:
        return
    if stat.S_ISCHR(mode):
        try:
            # Non-blocking and without becoming the controlling terminal: only asks "tty?".
            fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            if os.isatty(fd):
                return
        finally:
            os.close(fd)
    raise SourceError(
        f"{port} is not a serial device: pass the stethoscope's port to --port "
        "(e.g. /dev/ttyUSB0 or /dev/stethoscope)"
    )


class SerialTransport(Transport):
    """A serial port that reconnects with backoff after it disappears.

    Parameters
    ----------
    port : str
        Device path, e.g. ``/dev/ttyUSB0`` or a pseudo-terminal.
    baudrate : int
        Line rate; the firmware's USART2 runs at 921600 8N1.
    on_message : callable
        Receives one-line, user-facing state changes (errors, reconnects). Each distinct
        message is delivered once, not on every retry.
    backoff : Backoff, optional
        Retry schedule; defaults to 0.25 s doubling up to 4 s.
    serial_factory : callable
        ``serial.Serial``-compatible constructor, injectable for tests.
    """

    def __init__(
        self,
        port: str,
        baudrate: int = DEFAULT_BAUD,
        *,
        on_message: MessageSink = print_to_stderr,
        backoff: Backoff | None = None,
        serial_factory: SerialFactory = serial.Serial,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.name = f"serial {port}"
        self._on_message = on_message
        self._backoff = backoff or Backoff()
        self._factory = serial_factory
        self._serial: Any = None
        self._ever_connected = False
        self._last_error: str | None = None
        self._reconnects = 0
        self._disconnects = 0
        self._closed = False

    def read(self, timeout: float) -> bytes:
        """Return available bytes within ``timeout`` s, reconnecting as needed."""
        if self._closed:
            return b""
        if self._serial is None and not self._try_open():
            time.sleep(min(timeout, self._backoff.seconds_until_ready()))
            return b""
        try:
            return self._read_open_port(timeout)
        except (serial.SerialException, OSError) as error:
            self._lost_link(error)
            return b""

    def connect(self) -> bool:
        """Try to open the port now (instead of on the first read); True when open.

        Opening flushes the OS input buffer, so a host-side writer (replay) must only
        start after this.
        """
        if self._serial is None and not self._closed:
            self._try_open()
        return self._serial is not None

    def write(self, data: bytes) -> None:
        """Send bytes; dropped while disconnected (the link state says so)."""
        if self._serial is None:
            return
        try:
            self._serial.write(data)
        except (serial.SerialException, OSError) as error:
            self._lost_link(error)

    def close(self) -> None:
        """Close the port and stop reconnecting."""
        self._closed = True
        self._drop_port()

    def status(self) -> TransportStatus:
        """Connection state, last error and reconnect counters."""
        return TransportStatus(
            connected=self._serial is not None,
            last_error=self._last_error,
            reconnects=self._reconnects,
            disconnects=self._disconnects,
        )

    def _read_open_port(self, timeout: float) -> bytes:
        port = self._serial
        wanted = max(0.0, timeout)
        if port.timeout != wanted:  # pyserial reconfigures the tty on every change
            port.timeout = wanted
        # Wait for the first byte, then take whatever else is already buffered, so latency
        # stays at one byte time instead of waiting for a full block.
        first = port.read(1)
        if not first:
            return b""
        waiting = port.in_waiting
        return first + (port.read(waiting) if waiting else b"")

    def _try_open(self) -> bool:
        if not self._backoff.ready():
            return False
        try:
            self._serial = self._factory(
                self.port, baudrate=self.baudrate, timeout=0, exclusive=True
            )
        except (serial.SerialException, OSError, ValueError) as error:
            self._report(describe_open_error(self.port, error))
            self._backoff.failed()
            return False
        self._backoff.succeeded()
        if self._ever_connected:
            self._reconnects += 1
            self._report_recovery(f"reconnected to serial port {self.port}")
        self._ever_connected = True
        self._last_error = None
        return True

    def _lost_link(self, error: BaseException) -> None:
        self._drop_port()
        self._disconnects += 1
        detail = " ".join(str(error).split()) or type(error).__name__
        self._report(f"lost serial link on {self.port} ({detail}): check the cable; reconnecting")
        self._backoff.failed()

    def _drop_port(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            # The device may already be gone; there is nothing left to release then.
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()

    def _report(self, message: str) -> None:
        if message != self._last_error:
            self._on_message(message)
        self._last_error = message

    def _report_recovery(self, message: str) -> None:
        self._on_message(message)
