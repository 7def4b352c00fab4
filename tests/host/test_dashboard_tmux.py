"""The real `edge-run --simulate` dashboard in tmux at 80x24.

The screen is read like a clinician would: the injected crackles appear as Crackle rows
(the committed model hears the SIMULATED patient's crackles), the CRC counter equals the
errors injected, the SIMULATED banner shows, NO SIGNAL appears within 2 s of the simulated
device going silent, and q quits cleanly. The same screen reading runs against
``steth-console --replay`` in test_dashboard_replay_tmux.py.

Contract used here::

    edge-run --simulate --sim-crackles 0.5 --sim-crc-errors 3 --sim-seed 1 --speed 1 \
             --sim-duration 25
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from tmux_screen import EXITED, TmuxScreen, crackle_rows, watch_until_stale

from tests.conftest import REPO_ROOT, require, require_tool

SIM_SECONDS = 25
CRC_ERRORS = 3


def edge_run_command() -> list[str]:
    venv_script = Path(sys.executable).with_name("edge-run")
    script = str(venv_script) if venv_script.exists() else shutil.which("edge-run")
    require(script is not None, "edge-run is not installed (pip install -e .)")
    assert script is not None
    return [script, "--simulate", "--sim-crackles", "0.5", "--sim-crc-errors", str(CRC_ERRORS),
            "--sim-seed", "1", "--speed", "1", "--sim-duration", str(SIM_SECONDS)]


def test_edge_run_simulate_dashboard_in_tmux():
    tmux = require_tool("tmux")
    screen = TmuxScreen(tmux, edge_run_command(), cwd=REPO_ROOT,
                        env={"TERM": "xterm-256color"})
    try:
        lines, _ = screen.wait_for(lambda s: "dBFS" in "".join(s), timeout=60)
        assert "SIMULATED" in lines[0], "\n".join(lines)
        assert all(len(line) <= 80 for line in lines)
        # the injected crackles show up while the stream is live (a cycle closes on later audio)
        live, _ = screen.wait_for(lambda s: crackle_rows(s) >= 1, timeout=SIM_SECONDS + 30)
        assert not any("NO SIGNAL" in line for line in live[:2]), "\n".join(live)
        print("live screen (80x24):\n" + "\n".join(live))
        lines, last_live, stale_at = watch_until_stale(screen, timeout=SIM_SECONDS + 60)
        print(f"NO SIGNAL shown {stale_at - last_live:.2f} s after the last live level")
        screen_text = "\n".join(lines)
        assert stale_at - last_live <= 2.0, screen_text
        assert "SIMULATED" in lines[0], screen_text
        assert crackle_rows(lines) >= 1, screen_text
        crc = re.search(r"CRC errors (\d+)", screen_text)
        assert crc is not None and int(crc.group(1)) == CRC_ERRORS, screen_text
        assert "Last finding is OLD" in lines[1], screen_text
        print("stale screen (80x24):\n" + screen_text)
        screen.send("q")
        # the dashboard's alternate screen is gone and edge-run exited with status 0
        screen.wait_for(lambda s: any(f"{EXITED}0" in line for line in s), timeout=10)
    finally:
        screen.close()
