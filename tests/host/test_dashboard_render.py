"""The dashboard drawn from the event fixtures at 80x24, with an injected clock."""

from __future__ import annotations

import io
import queue
import re
import threading
from pathlib import Path

from rich.console import Console

from steth.edge import events as ev
from steth.edge.event_schema import iter_jsonl
from steth.host.dashboard import (
    INTENDED_USE,
    Dashboard,
    DashboardActions,
    DashboardState,
    RecordingStatus,
    render_text,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def replay(name: str, clock: FakeClock, state: DashboardState | None = None,
           upto: int | None = None) -> DashboardState:
    """Feed a fixture with the clock following each event's own timestamp."""
    state = state or DashboardState(clock=clock)
    messages = list(iter_jsonl(FIXTURES / name))[:upto]
    t0 = messages[0]["t"]
    base = clock.now
    for message in messages:
        clock.now = base + message["t"] - t0
        state.feed(message)
    return state


def screen(state: DashboardState) -> str:
    text = render_text(state, 80, 24)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == 24, text
    assert all(len(line) <= 80 for line in lines), text
    return text


def table_rows(text: str, finding: str) -> list[str]:
    return [line for line in text.splitlines()
            if re.match(rf"^\s*\d\d:\d\d:\d\d\s+\d+\.\d\s+{finding}\b", line)]


def test_normal_session_fits_80x24_with_findings_and_summary():
    clock = FakeClock()
    text = screen(replay("normal.jsonl", clock))
    assert "SIMULATED" not in text
    assert "NO SIGNAL" not in text
    assert len(table_rows(text, "Crackle")) == 2
    assert len(table_rows(text, "Both")) == 1
    assert "Record verdict: CAS & DAS (7 cycles)" in text
    assert "Findings: Normal 3  Crackle 2  Wheeze 1  Both 1  poor 0" in text
    assert "Model crnn-int8 0.3.1" in text and "uncalibrated" not in text
    assert "CRC errors 0" in text and "serial:/dev/ttyUSB0" in text
    assert INTENDED_USE in " ".join(line.strip() for line in text.splitlines())
    assert "████ 0.88" in text  # calibrated: likelihood bars with values
    assert "elapsed 00:25" in text and "marks 1" in text


def test_newest_cycle_is_first_row():
    clock = FakeClock()
    text = screen(replay("normal.jsonl", clock))
    findings = [line.split()[2] for line in text.splitlines()
                if re.match(r"^\s*\d\d:\d\d:\d\d\s", line)]
    assert findings == ["Both", "Wheeze", "Crackle", "Normal", "Crackle", "Normal", "Normal"]


def test_simulated_session_shows_banner_crc_and_coarse_levels():
    clock = FakeClock()
    text = screen(replay("simulated.jsonl", clock))
    assert "SIMULATED" in text.splitlines()[0]
    assert "CRC errors 3" in text
    assert len(table_rows(text, "Crackle")) == 4
    assert "uncalibrated" in text
    crackle_row = table_rows(text, "Crackle")[0]
    assert "high" in crackle_row and not re.search(r"0\.\d\d", crackle_row)


def test_no_signal_banner_appears_within_two_seconds_of_silence():
    clock = FakeClock()
    state = replay("simulated.jsonl", clock)
    clock.now += 0.5
    assert "NO SIGNAL" not in screen(state)
    clock.now += 1.5  # 2.0 s after the last event
    text = screen(state)
    assert "NO SIGNAL 2 s (stale)" in text.splitlines()[0]
    assert "Last finding is OLD" in text and "not current" in text
    assert "no signal" in text  # level panel no longer shows a live meter


def test_repeated_level_for_old_audio_does_not_keep_the_signal_alive():
    # The edge keeps emitting level events until its own 2 s stale timeout; they repeat
    # the last sample index, and must not hold off the dashboard's 1.5 s NO SIGNAL.
    clock = FakeClock()
    state = DashboardState(clock=clock)
    live = ev.make_level(index=8000, dbfs=-40.0, envelope=[0.5], phase="inspiration", t=1.0)
    state.feed(live)
    for step in range(1, 8):  # 7 x 0.25 s of repeats of the same audio
        clock.now += 0.25
        state.feed(dict(live, t=1.0 + 0.25 * step))
    assert state.silent_for() == 1.75 and "NO SIGNAL" in screen(state).splitlines()[0]
    state.feed(ev.make_level(index=8160, dbfs=-40.0, envelope=[0.5], phase="pause", t=3.0))
    assert state.silent_for() == 0.0 and "NO SIGNAL" not in screen(state)


def test_edge_stale_event_and_recovery_drive_the_banner():
    clock = FakeClock()
    messages = list(iter_jsonl(FIXTURES / "gaps_stale.jsonl"))
    stale_at = next(i for i, m in enumerate(messages) if m["type"] == "stale")
    state = DashboardState(clock=clock, no_signal_after_s=60.0)  # only the edge event counts
    replay("gaps_stale.jsonl", clock, state, upto=stale_at)
    assert "NO SIGNAL" not in screen(state)
    state.feed(messages[stale_at])
    assert "NO SIGNAL" in screen(state)
    recovered = replay("gaps_stale.jsonl", FakeClock())
    text = screen(recovered)
    assert "NO SIGNAL" not in text and "gaps 1" in text
    assert "poor cont" in text  # poor-quality cycle shows its reason


def test_recording_status_and_recorder_warning_are_shown():
    clock = FakeClock()
    state = replay("normal.jsonl", clock)
    state.recording = RecordingStatus(recording=True, site="p2",
                                      warning="disk full: recording stopped, data kept")
    text = screen(state)
    assert "● REC p2" in text.splitlines()[0]
    assert "disk full: recording stopped, data kept" in text.splitlines()[1]


def test_keys_call_actions_and_q_stops():
    calls: list[str] = []
    recording = [False]

    def toggle() -> bool:
        recording[0] = not recording[0]
        calls.append("toggle")
        return recording[0]

    actions = DashboardActions(toggle_recording=toggle, mark=lambda: calls.append("mark") or "#1",
                               next_site=lambda: "p3", quit=lambda: calls.append("quit"))
    dash = Dashboard(console=Console(file=io.StringIO()), clock=FakeClock())
    stop = threading.Event()
    dash.handle_key("r", actions, stop)
    assert dash.state.recording.recording and dash.state.notice == "recording started"
    dash.handle_key("m", actions, stop)
    assert dash.state.notice == "mark set #1"
    dash.handle_key("n", actions, stop)
    assert dash.state.notice == "next site: p3"
    assert not stop.is_set()
    dash.handle_key("q", actions, stop)
    assert stop.is_set() and calls == ["toggle", "mark", "quit"]


def test_missing_or_failing_action_is_reported_not_raised():
    dash = Dashboard(console=Console(file=io.StringIO()), clock=FakeClock())

    def broken() -> bool:
        raise OSError("no space left on device")

    dash.handle_key("r", DashboardActions(toggle_recording=broken), threading.Event())
    assert "no space left" in (dash.state.warning or "")
    dash.handle_key("n", DashboardActions(), threading.Event())
    assert dash.state.notice == "sites not available in this console"


def _run_with_fixture(console: Console, name: str, actions: DashboardActions | None = None
                      ) -> None:
    events: queue.Queue = queue.Queue()
    for message in iter_jsonl(FIXTURES / name):
        events.put(message)
    events.put(None)
    stop = threading.Event()
    dash = Dashboard(console=console, refresh_per_second=20, keys=io.StringIO())
    thread = threading.Thread(target=dash.run, args=(events, stop, actions))
    thread.start()
    for _ in range(100):  # live mode stays up after the stream ends, until stop or q
        if not thread.is_alive() or (dash.state.ended and events.empty()):
            break
        thread.join(timeout=0.05)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_plain_log_lines_when_stdout_is_not_a_terminal():
    out = io.StringIO()
    _run_with_fixture(Console(file=out, force_terminal=False), "simulated.jsonl")
    lines = out.getvalue().splitlines()
    assert lines, "no output"
    assert all("SIMULATED" in line for line in lines)
    assert sum("finding=Crackle" in line for line in lines) == 4
    assert any("link CRC errors 3" in line for line in lines)
    assert any("NO SIGNAL" in line for line in lines)  # the stream ended
    assert not any("\x1b[" in line for line in lines)


def test_live_mode_draws_the_layout_on_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, height=24,
                      color_system="truecolor")
    _run_with_fixture(console, "normal.jsonl",
                      DashboardActions(recording_status=lambda: RecordingStatus(True, "Tc")))
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert "Record verdict" in drawn and "● REC Tc" in drawn and "CAS & DAS" in drawn
