"""What the dashboard shows is what happened: per-site findings, poor cycles as poor, the
battery, a sample rate off nominal, a failing port and a fatal protocol error on screen."""

from __future__ import annotations

from steth.edge import events as ev
from steth.host.dashboard import DashboardState, plain_line, render_text

T0 = 1_800_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def hello() -> dict:
    return ev.make_hello(device_id="D1", firmware="1.2.0", nominal_rate_hz=8000, adc_bits=12,
                         model_name="m", model_version="1", model_hash="sha256:ab",
                         calibrated=True, transport="serial:/dev/ttyUSB0", simulated=False,
                         t=T0)


def cycle(n: int, finding: str = "Normal", quality: str = "ok",
          reason: str | None = None) -> dict:
    start = n * 24000
    return ev.make_cycle(cycle_id=n, start=start, end=start + 24000, rate_hz=8000,
                         wall_start=T0 + 3 * n, finding=finding, p_crackle=0.1, p_wheeze=0.8,
                         quality=quality, quality_reason=reason, breath_rate_bpm=20.0,
                         t=T0 + 3 * n + 3)


def link(measured: float | None = 8000.0, battery: float | None = None) -> dict:
    return ev.make_link(bytes_=1000, frames=50, frames_per_s=50, crc_errors=0, gaps=0,
                        resyncs=0, nominal_rate_hz=8000, measured_rate_hz=measured,
                        battery_pct=battery, t=T0 + 1)


def fed(*events: dict) -> DashboardState:
    state = DashboardState(clock=FakeClock())
    for event in events:
        state.feed(event)
    return state


def rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if ":" in line[:12] and "dur" not in line]


def test_poor_cycle_is_shown_as_poor_with_no_finding():
    state = fed(hello(), cycle(1, "Wheeze", "poor", "noise"))
    table = [line for line in render_text(state).splitlines() if "poor" in line and "3.0" in line]
    assert table, render_text(state)
    assert "Wheeze" not in table[0] and "Normal" not in table[0]
    line = plain_line(state, cycle(1, "Wheeze", "poor", "noise"))
    assert line is not None and "finding=Wheeze" not in line and "poor" in line


def test_help_screen_says_how_poor_differs_from_unfamiliar():
    state = fed(hello())
    state.show_help = True
    text = render_text(state)
    assert "poor" in text and "unfamiliar" in text
    assert "less reliable" in text and "no finding" in text


def test_new_site_event_starts_the_table_and_verdict_over():
    wheezy = [cycle(n, "Wheeze") for n in range(3)]
    verdict = ev.make_verdict(verdict="CAS", cycles=3, good_cycles=3,
                              counts={"Wheeze": 3}, t=T0 + 12)
    site = ev.make_status(level="info", message="new auscultation site", code="new_site",
                          t=T0 + 13)
    state = fed(hello(), *wheezy, verdict, site, cycle(5))
    text = render_text(state)
    assert "CAS" not in text and "Wheeze 0" in text and "Normal 1" in text, text


def test_counts_without_a_verdict_event_come_from_the_edge_tally():
    state = fed(hello(), cycle(1, "Crackle"), cycle(2, "Normal", "poor", "noise"))
    assert state.counts() == {"Normal": 0, "Crackle": 1, "Wheeze": 0, "Both": 0, "poor": 1}
    assert state.tally.verdict().label == "Poor Quality"  # half of the cycles are poor


def test_battery_from_the_link_event_is_shown():
    text = render_text(fed(hello(), link(battery=76)))
    assert "battery 76%" in text


def test_a_sample_rate_far_from_nominal_is_a_warning_on_screen():
    warning = ev.make_status(level="warning", code="sample_rate", t=T0 + 2,
                             message="measured sample rate 15012 Hz is +88 % off the nominal "
                                     "8000 Hz")
    state = fed(hello(), link(measured=15012.3), warning)
    state.clock.now += 60  # long after a transient warning would have gone
    text = render_text(state)
    assert "+88 %" in text, text


def test_a_failing_port_is_shown_instead_of_waiting_for_device():
    problem = ev.make_status(level="warning", code="source_error", t=T0,
                             message="serial port /dev/ttyUSB0 not found: plug in the "
                                     "stethoscope or pass --port; retrying")
    state = fed(problem)
    state.clock.now += 60
    text = render_text(state)
    assert "not found" in text and "waiting for device" not in text, text


def test_a_protocol_error_stays_on_screen():
    error = ev.make_status(level="error", code="protocol_version", t=T0 + 5,
                           message="device speaks wire protocol 2.0, this software speaks "
                                   "1.x: update the edge software or reflash the firmware")
    state = fed(hello(), error)
    state.end_of_stream()
    state.clock.now += 600
    text = render_text(state)
    assert "wire protocol 2.0" in text, text


def test_question_mark_opens_and_closes_the_help_screen():
    import io
    import threading

    from rich.console import Console

    from steth.host.dashboard import Dashboard, DashboardActions

    dash = Dashboard(console=Console(file=io.StringIO()), clock=FakeClock())
    dash.handle_key("?", DashboardActions(), threading.Event())
    assert dash.state.show_help
    dash.handle_key("?", DashboardActions(), threading.Event())
    assert not dash.state.show_help


def test_a_protocol_error_queued_as_the_edge_stops_is_left_on_the_terminal():
    import io
    import queue
    import re
    import threading

    from rich.console import Console

    from steth.host.dashboard import Dashboard

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, height=24)
    events: queue.Queue = queue.Queue()
    events.put(hello())
    events.put(ev.make_status(level="error", code="protocol_version",
                              message="device speaks wire protocol 2.0, this software "
                                      "speaks 1.x: update the edge software"))
    stop = threading.Event()
    stop.set()  # the edge stopped at once: the dashboard closes before drawing the event
    Dashboard(console=console, keys=io.StringIO()).run(events, stop)
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    # printed after the last screen, so it stays on the terminal once the dashboard is gone
    assert drawn.rfind("edge-run: device speaks wire protocol 2.0") > drawn.rfind("? help")
