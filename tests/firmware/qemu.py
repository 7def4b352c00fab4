"""Boot the firmware's QEMU image with its USART2 on a pty (reusable by other test areas).

Usage::

    # in tests/firmware: plain import; elsewhere load this file with importlib
    from qemu import boot_qemu, build_qemu_image

    with boot_qemu(build_qemu_image()) as pty:
        ...  # open `pty` (pyserial, or edge-run --port <pty>); the device is running

QEMU starts paused (``-S``); this module opens the pty first and only then resumes the
CPU, so not a byte of the boot output is lost. It keeps its own descriptor open for the
whole session and never reads it, so QEMU always sees a connected terminal while another
reader consumes the stream. Device time is deterministic: ``-icount shift=6,sleep=off``
makes every guest instruction take 64 ns of virtual time (15.6 MIPS, about ten times what
the firmware needs) whatever the host load, and a full terminal simply stalls the guest.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO / "firmware"
QEMU_ELF = FIRMWARE_DIR / "build" / "qemu" / "firmware.elf"
ICOUNT = "shift=6,align=off,sleep=off"
_PTY_LINE = re.compile(rb"char device redirected to (/dev/pts/\d+) \(label serial1\)")


class QemuError(RuntimeError):
    """QEMU did not start or did not offer a pty."""


def build_qemu_image(make: str = "make", variant: str = "qemu") -> Path:
    """Build the QEMU images (incremental) and return one: ``qemu`` (wired, PCM16),
    ``qemu-ble`` (ADPCM paced at 6000 B/s) or ``qemu-ble-3000`` (paced at 3000 B/s)."""
    subprocess.run(
        [make, "-C", str(FIRMWARE_DIR), "qemu"], check=True, capture_output=True, text=True
    )
    return FIRMWARE_DIR / "build" / variant / "firmware.elf"


def qemu_command(elf: Path, qemu: str = "qemu-system-arm") -> list[str]:
    """Command line: netduinoplus2, USART1 discarded, USART2 on a pty, monitor on stdio."""
    return [
        qemu, "-M", "netduinoplus2", "-display", "none", "-icount", ICOUNT,
        "-serial", "null", "-serial", "pty", "-monitor", "stdio", "-S",
        "-kernel", str(elf),
    ]  # fmt: skip


def _wait_for_pty(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
            match = _PTY_LINE.search(seen)
            if match:
                return match.group(1).decode()
    raise QemuError(f"QEMU offered no pty within {timeout} s; output: {seen!r}")


def _monitor(proc: subprocess.Popen[bytes], command: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(command.encode() + b"\n")
    proc.stdin.flush()


@contextmanager
def boot_qemu(
    elf: Path = QEMU_ELF, *, qemu: str | None = None, timeout: float = 20.0
) -> Iterator[str]:
    """Boot ``elf`` paused, open its serial pty raw, resume, and yield the pty path.

    Parameters
    ----------
    elf
        Firmware image for the netduinoplus2 machine.
    qemu
        Path of ``qemu-system-arm`` (default: from PATH).
    timeout
        Seconds to wait for QEMU to announce its pty.

    Yields
    ------
    str
        The pty device path, e.g. ``/dev/pts/3``; the guest is running.
    """
    binary = qemu or shutil.which("qemu-system-arm")
    if binary is None:
        raise QemuError("qemu-system-arm not found: apt-get install qemu-system-arm")
    proc = subprocess.Popen(
        qemu_command(elf, binary),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    holder = -1
    try:
        pty = _wait_for_pty(proc, timeout)
        holder = os.open(pty, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(holder)  # no echo, no newline translation: the stream is binary
        _monitor(proc, "cont")
        yield pty
    finally:
        if holder >= 0:
            os.close(holder)
        if proc.poll() is None:
            try:
                _monitor(proc, "quit")
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stdin is not None:
            proc.stdin.close()
