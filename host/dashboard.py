"""Live bedside dashboard: the event stream rendered for a clinician at a glance.

One ``rich`` ``Live`` layout that fits 80x24 (usable over SSH), refreshed a few times a
second; plain log lines instead when stdout is not a terminal. The state model
(:class:`DashboardState`) is separate from drawing (:func:`render`) so both are testable
with an injected clock.

The CLI calls::

    Dashboard().run(events, stop, actions)

where ``events`` is a ``queue.Queue`` of event dicts (``None`` = the stream ended), ``stop``
a ``threading.Event`` and ``actions`` a :class:`DashboardActions` with the key callbacks.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

from rich import box
from rich.console import Console, Group
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from steth.edge.findings import STALE_AFTER_S, RecordTally

_Result = TypeVar("_Result")  # what a key's action returns, and its describer takes

INTENDED_USE = ("Decision aid: reports auscultation findings to support a clinician; "
                "not a diagnosis.")
# The local timer runs ahead of the edge's stale event, so NO SIGNAL is on screen within
# STALE_AFTER_S of the last audio even when the event or a refresh comes late.
NO_SIGNAL_AFTER_S = STALE_AFTER_S - 0.5
FINDING_STYLES = {"Normal": "green", "Crackle": "bold yellow", "Wheeze": "bold magenta",
                  "Both": "bold red"}
SPARK = " ▁▂▃▄▅▆▇█"
# Each key is advertised only when its callback is there (r and m need a recorder).
KEY_LABELS = (("quit", "q quit"), ("toggle_recording", "r rec start/stop"),
              ("mark", "m mark"), ("next_site", "n next site"))
# Status codes the edge sends (edge.runner, edge.pipeline) that change what is shown.
NEW_SITE, SAMPLE_RATE = "new_site", "sample_rate"
SOURCE_ERROR, SOURCE, PROTOCOL_VERSION = "source_error", "source", "protocol_version"
HELP_LINES = (
    "Help (press ? again to close)",
    "poor        unusable audio (clipping, no contact, noise): no finding is shown",
    "            and the cycle is left out of the verdict (mostly poor: Poor Quality)",
    "unfamiliar  (ok ≠train) signal unlike the model's training data (another device,",
    "            room or body): findings kept and counted, but less reliable",
    "settling    the front end is still adapting (start, gap, new site): no finding",
    "breaths/min 60 / median length of the good cycles among the last 6 (3 needed)",
    "OLD         no new audio: the last finding is not current",
    "n           next site: the table, counts and verdict start over for that site",
)


@dataclass
class RecordingStatus:
    """What the recorder tells the dashboard on every refresh."""

    recording: bool = False
    site: str | None = None
    path: str | None = None
    warning: str | None = None  # e.g. "disk full: recording stopped, data kept"


@dataclass
class DashboardActions:
    """Callbacks behind the keys; any may be None (the key then says "not available").

    Attributes
    ----------
    toggle_recording : () -> bool
        Start or stop recording; returns True when recording afterwards.
    mark : () -> str | None
        Set a mark at the current sample; returns a short description to show.
    next_site : () -> str | None
        Move to the next auscultation site; returns its name.
    quit : () -> None
        Called once when the operator presses q (the dashboard also sets ``stop``).
    recording_status : () -> RecordingStatus
        Polled on every refresh (shows REC, the site and recorder warnings).
    """

    toggle_recording: Callable[[], bool] | None = None
    mark: Callable[[], str | None] | None = None
    next_site: Callable[[], str | None] | None = None
    quit: Callable[[], None] | None = None
    recording_status: Callable[[], RecordingStatus] | None = None


def keys_help(actions: DashboardActions) -> str:
    """The footer's key list: q and ? always, r, m and n only when they do something."""
    keys = [label for name, label in KEY_LABELS
            if name == "quit" or getattr(actions, name) is not None]
    return "  ".join([*keys, "? help"])


@dataclass
class DashboardState:
    """Everything the screen shows, fed event by event; time comes from ``clock``."""

    clock: Callable[[], float] = time.monotonic
    no_signal_after_s: float = NO_SIGNAL_AFTER_S
    max_cycles: int = 200
    hello: dict[str, Any] | None = None
    link: dict[str, Any] | None = None
    level: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None
    cycles: deque[dict[str, Any]] = field(default_factory=deque)
    tally: RecordTally = field(default_factory=RecordTally)  # this site's cycles
    show_help: bool = False
    fatal: str | None = None  # an error the stream ended with; stays until a new hello
    source_problem: str | None = None  # the source's retry message, until signal returns
    rate_warning: str | None = None  # the sample rate is off, until the edge says it is back
    simulated: bool = False
    edge_stale: bool = False
    ended: bool = False
    marks: int = 0
    gaps_seen: int = 0
    notice: str | None = None
    warning: str | None = None
    warning_at: float | None = None
    warning_hold_s: float = 30.0
    recording: RecordingStatus = field(default_factory=RecordingStatus)
    keys_help: str = "q quit  ? help"  # set from the actions the dashboard runs with
    started_at: float | None = None
    last_signal_at: float | None = None
    last_event_at: float | None = None
    last_event_t: float | None = None

    def feed(self, event: Mapping[str, Any]) -> None:
        """Update the state with one validated event."""
        now = self.clock()
        if self.started_at is None:
            self.started_at = now
        self.last_event_at = now
        self.last_event_t = event.get("t", self.last_event_t)
        if event.get("simulated"):
            self.simulated = True
        handler = getattr(self, f"_on_{event.get('type')}", None)
        if handler is not None:
            handler(event)

    def end_of_stream(self) -> None:
        self.ended = True

    def _on_hello(self, event: Mapping[str, Any]) -> None:
        self.hello = dict(event)
        self.fatal = self.source_problem = None
        self.simulated = self.simulated or bool(event.get("simulated"))

    def _on_link(self, event: Mapping[str, Any]) -> None:
        self.link = dict(event)

    def _on_level(self, event: Mapping[str, Any]) -> None:
        previous = self.level
        self.level = dict(event)
        # The edge keeps sending level events on its schedule until its own 2 s stale
        # timeout; only a level for newer audio (a larger sample index) is a live signal.
        if previous is None or event.get("index") != previous.get("index"):
            self._signal()

    def _on_audio(self, event: Mapping[str, Any]) -> None:
        self._signal()

    def _on_cycle(self, event: Mapping[str, Any]) -> None:
        self.cycles.appendleft(dict(event))
        while len(self.cycles) > self.max_cycles:
            self.cycles.pop()
        self.tally.add_event(event)
        self._signal()

    def _on_verdict(self, event: Mapping[str, Any]) -> None:
        self.verdict = dict(event)

    def _on_gap(self, event: Mapping[str, Any]) -> None:
        self.gaps_seen += 1

    def _on_stale(self, event: Mapping[str, Any]) -> None:
        self.edge_stale = event.get("state") == "stale"

    def _on_mark(self, event: Mapping[str, Any]) -> None:
        self.marks += 1

    def _on_status(self, event: Mapping[str, Any]) -> None:
        code, message = event.get("code"), str(event.get("message"))
        if code == NEW_SITE:
            self._new_site()
        elif code == SOURCE_ERROR:
            self.source_problem = message
        elif code == SOURCE:
            self.source_problem = None
        elif code == SAMPLE_RATE:
            self.rate_warning = message if event.get("level") != "info" else None
        if event.get("level") == "error" or code == PROTOCOL_VERSION:
            self.fatal = message
        if event.get("level") in ("warning", "error"):
            self.warning = str(event.get("message"))
            self.warning_at = self.clock()
        else:
            self.notice = str(event.get("message"))

    def _new_site(self) -> None:
        """The edge started the record over: this screen shows the new site's cycles only."""
        self.cycles.clear()
        self.verdict = None
        self.tally.reset()

    def _signal(self) -> None:
        self.source_problem = None
        self.last_signal_at = self.clock()
        self.edge_stale = False
        self.ended = False

    # ------------------------------------------------------------------ derived values

    def silent_for(self) -> float | None:
        """Seconds since the last audio-bearing event (None before any)."""
        reference = self.last_signal_at if self.last_signal_at is not None else self.started_at
        return None if reference is None else max(0.0, self.clock() - reference)

    def no_signal(self) -> bool:
        """True when the screen must say NO SIGNAL (local timer, edge stale, or stream end)."""
        silent = self.silent_for()
        return (self.edge_stale or self.ended
                or (silent is not None and silent >= self.no_signal_after_s))

    def current_warning(self) -> str | None:
        """The recorder's warning, the error the stream ended with, else an edge warning
        younger than ``warning_hold_s``."""
        if self.recording.warning:
            return self.recording.warning
        if self.fatal:
            return self.fatal
        if self.warning and self.warning_at is not None and \
                self.clock() - self.warning_at < self.warning_hold_s:
            return self.warning
        return None

    def calibrated(self) -> bool:
        return bool(self.hello and self.hello["model"].get("calibrated"))

    def elapsed_s(self) -> float:
        """Session time: event clock since hello, plus local time since the last event."""
        if self.hello is None or self.last_event_t is None or self.last_event_at is None:
            return 0.0
        return max(0.0, self.last_event_t - self.hello["t"]
                   + self.clock() - self.last_event_at)

    def counts(self) -> dict[str, int]:
        """The edge's counts for this site, else the edge tally of the cycles seen here."""
        if self.verdict is not None:
            return dict(self.verdict["counts"])
        return dict(self.tally.counts)

    def unfamiliar(self) -> bool:
        """The newest cycle's signal guard says the signal is unlike the training data."""
        return bool(self.cycles) and self.cycles[0]["quality"].get("unfamiliar") is True


# ----------------------------------------------------------------------------- drawing

UNFAMILIAR_NOTICE = "signal unlike the training data — findings less reliable"


def shown_finding(cycle: Mapping[str, Any]) -> str:
    """What a cycle's finding reads as: "poor" for a poor cycle, which has none."""
    return "poor" if cycle["quality"]["status"] == "poor" else str(cycle["finding"])


def _fmt_clock(unix_s: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(unix_s))


def _fmt_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def likelihood_cell(p: float, calibrated: bool, width: int = 4) -> Text:
    """A bar with the value when the model is calibrated, else a coarse level word."""
    if not calibrated:
        word, style = (("high", "bold") if p >= 0.7 else ("med", "") if p >= 0.4
                       else ("low", "dim"))
        return Text(word, style=style)
    filled = round(p * width)
    return Text("█" * filled + "░" * (width - filled) + f" {p:.2f}")


def sparkline(values: list[float], width: int) -> str:
    """Resample ``values`` (0-1) to ``width`` block characters."""
    if not values or width <= 0:
        return ""
    picked = [values[min(len(values) - 1, i * len(values) // width)] for i in range(width)]
    return "".join(SPARK[min(len(SPARK) - 1, round(v * (len(SPARK) - 1)))] for v in picked)


def level_meter(dbfs: float, width: int, floor_db: float = -60.0) -> Text:
    fraction = min(1.0, max(0.0, (dbfs - floor_db) / -floor_db))
    filled = round(fraction * width)
    style = "red" if dbfs > -3 else "yellow" if dbfs > -12 else "green"
    return Text("█" * filled, style=style) + Text("░" * (width - filled), style="dim")


def header(state: DashboardState) -> Group:
    line = Text(" steth ", style="bold white on blue")
    if state.simulated:
        line += Text(" ")
        line += Text(" SIMULATED ", style="bold black on yellow")
    if state.no_signal():
        silent = state.silent_for() or 0.0
        why = "STREAM ENDED" if state.ended else "NO SIGNAL"
        line += Text(" ")
        line += Text(f" {why} {silent:.0f} s (stale) ", style="bold white on red")
    rec = state.recording
    line += Text(" ")
    if rec.recording:
        line += Text(f"● REC {rec.site or ''}".rstrip(), style="bold red")
    else:
        line += Text(f"○ not recording {rec.site or ''}".rstrip(), style="dim")
    second = Text()
    warning = state.current_warning()
    if warning:
        second += Text(f"⚠ {warning}", style="bold red")
    elif state.no_signal() and state.cycles:
        age = max(0.0, (state.last_event_t or 0) - state.cycles[0]["t"]) + (
            state.clock() - (state.last_event_at or state.clock()))
        second += Text(f"Last finding is OLD ({age:.0f} s ago): "
                       f"{shown_finding(state.cycles[0])} – not current", style="bold yellow")
    elif state.rate_warning:
        second += Text(f"⚠ {state.rate_warning}", style="bold red")
    elif state.unfamiliar():
        second += Text(UNFAMILIAR_NOTICE, style="bold yellow")
    elif state.notice:
        second += Text(state.notice, style="cyan")
    return _lines(line, second)


def link_panel(state: DashboardState) -> Panel:
    hello, link = state.hello, state.link
    lines = []
    if state.source_problem:
        lines.append(Text(state.source_problem, style="bold red"))
    elif hello:
        device = hello["device"]
        lines.append(Text(f"{hello['transport']}  {device['id']}"))
    else:
        lines.append(Text("waiting for device…", style="dim"))
    if link:
        measured = link["measured_rate_hz"]
        firmware = hello["device"]["firmware"] if hello else "?"
        nominal = "--" if link["nominal_rate_hz"] is None else f"{link['nominal_rate_hz']:.0f}"
        lines.append(Text(f"fw {firmware}  {nominal} Hz (measured "
                          f"{'--' if measured is None else f'{measured:.1f}'})",
                          style="bold red" if state.rate_warning else ""))
        crc_style = "bold red" if link["crc_errors"] else ""
        lines.append(Text(f"frames/s {link['frames_per_s']:.0f}  ") + Text(
            f"CRC errors {link['crc_errors']}", style=crc_style) + Text(f"  gaps {link['gaps']}"))
        battery = "--" if link["battery_pct"] is None else f"{link['battery_pct']:.0f}%"
        clip_style = "bold red" if link["clipping"] > 0.001 else ""
        lines.append(Text(f"resyncs {link['resyncs']}  ") + Text(
            f"clipping {100 * link['clipping']:.1f}%", style=clip_style)
            + Text(f"  battery {battery}"))
    return Panel(_lines(*lines), title="link", title_align="left", box=box.ROUNDED,
                 padding=(0, 1))


def signal_panel(state: DashboardState, width: int) -> Panel:
    level = state.level
    inner = max(10, width - 4)
    if level is None or state.no_signal():
        body: list[Text] = [Text("no signal", style="bold red")]
        if level is not None:
            body.append(Text(f"last level {level['dbfs']:.0f} dBFS (old)", style="dim"))
    else:
        label = f"{level['dbfs']:6.1f} dBFS "
        body = [Text(label) + level_meter(level["dbfs"], inner - len(label)),
                Text(sparkline(level["envelope"], inner), style="cyan")]
        rate = level.get("breath_rate_bpm")
        if rate is None and state.cycles:
            rate = state.cycles[0].get("breath_rate_bpm")
        rate_text = "--" if rate is None else f"{rate:.0f}"
        body.append(Text(f"phase {level['phase']:<11} breaths/min {rate_text}"))
    return Panel(_lines(*body), title="signal", title_align="left", box=box.ROUNDED,
                 padding=(0, 1))


def cycles_table(state: DashboardState, rows: int) -> Table:
    calibrated = state.calibrated()
    old = state.no_signal()
    table = Table(box=box.SIMPLE_HEAD, expand=True, padding=(0, 1), show_edge=False,
                  title=None, header_style="bold")
    table.add_column("time", no_wrap=True, width=8)
    table.add_column("dur", no_wrap=True, justify="right", width=4)
    table.add_column("finding", no_wrap=True, width=7)
    table.add_column("crackle" if calibrated else "crackle~", no_wrap=True,
                     width=9 if calibrated else 8)
    table.add_column("wheeze" if calibrated else "wheeze~", no_wrap=True,
                     width=9 if calibrated else 8)
    table.add_column("subtype", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("quality", no_wrap=True, overflow="ellipsis", width=10)
    for cycle in list(state.cycles)[:max(0, rows)]:
        quality = cycle["quality"]
        settling = bool(quality.get("settling"))
        if settling:
            quality_text = Text("settling", style="cyan")
        elif quality["status"] == "ok":
            quality_text = Text("ok" if quality.get("unfamiliar") is not True else "ok ≠train",
                                style="green" if quality.get("unfamiliar") is not True
                                else "yellow")
        else:
            quality_text = Text(f"poor {quality.get('reason') or ''}".strip(), style="bold red")
        poor = quality["status"] == "poor"
        finding = Text("settling", style="dim cyan") if settling else Text(
            shown_finding(cycle), style="bold red" if poor
            else FINDING_STYLES.get(cycle["finding"], ""))
        # A poor cycle has no finding, so nothing that reads as one either.
        crackle, wheeze = ((Text("--", style="dim"), Text("--", style="dim")) if poor else
                           (likelihood_cell(cycle["p_crackle"], calibrated),
                            likelihood_cell(cycle["p_wheeze"], calibrated)))
        table.add_row(
            _fmt_clock(cycle["wall_start"]), f"{cycle['duration_s']:.1f}",
            finding, crackle, wheeze,
            "" if poor else cycle.get("subtype") or "", quality_text,
            style="dim" if old else None)
    if not state.cycles:
        # A caption spans the table: in the 7-wide finding column the words were cut.
        table.caption, table.caption_style = "no cycles yet", "dim"
    return table


def help_screen() -> Group:
    """What the words on the screen mean (the ? key)."""
    return _lines(*(Text(line, style="bold" if n == 0 else "") for n, line in
                    enumerate(HELP_LINES)))


def summary(state: DashboardState) -> Group:
    counts = state.counts()
    line1 = Text("Findings: ")
    for name in ("Normal", "Crackle", "Wheeze", "Both"):
        line1 += Text(f"{name} {counts.get(name, 0)}  ", style=FINDING_STYLES[name])
    line1 += Text(f"poor {counts.get('poor', 0)}")
    verdict = state.verdict
    verdict_text = "--" if verdict is None else (
        f"{verdict['verdict']} ({verdict['cycles']} cycles)")
    model = state.hello["model"] if state.hello else None
    model_text = "--" if model is None else (
        f"{model['name']} {model['version']}"
        f"{'' if model['calibrated'] else ' (uncalibrated)'}")
    rec = state.recording
    rec_text = f"REC {rec.site or ''}".strip() if rec.recording else "not recording"
    line2 = Text("Record verdict: ") + Text(verdict_text, style="bold") + Text(
        f"  elapsed {_fmt_elapsed(state.elapsed_s())}  {rec_text}  marks {state.marks}")
    line3 = Text(f"Model {model_text}", style="dim")
    return _lines(line1, line2, line3)


def footer(state: DashboardState) -> Group:
    head, _, tail = INTENDED_USE.partition("; ")
    first = Text(f"{head};", style="italic")
    second = Text(tail, style="italic") + Text("   " + state.keys_help, style="dim")
    return _lines(first, second)


def _lines(*lines: Text) -> Group:
    """Stack lines that never wrap (a wrapped line would push the layout off 24 rows)."""
    for line in lines:
        line.no_wrap, line.overflow = True, "ellipsis"
    return Group(*lines)


def render(state: DashboardState, width: int = 80, height: int = 24) -> Layout:
    """The whole screen for ``state`` at the given size (80x24 is the design size)."""
    layout = Layout()
    table_rows = max(1, height - 2 - 6 - 3 - 2 - 2)
    layout.split_column(
        Layout(header(state), name="header", size=2),
        Layout(name="top", size=6),
        Layout(help_screen() if state.show_help else cycles_table(state, table_rows),
               name="cycles", ratio=1),
        Layout(summary(state), name="summary", size=3),
        Layout(footer(state), name="footer", size=2),
    )
    left = min(44, width // 2 + 4)
    layout["top"].split_row(Layout(link_panel(state), size=left),
                            Layout(signal_panel(state, width - left), ratio=1))
    return layout


def render_text(state: DashboardState, width: int = 80, height: int = 24) -> str:
    """The screen as plain text (what an 80x24 terminal would show)."""
    console = Console(record=True, width=width, height=height, force_terminal=True,
                      color_system="truecolor", file=open(os.devnull, "w"))  # noqa: SIM115
    try:
        console.print(render(state, width, height))
        return console.export_text()
    finally:
        console.file.close()


# ----------------------------------------------------------------------------- plain log

def plain_line(state: DashboardState, event: Mapping[str, Any]) -> str | None:
    """One log line for an event when stdout is not a terminal (None = nothing to say)."""
    kind = event.get("type")
    tag = "SIMULATED " if state.simulated else ""
    stamp = _fmt_clock(event["t"]) if "t" in event else "--:--:--"
    if kind == "hello":
        model = event["model"]
        return (f"{stamp} {tag}hello transport={event['transport']} device={event['device']['id']}"
                f" fw={event['device']['firmware']} model={model['name']} {model['version']}"
                f" calibrated={str(model['calibrated']).lower()}")
    if kind == "cycle":
        return (f"{stamp} {tag}cycle {event['id']} finding={shown_finding(event)}"
                f" p_crackle={event['p_crackle']:.2f} p_wheeze={event['p_wheeze']:.2f}"
                f" dur={event['duration_s']:.1f}s quality={event['quality']['status']}"
                f" subtype={event.get('subtype') or '-'}")
    if kind == "verdict":
        return (f"{stamp} {tag}verdict {event['verdict']} over {event['cycles']} cycles"
                " (findings, not a diagnosis)")
    if kind == "gap":
        return f"{stamp} {tag}gap lost {event['lost_samples']} samples ({event['reason']})"
    if kind == "stale":
        what = "NO SIGNAL" if event["state"] == "stale" else "signal back"
        return f"{stamp} {tag}{what} after {event['silent_s']:.1f} s"
    if kind == "mark":
        label = f" {event['label']}" if event.get("label") else ""
        return f"{stamp} {tag}mark{label} at sample {event.get('index')}"
    if kind == "status":
        return f"{stamp} {tag}{event['level']}: {event['message']}"
    return None


# ----------------------------------------------------------------------------- keys

@contextlib.contextmanager
def cbreak_keys(stream: IO[str], on_key: Callable[[str], None], stop: threading.Event
                ) -> Iterator[None]:
    """Read single keys from a TTY in cbreak mode on a thread; restore the TTY on exit."""
    if not stream.isatty():
        yield
        return
    import termios
    import tty

    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    done = threading.Event()

    def loop() -> None:
        while not (done.is_set() or stop.is_set()):
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                key = os.read(fd, 1).decode("utf-8", "ignore")
                if key:
                    on_key(key)

    tty.setcbreak(fd)
    thread = threading.Thread(target=loop, name="dashboard-keys", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=1.0)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class Dashboard:
    """The live console.

    Parameters
    ----------
    console : rich Console, optional
        Where to draw; its ``is_terminal`` picks the live layout or plain log lines.
    clock : callable
        Monotonic seconds (injectable for tests).
    refresh_per_second : float
        Screen refreshes per second.
    keys : text stream, optional
        Where keys come from (stdin by default; only used when it is a TTY).
    """

    def __init__(self, console: Console | None = None, clock: Callable[[], float] = time.monotonic,
                 refresh_per_second: float = 4.0, keys: IO[str] | None = None,
                 no_signal_after_s: float = NO_SIGNAL_AFTER_S) -> None:
        self.console = console or Console()
        self.state = DashboardState(clock=clock, no_signal_after_s=no_signal_after_s)
        self.refresh_s = 1.0 / refresh_per_second
        self.keys = keys if keys is not None else sys.stdin
        self._key_queue: queue.Queue[str] = queue.Queue()

    # -------------------------------------------------------------- actions (key handling)

    def handle_key(self, key: str, actions: DashboardActions, stop: threading.Event) -> None:
        """Run the action bound to ``key`` (called on the UI thread)."""
        key = key.lower()
        if key == "q":
            if actions.quit:
                actions.quit()
            stop.set()
        elif key == "r":
            self._call(actions.toggle_recording, "recording", self._on_toggled)
        elif key == "m":
            self._call(actions.mark, "marks", lambda text: f"mark set {text or ''}".strip())
        elif key == "n":
            self._call(actions.next_site, "sites", lambda site: f"next site: {site}")
        elif key in ("?", "h"):
            self.state.show_help = not self.state.show_help

    def _on_toggled(self, recording: bool) -> str:
        self.state.recording.recording = bool(recording)
        return "recording started" if recording else "recording stopped"

    def _call(self, action: Callable[[], _Result] | None, what: str,
              describe: Callable[[_Result], str]) -> None:
        if action is None:
            self.state.notice = f"{what} not available in this console"
            return
        try:
            self.state.notice = describe(action())
        except Exception as exc:  # an action failing must not take the screen down
            self.state.warning = f"{what}: {exc}"
            self.state.warning_at = self.state.clock()

    def _poll_status(self, actions: DashboardActions) -> None:
        if actions.recording_status is not None:
            try:
                self.state.recording = actions.recording_status()
            except Exception as exc:
                self.state.warning = f"recorder: {exc}"
                self.state.warning_at = self.state.clock()

    # -------------------------------------------------------------- loop

    def _drain(self, events: queue.Queue[dict[str, Any] | None], timeout: float) -> list[dict]:
        """Take every waiting event (waiting up to ``timeout`` for the first)."""
        taken: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                item = events.get(timeout=max(0.0, remaining)) if not taken else \
                    events.get_nowait()
            except queue.Empty:
                return taken
            if item is None:
                self.state.end_of_stream()
                return taken
            self.state.feed(item)
            taken.append(item)

    def run(self, events: queue.Queue[dict[str, Any] | None], stop: threading.Event,
            actions: DashboardActions | None = None) -> None:
        """Show events until ``stop`` is set or q is pressed.

        Parameters
        ----------
        events : queue.Queue of dict
            Validated events; ``None`` marks the end of the stream (the screen then says so
            and stays up until q).
        stop : threading.Event
            Set by the caller to close the dashboard; set by the dashboard on q.
        actions : DashboardActions, optional
            Key callbacks and recorder status.
        """
        actions = actions or DashboardActions()
        self.state.keys_help = keys_help(actions)
        if not self.console.is_terminal:
            self._run_plain(events, stop, actions)
            return
        with cbreak_keys(self.keys, self._key_queue.put, stop), Live(
                render(self.state, self.console.width, self.console.height),
                console=self.console, auto_refresh=False, screen=True,
                redirect_stdout=False, redirect_stderr=False) as live:
            while not stop.is_set():
                self._drain(events, self.refresh_s)
                while not self._key_queue.empty():
                    self.handle_key(self._key_queue.get_nowait(), actions, stop)
                self._poll_status(actions)
                live.update(render(self.state, self.console.width, self.console.height),
                            refresh=True)
        self._leave_the_error_on_screen(events)

    def _leave_the_error_on_screen(self, events: queue.Queue[dict[str, Any] | None]) -> None:
        """After the full screen closes, print the error the stream ended with.

        The edge stops as soon as it meets a fatal error (another protocol major), so the
        event may still be queued, and its stderr line went under the full screen.
        """
        self._drain(events, 0.0)
        if self.state.fatal:
            self.console.print(Text(f"edge-run: {self.state.fatal}", style="bold red"))

    def _run_plain(self, events: queue.Queue[dict[str, Any] | None], stop: threading.Event,
                   actions: DashboardActions) -> None:
        said_no_signal = False
        last_crc = 0
        last_verdict = None
        out = self.console.file
        while not stop.is_set():
            for event in self._drain(events, self.refresh_s):
                line = plain_line(self.state, event)
                if event["type"] == "verdict":
                    if event["verdict"] == last_verdict:
                        line = None  # say it when it changes, not after every cycle
                    last_verdict = event["verdict"]
                if event["type"] == "stale" and event["state"] == "stale":
                    said_no_signal = True  # the edge said it; do not say it twice
                if event["type"] == "link" and event["crc_errors"] != last_crc:
                    last_crc = event["crc_errors"]
                    line = (f"{_fmt_clock(event['t'])} "
                            f"{'SIMULATED ' if self.state.simulated else ''}link CRC errors "
                            f"{last_crc} gaps {event['gaps']} frames/s {event['frames_per_s']:.0f}")
                if line:
                    print(line, file=out, flush=True)
            self._poll_status(actions)
            if self.state.no_signal() and not said_no_signal:
                tag = "SIMULATED " if self.state.simulated else ""
                print(f"{tag}NO SIGNAL for {self.state.silent_for() or 0:.1f} s"
                      " (last finding is old)", file=out, flush=True)
            said_no_signal = self.state.no_signal()
            if self.state.ended and events.empty():
                return
