"""The real terminal path: `steth-console --replay` in tmux at 80x24, read via capture-pane.

The edge-run version of this test (needs the lead's CLI) is pending_test_dashboard_tmux.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tmux_screen import TmuxScreen, crackle_rows, watch_until_stale

from tests.conftest import REPO_ROOT, require_tool

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "events" / "simulated.jsonl"


def test_replayed_simulated_stream_in_tmux_80x24():
    tmux = require_tool("tmux")
    screen = TmuxScreen(tmux, [sys.executable, "-m", "steth.host.remote", "--replay", str(FIXTURE),
                               "--speed", "3"], cwd=REPO_ROOT, env={"TERM": "xterm-256color"})
    try:
        lines, _ = screen.wait_for(lambda s: "dBFS" in "".join(s), timeout=15)
        assert "SIMULATED" in lines[0]
        assert len(lines) >= 24 and all(len(line) <= 80 for line in lines)
        lines, last_live, stale_at = watch_until_stale(screen, timeout=30)
        print(f"NO SIGNAL shown {stale_at - last_live:.2f} s after the last live level")
        assert stale_at - last_live <= 2.0, "\n".join(lines)
        assert crackle_rows(lines) == 4, "\n".join(lines)
        assert any("CRC errors 3" in line for line in lines), "\n".join(lines)
        assert "SIMULATED" in lines[0] and "Last finding is OLD" in lines[1]
        assert any("Decision aid: reports auscultation findings" in line for line in lines)
        screen.send("q")  # quits, and the terminal is handed back (the pane shows the shell)
        screen.wait_for(lambda s: not any("SIMULATED" in line for line in s), timeout=5)
    finally:
        screen.close()
