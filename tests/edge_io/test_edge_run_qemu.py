"""``edge-run --port <pty>`` streams from the QEMU firmware: the whole edge on a live device.

Mandatory under CI=true. Runs the real CLI (default embedded model) against the emulated
STM32F405 and checks the JSON-lines output: the device's hello, link statistics with no
CRC errors, level events and at least one breath cycle, none of it marked SIMULATED.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edge_io_support import REPO_ROOT, load_by_path, require_tool


def test_edge_run_streams_from_qemu_firmware() -> None:
    qemu_binary = require_tool("qemu-system-arm")
    qemu = load_by_path("_edge_run_qemu", REPO_ROOT / "tests" / "firmware" / "qemu.py")
    if not qemu.QEMU_ELF.is_file():
        require_tool("arm-none-eabi-gcc")
        qemu.build_qemu_image()
    edge_run = Path(sys.executable).with_name("edge-run")
    with qemu.boot_qemu(qemu.QEMU_ELF, qemu=qemu_binary) as pty:
        result = subprocess.run([str(edge_run), "--port", pty, "--no-dashboard",
                                 "--duration", "12"], capture_output=True, text=True,
                                timeout=120)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    hello = [e for e in events if e["type"] == "hello"]
    assert hello and hello[0]["device"]["nominal_rate_hz"] == 8000.0
    assert not any(e.get("simulated") for e in events)
    links = [e for e in events if e["type"] == "link"]
    assert links[-1]["frames"] > 100 and links[-1]["crc_errors"] == 0
    assert links[-1]["gaps"] == 0
    assert any(e["type"] == "level" for e in events)
    assert any(e["type"] == "cycle" for e in events), [e["type"] for e in events]
