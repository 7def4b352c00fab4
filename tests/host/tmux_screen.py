"""Drive a program in a detached 80x24 tmux session and read its screen (test helper)."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

EXITED = "[program exited] status "


class TmuxScreen:
    """A private tmux server (own socket) running one command at 80x24."""

    def __init__(self, tmux: str, command: Sequence[str], cwd: Path, width: int = 80,
                 height: int = 24, env: dict[str, str] | None = None) -> None:
        self.tmux = tmux
        self.socket = f"steth-test-{os.getpid()}-{time.monotonic_ns()}"
        shell = " ".join(shlex.quote(part) for part in command)
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        # keep the pane after the program exits so its last screen can still be read
        self._run("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
                  "-c", str(cwd), f"env {exports} {shell}; echo '{EXITED}'$?; sleep 600")

    def _run(self, *args: str) -> str:
        return subprocess.run([self.tmux, "-L", self.socket, *args], capture_output=True,
                              text=True, check=True, timeout=10).stdout

    def capture(self) -> list[str]:
        return self._run("capture-pane", "-p", "-t", "t").split("\n")

    def send(self, keys: str) -> None:
        self._run("send-keys", "-t", "t", keys)

    def wait_for(self, condition: Callable[[list[str]], bool], timeout: float,
                 poll_s: float = 0.1) -> tuple[list[str], float]:
        """Poll the screen until ``condition`` holds; returns (screen, monotonic time)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if condition(screen):
                return screen, time.monotonic()
            if any(EXITED in line for line in screen):
                raise AssertionError("the program exited; its screen:\n" + "\n".join(screen))
            if time.monotonic() > deadline:
                raise AssertionError("screen never matched; last screen:\n" + "\n".join(screen))
            time.sleep(poll_s)

    def close(self) -> None:
        subprocess.run([self.tmux, "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=10)


def crackle_rows(screen: list[str]) -> int:
    import re

    return sum(1 for line in screen if re.match(r"^\s*\d\d:\d\d:\d\d\s+\d+\.\d\s+Crackle\b",
                                                line))


def watch_until_stale(screen: TmuxScreen, timeout: float) -> tuple[list[str], float, float]:
    """Follow the live level line until NO SIGNAL shows.

    Returns (screen, when the level line last changed, when NO SIGNAL first showed): the
    last change of the level meter is the moment the screen last saw a live stream.
    """
    last_line, last_change = None, time.monotonic()
    deadline = last_change + timeout
    while time.monotonic() < deadline:
        lines = screen.capture()
        if any(EXITED in line for line in lines):
            raise AssertionError("the program exited; its screen:\n" + "\n".join(lines))
        if any("NO SIGNAL" in line for line in lines[:2]):
            return lines, last_change, time.monotonic()
        level_line = lines[3][44:] if len(lines) > 3 else ""
        if level_line != last_line:
            last_line, last_change = level_line, time.monotonic()
        time.sleep(0.05)
    raise AssertionError("NO SIGNAL never appeared")
